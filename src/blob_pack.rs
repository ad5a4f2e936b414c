//! Large blobs (a long transcript, a worktree's big files) written straight
//! into a pack, in one pass over their bytes: hashed, compressed and
//! checksummed as they stream by, never held in memory.
//!
//! A loose object would be compressed again by every git that moves it (the
//! push's pack-objects, the receiver's unpack-objects): three zlib passes of
//! a 100 MiB transcript took seconds. git copies an object that sits in a
//! pack from pack to pack as it is, and a receiver told to keep the pack
//! (`receive.unpackLimit` / `fetch.unpackLimit`) stores it as it came.
//!
//! Compression is chosen per MiB from a sample of it: text (most of a
//! rollout) shrinks to a quarter at zlib's fastest level, and is compressed;
//! data that barely shrinks (inline images, random bytes) is stored, which
//! costs nothing to write or read.
//!
//! The pack is version 2 with undeltified objects and its version 2
//! index, as git writes them (`Documentation/gitformat-pack.txt`); both are
//! written to temporary files in `objects/pack` and take their final names
//! (after the pack's checksum, index last) only when complete.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use gix::ObjectId;
use zlib_rs::{Deflate, DeflateFlush, Status};

use crate::error::{Context, Error, Result};

/// Blobs at least this large get a pack of their own; smaller ones stay loose.
pub const PACK_FROM: u64 = 1 << 20;

/// Bytes compressed at one level before the next decision.
const CHUNK: usize = 1 << 20;
/// Bytes of each chunk compressed on the side to decide its level.
const SAMPLE: usize = 64 << 10;
/// A chunk is compressed if its sample shrinks to this share or less.
const WORTH_IT: f64 = 0.5;

/// Write the `size` bytes `input` yields as one blob into a new pack in
/// `objects_dir/pack`, unless `exists` says the object is there already.
/// Returns the blob's id; bytes that are not the blob `expected` (when
/// given: they came from elsewhere) are refused, and nothing is kept. Only
/// for SHA-1 repositories.
pub fn write_blob(
    objects_dir: &Path,
    input: &mut dyn Read,
    size: u64,
    expected: Option<ObjectId>,
    exists: impl Fn(ObjectId) -> bool,
) -> Result<ObjectId> {
    let mut pack = PackWriter::new(objects_dir, 1)?;
    let id = pack.add(input, size)?;
    if let Some(expected) = expected.filter(|e| *e != id) {
        return Err(Error::failed("blob_mismatch", format!("the bytes received are blob {id}, not {expected}"))
            .with_help("run the handoff again"));
    }
    if !exists(id) {
        pack.finish()?;
    }
    Ok(id)
}

