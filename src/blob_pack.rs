//! A large blob (a long transcript) written straight into a pack of its
//! own, in one pass over its bytes: hashed, compressed and checksummed as it
//! streams by, never held in memory.
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
//! The pack is version 2 with one undeltified object and its version 2
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
    let dir = objects_dir.join("pack");
    std::fs::create_dir_all(&dir)?;
    let tmp = |suffix: &str| {
        tempfile::Builder::new()
            .prefix("tmp_pack_codex-handoff-")
            .suffix(suffix)
            .tempfile_in(&dir)
            .context("pack", || format!("could not create a temporary pack in {}", dir.display()))
    };
    let mut pack_file = tmp(".pack")?;
    let mut pack = Checksummed::new(std::io::BufWriter::with_capacity(CHUNK, pack_file.as_file_mut()));
    pack.write_all(b"PACK")?;
    pack.write_all(&2u32.to_be_bytes())?;
    pack.write_all(&1u32.to_be_bytes())?;
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
    let mut deflate = Deflate::new(1, false, 15);
    let mut compressing = false;
    let mut probe = Deflate::new(1, false, 15);
    let mut buf = vec![0u8; CHUNK];
    let mut out = vec![0u8; CHUNK + CHUNK / 8 + 1024];
    let mut left = size;
    while left > 0 {
        let want = left.min(CHUNK as u64) as usize;
        input
            .read_exact(&mut buf[..want])
            .map_err(|e| Error::failed("pack", "the blob ended before its size while it was written").with_source(e))?;
        let chunk = &buf[..want];
        left -= want as u64;
        blob.update(chunk);
        adler = zlib_rs::adler32::adler32(adler, chunk);
        if worth_compressing(&mut probe, chunk, &mut out) {
            if !compressing {
                // Nothing before this stretch is in its window: the bytes stored in between are not.
                deflate.reset();
                compressing = true;
            }
            crc = drain(&mut deflate, chunk, &mut out, DeflateFlush::NoFlush, &mut pack, crc)?;
        } else {
            if compressing {
                crc = drain(&mut deflate, &[], &mut out, DeflateFlush::SyncFlush, &mut pack, crc)?;
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
        crc = drain(&mut deflate, &[], &mut out, DeflateFlush::SyncFlush, &mut pack, crc)?;
    }
    let mut tail = vec![0x01, 0x00, 0x00, 0xff, 0xff];
    tail.extend_from_slice(&adler.to_be_bytes());
    crc = zlib_rs::crc32::crc32(crc, &tail);
    pack.write_all(&tail)?;
    let id = blob.try_finalize().map_err(|e| Error::failed("hash", "hashing the blob failed").with_source(e))?;
    if let Some(expected) = expected.filter(|e| *e != id) {
        return Err(Error::failed("blob_mismatch", format!("the bytes received are blob {id}, not {expected}"))
            .with_help("run the handoff again"));
    }
    if exists(id) {
        return Ok(id);
    }
    let (checksum, mut writer) = pack.finish()?;
    writer.write_all(checksum.as_slice())?;
    writer.flush()?;
    drop(writer);

    let mut index_file = tmp(".idx")?;
    let mut index = Checksummed::new(std::io::BufWriter::new(index_file.as_file_mut()));
    index.write_all(&[0xff, b't', b'O', b'c'])?;
    index.write_all(&2u32.to_be_bytes())?;
    // Fan-out: how many objects have a first byte at most i.
    for i in 0..=255u8 {
        let count: u32 = if id.as_slice()[0] <= i { 1 } else { 0 };
        index.write_all(&count.to_be_bytes())?;
    }
    index.write_all(id.as_slice())?;
    index.write_all(&crc.to_be_bytes())?;
    // The entry starts right after the 12-byte pack header.
    index.write_all(&12u32.to_be_bytes())?;
    index.write_all(checksum.as_slice())?;
    let (index_checksum, mut writer) = index.finish()?;
    writer.write_all(index_checksum.as_slice())?;
    writer.flush()?;
    drop(writer);

    // The pack first, then its index: git finds packs by their index.
    let name = dir.join(format!("pack-{checksum}"));
    persist(pack_file, &name.with_extension("pack"))?;
    persist(index_file, &name.with_extension("idx"))?;
    Ok(id)
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
    hasher: gix::hash::Hasher,
}

impl<W: Write> Checksummed<W> {
    fn new(inner: W) -> Self {
        Checksummed { inner, hasher: gix::hash::hasher(gix::hash::Kind::Sha1) }
    }

    fn finish(self) -> Result<(ObjectId, W)> {
        let sum =
            self.hasher.try_finalize().map_err(|e| Error::failed("hash", "hashing a pack failed").with_source(e))?;
        Ok((sum, self.inner))
    }
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
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
