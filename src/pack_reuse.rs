//! Big blobs sent as the pack entries they already are here: a pack of
//! them is streamed straight from this repository's packs, entry by entry,
//! with no temporary file and no git in between, and its size is known
//! before the first byte (so it can go beside a request).
//!
//! `git pack-objects` copies such entries too, but only into a whole pack it
//! writes first, checksummed with collision detection: for 150 MiB of new
//! files that was a second of the handoff. The receiver checks every object
//! of this pack as it checks any other (`intake`).

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use gix::ObjectId;
use sha1::Digest;

use crate::blob_pack::PACK_FROM;
use crate::error::{Error, Result};

/// Where one object's entry sits in a pack.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: ObjectId,
    pack: PathBuf,
    offset: u64,
    len: u64,
    /// The blob's size (not the entry's).
    pub size: u64,
}

/// The big blobs (a MiB or more) among `ids` that sit undeltified in a
/// pack of `objects_dir`, with where; the rest are not named.
pub fn big_blobs(objects_dir: &Path, ids: &[ObjectId]) -> Vec<Entry> {
    let Ok(dir) = std::fs::read_dir(objects_dir.join("pack")) else { return Vec::new() };
    let mut wanted: HashMap<ObjectId, ()> = ids.iter().map(|id| (*id, ())).collect();
    let mut found = Vec::new();
    for item in dir.flatten() {
        let path = item.path();
        if wanted.is_empty() || path.extension().is_none_or(|e| e != "idx") {
            continue;
        }
        let Some(index) = read_index(&path) else { continue };
        let pack = path.with_extension("pack");
        let Ok(mut file) = std::fs::File::open(&pack) else { continue };
        let Ok(pack_len) = file.metadata().map(|m| m.len()) else { continue };
        let mut by_offset: Vec<u64> = index.iter().map(|(_, offset)| *offset).collect();
        by_offset.sort_unstable();
        for (id, offset) in &index {
            if wanted.remove(id).is_none() {
                continue;
            }
            // The entry runs to the next one, or to the pack's trailing checksum.
            let at = by_offset.partition_point(|o| o <= offset);
            let end = by_offset.get(at).copied().unwrap_or(pack_len.saturating_sub(20));
            match entry_header(&mut file, *offset) {
                Some((3, size)) if size >= PACK_FROM && end > *offset => {
                    found.push(Entry { id: *id, pack: pack.clone(), offset: *offset, len: end - offset, size })
                }
                _ => {}
            }
        }
    }
    found
}

/// The size of the pack [`write_pack`] makes of `entries`.
pub fn pack_size(entries: &[Entry]) -> u64 {
    12 + entries.iter().map(|e| e.len).sum::<u64>() + 20
}

/// Write a pack of `entries` to `out`, each copied as it is.
pub fn write_pack(entries: &[Entry], out: &mut dyn Write) -> Result<()> {
    let mut sum = sha1::Sha1::new();
    let mut put = |bytes: &[u8], out: &mut dyn Write| -> Result<()> {
        sum.update(bytes);
        out.write_all(bytes)?;
        Ok(())
    };
    let mut header = b"PACK".to_vec();
    header.extend_from_slice(&2u32.to_be_bytes());
    header.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    put(&header, out)?;
    let mut buf = vec![0u8; 1 << 20];
    for entry in entries {
        copy_entry(entry, &mut buf, &mut |bytes| put(bytes, out))?;
    }
    let checksum = sum.finalize();
    out.write_all(&checksum)?;
    Ok(())
}

/// The size of the pack [`write_merged`] makes of `entries` and a pack of `other_size` bytes.
pub fn merged_size(entries: &[Entry], other_size: u64) -> u64 {
    pack_size(entries) + other_size.saturating_sub(32)
}

/// Write one pack of `entries` followed by every entry of the pack `other`
/// (`other_size` bytes, as git wrote it). Its deltas stay valid: those by
/// offset point back within the same stretch, those by id name objects.
pub fn write_merged(entries: &[Entry], other: &mut dyn Read, other_size: u64, out: &mut dyn Write) -> Result<()> {
    let mut header = [0u8; 12];
    other.read_exact(&mut header)?;
    if &header[..8] != b"PACK\0\0\0\x02" || other_size < 32 {
        return Err(Error::failed("pack", "not a pack of version 2"));
    }
    let count = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    let mut sum = sha1::Sha1::new();
    let mut put = |bytes: &[u8], out: &mut dyn Write| -> Result<()> {
        sum.update(bytes);
        out.write_all(bytes)?;
        Ok(())
    };
    let mut head = b"PACK".to_vec();
    head.extend_from_slice(&2u32.to_be_bytes());
    head.extend_from_slice(&(entries.len() as u32 + count).to_be_bytes());
    put(&head, out)?;
    let mut buf = vec![0u8; 1 << 20];
    for entry in entries {
        copy_entry(entry, &mut buf, &mut |bytes| put(bytes, out))?;
    }
    let mut left = other_size - 32;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        other.read_exact(&mut buf[..want])?;
        put(&buf[..want], out)?;
        left -= want as u64;
    }
    out.write_all(&sum.finalize())?;
    Ok(())
}