/// A pack of a known number of blobs being written: each blob streams
/// through once (hashed, compressed per MiB where it pays, checksummed);
/// the pack and its index take their final names only in [`PackWriter::finish`],
/// and a writer dropped before that leaves nothing behind.
pub struct PackWriter {
    dir: PathBuf,
    pack_file: tempfile::NamedTempFile,
    pack: Checksummed<std::io::BufWriter<std::fs::File>>,
    count: u32,
    /// Each entry's id, the CRC-32 of its bytes in the pack, and where it starts.
    entries: Vec<(ObjectId, u32, u64)>,
    deflate: Deflate,
    probe: Deflate,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl PackWriter {
    /// A pack in `objects_dir/pack` that will hold exactly `count` blobs.
    pub fn new(objects_dir: &Path, count: u32) -> Result<PackWriter> {
        let dir = objects_dir.join("pack");
        std::fs::create_dir_all(&dir)?;
        let pack_file = temp_in(&dir, ".pack")?;
        let file = pack_file.as_file().try_clone()?;
        let mut pack = Checksummed::new(std::io::BufWriter::with_capacity(CHUNK, file));
        pack.write_all(b"PACK")?;
        pack.write_all(&2u32.to_be_bytes())?;
        pack.write_all(&count.to_be_bytes())?;
        Ok(PackWriter {
            dir,
            pack_file,
            pack,
            count,
            entries: Vec::with_capacity(count as usize),
            deflate: Deflate::new(1, false, 15),
            probe: Deflate::new(1, false, 15),
            buf: vec![0u8; CHUNK],
            out: vec![0u8; CHUNK + CHUNK / 8 + 1024],
        })
    }

    /// Blobs added so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Stream the `size` bytes `input` yields into the pack as one blob;
    /// its id. Fewer or more bytes than `size` is an error (the pack is then unusable).
    pub fn add(&mut self, input: &mut dyn Read, size: u64) -> Result<ObjectId> {
        if self.entries.len() as u32 >= self.count {
            return Err(Error::failed("pack", "more blobs than the pack was made for"));
        }
        let offset = self.pack.written;
        let pack = &mut self.pack;
        // The object's entry: its type and size, then its zlib stream; the index holds the entry's CRC-32.
        let mut crc = 0u32;
        let header = entry_header(size);
        crc = zlib_rs::crc32::crc32(crc, &header);
        pack.write_all(&header)?;
        let mut blob = gix::hash::hasher(gix::hash::Kind::Sha1);
        blob.update(&gix::objs::encode::loose_header(gix::objs::Kind::Blob, size));

        // One zlib stream made of stretches: compressed ones (raw deflate, each
        // started afresh and ended on a byte boundary by a sync flush) and
        // stored blocks, then an empty final block and the Adler-32 of it all.
        let zlib_header = [0x78, 0x01];
        crc = zlib_rs::crc32::crc32(crc, &zlib_header);
        pack.write_all(&zlib_header)?;
        let mut adler = 1u32;
        let mut compressing = false;
        let (deflate, probe, buf, out) = (&mut self.deflate, &mut self.probe, &mut self.buf, &mut self.out);
        let mut left = size;
        while left > 0 {
            let want = left.min(CHUNK as u64) as usize;
            input.read_exact(&mut buf[..want]).map_err(|e| {
                Error::failed("pack", "the blob ended before its size while it was written").with_source(e)
            })?;
            let chunk = &buf[..want];
            left -= want as u64;
            blob.update(chunk);
            adler = zlib_rs::adler32::adler32(adler, chunk);
            if worth_compressing(probe, chunk, out) {
                if !compressing {
                    // Nothing before this stretch is in its window: the bytes stored in between are not.
                    deflate.reset();
                    compressing = true;
                }
                crc = drain(deflate, chunk, out, DeflateFlush::NoFlush, pack, crc)?;
            } else {
                if compressing {
                    crc = drain(deflate, &[], out, DeflateFlush::SyncFlush, pack, crc)?;
                    compressing = false;
                }
                for block in chunk.chunks(u16::MAX as usize) {
                    let len = block.len() as u16;
                    let mut head = [0u8; 5];
                    head[1..3].copy_from_slice(&len.to_le_bytes());
                    head[3..5].copy_from_slice(&(!len).to_le_bytes());
                    crc = zlib_rs::crc32::crc32(crc, &head);
                    crc = zlib_rs::crc32::crc32(crc, block);
                    pack.write_all(&head)?;
                    pack.write_all(block)?;
                }
            }
        }
        let mut more = [0u8; 1];
        if input.read(&mut more)? != 0 {
            return Err(Error::failed("pack", "the blob grew while it was written"));
        }
        if compressing {
            crc = drain(deflate, &[], out, DeflateFlush::SyncFlush, pack, crc)?;
        }
        let mut tail = vec![0x01, 0x00, 0x00, 0xff, 0xff];
        tail.extend_from_slice(&adler.to_be_bytes());
        crc = zlib_rs::crc32::crc32(crc, &tail);
        pack.write_all(&tail)?;
        let id = blob.try_finalize().map_err(|e| Error::failed("hash", "hashing the blob failed").with_source(e))?;
        self.entries.push((id, crc, offset));
        Ok(id)
    }

    /// Finish the pack and its index and give both their names; every blob
    /// the pack was made for must have been added.
    pub fn finish(self) -> Result<()> {
        let PackWriter { dir, pack_file, pack, count, mut entries, .. } = self;
        if entries.len() as u32 != count {
            return Err(Error::failed("pack", format!("{} of {count} blobs were written", entries.len())));
        }
        let (checksum, mut writer) = pack.finish()?;
        writer.write_all(checksum.as_slice())?;
        writer.flush()?;
        drop(writer);
        entries.sort_by_key(|a| a.0);
        entries.dedup_by(|a, b| a.0 == b.0);

        let mut index_file = temp_in(&dir, ".idx")?;
        let mut index = Checksummed::new(std::io::BufWriter::new(index_file.as_file_mut()));
        index.write_all(&[0xff, b't', b'O', b'c'])?;
        index.write_all(&2u32.to_be_bytes())?;
        // Fan-out: how many objects have a first byte at most i.
        for i in 0..=255u8 {
            let below = entries.partition_point(|(id, _, _)| id.as_slice()[0] <= i) as u32;
            index.write_all(&below.to_be_bytes())?;
        }
        for (id, _, _) in &entries {
            index.write_all(id.as_slice())?;
        }
        for (_, crc, _) in &entries {
            index.write_all(&crc.to_be_bytes())?;
        }
        // Offsets past 2 GiB go to a table of 64-bit ones, named by position with the top bit set.
        let mut large = Vec::new();
        for (_, _, offset) in &entries {
            let small = match u32::try_from(*offset) {
                Ok(small) if small < 0x8000_0000 => small,
                _ => {
                    large.push(*offset);
                    0x8000_0000 | (large.len() as u32 - 1)
                }
            };
            index.write_all(&small.to_be_bytes())?;
        }
        for offset in &large {
            index.write_all(&offset.to_be_bytes())?;
        }
        index.write_all(checksum.as_slice())?;
        let (index_checksum, mut writer) = index.finish()?;
        writer.write_all(index_checksum.as_slice())?;
        writer.flush()?;
        drop(writer);

        // The pack first, then its index: git finds packs by their index.
        let name = dir.join(format!("pack-{checksum}"));
        persist(pack_file, &name.with_extension("pack"))?;
        persist(index_file, &name.with_extension("idx"))?;
        Ok(())
    }
}

fn temp_in(dir: &Path, suffix: &str) -> Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix("tmp_pack_codex-handoff-")
        .suffix(suffix)
        .tempfile_in(dir)
        .context("pack", || format!("could not create a temporary pack in {}", dir.display()))
}

/// A pack entry's header: type 3 (blob) and the size, seven bits a byte after the first four.
fn entry_header(size: u64) -> Vec<u8> {
    let mut header = Vec::with_capacity(10);
    let mut byte = (3u8 << 4) | (size & 0x0f) as u8;
    let mut rest = size >> 4;
    while rest > 0 {
        header.push(byte | 0x80);
        byte = (rest & 0x7f) as u8;
        rest >>= 7;
    }
    header.push(byte);
    header
}

/// Does the start of `chunk` shrink enough at zlib's fastest level?
fn worth_compressing(probe: &mut Deflate, chunk: &[u8], scratch: &mut [u8]) -> bool {
    let sample = &chunk[..chunk.len().min(SAMPLE)];
    probe.reset();
    match probe.compress(sample, scratch, DeflateFlush::Finish) {
        Ok(Status::StreamEnd) => (probe.total_out() as f64) <= sample.len() as f64 * WORTH_IT,
        _ => false,
    }
}

/// Feed `input` to `deflate` with `flush`, writing all it gives out; returns the updated CRC-32.
fn drain(
    deflate: &mut Deflate,
    mut input: &[u8],
    out: &mut [u8],
    flush: DeflateFlush,
    pack: &mut impl Write,
    mut crc: u32,
) -> Result<u32> {
    loop {
        let (before_in, before_out) = (deflate.total_in(), deflate.total_out());
        let status = deflate.compress(input, out, flush).map_err(|_| Error::failed("pack", "zlib failed"))?;
        let consumed = (deflate.total_in() - before_in) as usize;
        let produced = (deflate.total_out() - before_out) as usize;
        input = input.get(consumed..).unwrap_or_default();
        let written = out.get(..produced).unwrap_or_default();
        crc = zlib_rs::crc32::crc32(crc, written);
        pack.write_all(written)?;
        // All input taken and the output not filled up: nothing is pending.
        if status == Status::StreamEnd || (input.is_empty() && produced < out.len()) {
            return Ok(crc);
        }
    }
}

/// A writer that keeps the SHA-1 of everything written through it.
struct Checksummed<W: Write> {
    inner: W,
    // Plain SHA-1 (the CPU's instructions where there are some): a pack's checksum only guards its bytes.
    hasher: sha1::Sha1,
    written: u64,
}

impl<W: Write> Checksummed<W> {
    fn new(inner: W) -> Self {
        Checksummed { inner, hasher: sha1::Digest::new(), written: 0 }
    }