fn copy_entry(entry: &Entry, buf: &mut [u8], put: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
    let mut file = std::fs::File::open(&entry.pack)?;
    file.seek(SeekFrom::Start(entry.offset))?;
    let mut left = entry.len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        file.read_exact(&mut buf[..want])
            .map_err(|e| Error::failed("pack", format!("could not read {}", entry.pack.display())).with_source(e))?;
        put(&buf[..want])?;
        left -= want as u64;
    }
    Ok(())
}

/// A version 2 pack index: every object's id and offset.
fn read_index(path: &Path) -> Option<Vec<(ObjectId, u64)>> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.get(..8)? != [0xff, b't', b'O', b'c', 0, 0, 0, 2] {
        return None;
    }
    let u32_at = |at: usize| Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let count = u32_at(8 + 255 * 4)? as usize;
    let ids_at = 8 + 256 * 4;
    let offsets_at = ids_at + count * 20 + count * 4;
    let large_at = offsets_at + count * 4;
    // Each object takes 28 bytes of the index: a count past that is a damaged file.
    if count > bytes.len() / 28 {
        return None;
    }
    let mut index = Vec::with_capacity(count);
    for n in 0..count {
        let id = ObjectId::try_from(bytes.get(ids_at + n * 20..ids_at + n * 20 + 20)?).ok()?;
        let small = u32_at(offsets_at + n * 4)?;
        let offset = if small & 0x8000_0000 == 0 {
            u64::from(small)
        } else {
            let at = large_at + (small & 0x7fff_ffff) as usize * 8;
            u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?)
        };
        index.push((id, offset));
    }
    Some(index)
}

/// An entry's type and size, from its header.
fn entry_header(file: &mut std::fs::File, offset: u64) -> Option<(u8, u64)> {
    let mut head = [0u8; 10];
    file.seek(SeekFrom::Start(offset)).ok()?;
    let got = file.read(&mut head).ok()?;
    let kind = (head[0] >> 4) & 7;
    let mut size = u64::from(head[0] & 0x0f);
    let mut shift = 4;
    let mut at = 0;
    while head[at] & 0x80 != 0 {
        at += 1;
        if at >= got || shift > 57 {
            return None;
        }
        size |= u64::from(head[at] & 0x7f) << shift;
        shift += 7;
    }
    Some((kind, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
        use std::process::{Command, Stdio};
        let mut child = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.unwrap_or_default()).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "git {args:?}");
        out.stdout
    }

    /// Big blobs written by `blob_pack` come out as a pack that git's
    /// index-pack takes, to the same bytes; small ones are not named.
    #[test]
    fn a_pack_of_entries_is_one_git_takes() {
        let from = tempfile::tempdir().unwrap();
        git(from.path(), &["init", "-q", "--bare"], None);
        let objects = from.path().join("objects");
        let blobs: Vec<Vec<u8>> = vec![vec![7u8; 3 << 20], (0..(2u32 << 20)).map(|n| (n * 7 % 251) as u8).collect()];
        let mut pack = crate::blob_pack::PackWriter::new(&objects, 3).unwrap();
        let mut ids: Vec<ObjectId> =
            blobs.iter().map(|b| pack.add(&mut b.as_slice(), b.len() as u64).unwrap()).collect();
        ids.push(pack.add(&mut &b"small"[..], 5).unwrap());
        pack.finish().unwrap();
        let entries = big_blobs(&objects, &ids);
        assert_eq!(entries.len(), 2, "{entries:?}");
        let mut bytes = Vec::new();
        write_pack(&entries, &mut bytes).unwrap();
        assert_eq!(bytes.len() as u64, pack_size(&entries));
        let to = tempfile::tempdir().unwrap();
        git(to.path(), &["init", "-q", "--bare"], None);
        git(to.path(), &["index-pack", "--stdin", "--strict"], Some(&bytes));
        for (id, blob) in ids.iter().zip(&blobs) {
            assert_eq!(&git(to.path(), &["cat-file", "blob", &id.to_string()], None), blob);
        }

        // Merged with a pack git made (commits, trees, a blob stored as a delta): one pack git takes.
        let work = tempfile::tempdir().unwrap();
        git(work.path(), &["init", "-q"], None);
        let commit = ["-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q"];
        std::fs::write(work.path().join("a"), "x".repeat(5000)).unwrap();
        git(work.path(), &["add", "a"], None);
        git(work.path(), &[&commit[..], &["-m", "1"]].concat(), None);
        std::fs::write(work.path().join("a"), "x".repeat(5000) + "y").unwrap();
        git(work.path(), &[&commit[..], &["-am", "2"]].concat(), None);
        let args = ["pack-objects", "--revs", "--stdout", "--delta-base-offset", "-q"];
        let other = git(work.path(), &args, Some(b"HEAD\n"));
        let mut merged = Vec::new();
        write_merged(&entries, &mut other.as_slice(), other.len() as u64, &mut merged).unwrap();
        assert_eq!(merged.len() as u64, merged_size(&entries, other.len() as u64));
        let into = tempfile::tempdir().unwrap();
        git(into.path(), &["init", "-q", "--bare"], None);
        git(into.path(), &["index-pack", "--stdin", "--strict"], Some(&merged));
        let head = String::from_utf8(git(work.path(), &["rev-parse", "HEAD"], None)).unwrap();
        git(into.path(), &["update-ref", "refs/heads/main", head.trim()], None);
        git(into.path(), &["fsck", "--no-dangling"], None);
        assert_eq!(&git(into.path(), &["cat-file", "blob", &ids[0].to_string()], None), &blobs[0]);
    }
}