    fn finish(self) -> Result<(ObjectId, W)> {
        let sum = sha1::Digest::finalize(self.hasher);
        let sum = ObjectId::try_from(sum.as_slice())
            .map_err(|e| Error::failed("hash", "hashing a pack failed").with_source(e))?;
        Ok((sum, self.inner))
    }
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        sha1::Digest::update(&mut self.hasher, &buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Give a finished temporary file its name, read-only as git leaves pack files.
fn persist(file: tempfile::NamedTempFile, to: &PathBuf) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o444))?;
    file.persist(to).map_err(|e| Error::failed("pack", format!("could not write {}", to.display())).with_source(e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> Vec<u8> {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// git reads the pack back (`verify-pack` checks every checksum and the
    /// CRC), to the same id and bytes as `hash-object`, compressed or stored.
    #[test]
    fn git_reads_the_pack_and_agrees_on_the_id() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q", "--bare"]);
        // Text that compresses, then bytes that do not, then text again, across chunk boundaries.
        let mut data = Vec::new();
        while data.len() < 3 * CHUNK {
            data.extend_from_slice(
                format!("{{\"line\":{}, \"text\":\"the same words again\"}}\n", data.len()).as_bytes(),
            );
        }
        let mut x = 0x2545_f491u32;
        for _ in 0..(2 * CHUNK + 77) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            data.push(x as u8);
        }
        let again = data[..CHUNK / 3].to_vec();
        data.extend_from_slice(&again);
        let mut input = data.as_slice();
        let id = write_blob(&dir.path().join("objects"), &mut input, data.len() as u64, None, |_| false).unwrap();
        let file = dir.path().join("blob");
        std::fs::write(&file, &data).unwrap();
        let expected = String::from_utf8(git(dir.path(), &["hash-object", file.to_str().unwrap()])).unwrap();
        assert_eq!(id.to_string(), expected.trim());
        assert_eq!(git(dir.path(), &["cat-file", "blob", &id.to_string()]), data);
        let packs: Vec<PathBuf> = std::fs::read_dir(dir.path().join("objects/pack"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "idx"))
            .collect();
        assert_eq!(packs.len(), 1, "one pack, no temporary files left: {packs:?}");
        let verified = git(dir.path(), &["verify-pack", "-v", packs[0].to_str().unwrap()]);
        assert!(String::from_utf8_lossy(&verified).contains(&format!("{id} blob")));
        // Smaller than the bytes (the text was compressed), larger than the incompressible part.
        let packed = std::fs::metadata(packs[0].with_extension("pack")).unwrap().len() as usize;
        assert!(packed < data.len() && packed > 2 * CHUNK, "pack of {packed} bytes for {}", data.len());
    }

    /// Several blobs in one pack: git finds each by the index, in any order of ids.
    #[test]
    fn one_pack_holds_several_blobs_that_git_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q", "--bare"]);
        let blobs: Vec<Vec<u8>> = (0..5u8).map(|n| vec![b'a' + n; CHUNK + 1000 * n as usize]).collect();
        let mut pack = PackWriter::new(&dir.path().join("objects"), blobs.len() as u32).unwrap();
        let ids: Vec<ObjectId> = blobs.iter().map(|b| pack.add(&mut b.as_slice(), b.len() as u64).unwrap()).collect();
        pack.finish().unwrap();
        for (id, bytes) in ids.iter().zip(&blobs) {
            assert_eq!(&git(dir.path(), &["cat-file", "blob", &id.to_string()]), bytes);
        }
        let idx = std::fs::read_dir(dir.path().join("objects/pack"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "idx"))
            .unwrap();
        let verified = String::from_utf8(git(dir.path(), &["verify-pack", "-v", idx.to_str().unwrap()])).unwrap();
        assert_eq!(verified.lines().filter(|l| l.contains(" blob ")).count(), 5, "{verified}");
        // A writer that is not given every blob it was made for leaves nothing.
        let mut short = PackWriter::new(&dir.path().join("objects"), 2).unwrap();
        short.add(&mut &b"x"[..], 1).unwrap();
        assert!(short.finish().is_err());
        assert_eq!(std::fs::read_dir(dir.path().join("objects/pack")).unwrap().count(), 2);
    }

    #[test]
    fn a_blob_already_there_or_not_the_one_expected_leaves_no_pack_nor_does_a_short_input() {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        let mut input: &[u8] = b"hello";
        let id = write_blob(&objects, &mut input, 5, None, |_| true).unwrap();
        assert_eq!(std::fs::read_dir(objects.join("pack")).unwrap().count(), 0);
        let mut short: &[u8] = b"hell";
        assert!(write_blob(&objects, &mut short, 5, None, |_| false).is_err());
        let mut long: &[u8] = b"hello!";
        assert!(write_blob(&objects, &mut long, 5, None, |_| false).is_err());
        let mut other: &[u8] = b"world";
        let err = write_blob(&objects, &mut other, 5, Some(id), |_| false).unwrap_err();
        assert_eq!(err.code, "blob_mismatch");
        assert_eq!(std::fs::read_dir(objects.join("pack")).unwrap().count(), 0);
    }
}
