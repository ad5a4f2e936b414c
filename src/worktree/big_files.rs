//! A worktree's big files (a MiB or more) as blobs: written straight into
//! one pack (`blob_pack`), each read and hashed once, and remembered by
//! their stat data so that no later snapshot or check on this machine reads
//! or hashes them again.
//!
//! A loose object of a big file is compressed by git at its default level,
//! then inflated and compressed again by every pack that carries it; a blob
//! that sits in a pack is copied from pack to pack as it is.
//!
//! The record (`<git dir>/codex-handoff-contents`) maps a path to the stat
//! data its file had and the blob it held. An entry counts only while the
//! file's stat data is the same to the nanosecond (times, inode, size,
//! executable bit) and the file had not changed within a clock tick of the
//! moment it was read (git's "racily clean" rule), and only for a blob this
//! repository has.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use gix::objs::tree::EntryKind;
use gix::ObjectId;

use crate::blob_pack::{PackWriter, PACK_FROM};
use crate::error::Result;
use crate::progress::Step;
use crate::repo::Repo;

/// The record keeps at most this many files.
const MAX_RECORDED: usize = 100_000;

/// A file changed within this long of being read may have changed again
/// without its times showing it (the kernel's clock for file times is coarse).
const TICK_NS: i128 = 50_000_000;

/// Is a file of `size` bytes big enough to be stored here?
pub fn is_big(size: u64) -> bool {
    size >= PACK_FROM
}

/// Can this repository take big files this way (a SHA-1 object format)?
pub fn usable(repo: &Repo) -> bool {
    repo.gix.object_hash() == gix::hash::Kind::Sha1
}

/// What the file was when its blob was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
    size: u64,
    executable: bool,
}

impl Stat {
    fn of(meta: &std::fs::Metadata) -> Stat {
        Stat {
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
            size: meta.len(),
            executable: meta.mode() & 0o100 != 0,
        }
    }

    /// Were both times more than `margin` before `at` (nanoseconds since the epoch)?
    fn settled_before(&self, at: i128, margin: i128) -> bool {
        let ns = |(s, n): (i64, i64)| i128::from(s) * 1_000_000_000 + i128::from(n);
        ns(self.mtime) + margin < at && ns(self.ctime) + margin < at
    }
}

/// A file's stat data, its blob, and whether it may have changed within
/// the clock tick it was read in (then only a just-restored worktree, whose
/// stat data is trusted anyway, takes the blob from here).
type Record = HashMap<Vec<u8>, (Stat, ObjectId, bool)>;

fn record_file(repo: &Repo) -> std::path::PathBuf {
    repo.git_dir().join("codex-handoff-contents")
}

/// One line a file: `mtime mtime_ns ctime ctime_ns ino size x|- blob path-in-hex [racy]`.
fn read_record(repo: &Repo) -> Record {
    let Ok(text) = std::fs::read_to_string(record_file(repo)) else { return Record::new() };
    let mut record = Record::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (fields, racy) = match f.len() {
            9 => (&f[..], false),
            10 if f[9] == "racy" => (&f[..9], true),
            _ => continue,
        };
        let [mt, mtn, ct, ctn, ino, size, x, id, path] = fields[..] else { continue };
        let (Ok(mt), Ok(mtn), Ok(ct), Ok(ctn), Ok(ino), Ok(size)) =
            (mt.parse(), mtn.parse(), ct.parse(), ctn.parse(), ino.parse(), size.parse())
        else {
            continue;
        };
        let (Ok(id), Some(path)) = (ObjectId::from_hex(id.as_bytes()), unhex(path)) else { continue };
        let stat = Stat { mtime: (mt, mtn), ctime: (ct, ctn), ino, size, executable: x == "x" };
        record.insert(path, (stat, id, racy));
    }
    record
}

fn write_record(repo: &Repo, record: &Record) {
    let mut text = String::new();
    for (path, (s, id, racy)) in record.iter().take(MAX_RECORDED) {
        let x = if s.executable { "x" } else { "-" };
        let hex: String = path.iter().map(|b| format!("{b:02x}")).collect();
        let racy = if *racy { " racy" } else { "" };
        text.push_str(&format!(
            "{} {} {} {} {} {} {x} {id} {hex}{racy}\n",
            s.mtime.0, s.mtime.1, s.ctime.0, s.ctime.1, s.ino, s.size
        ));
    }
    crate::cache_file::write(&record_file(repo), text.as_bytes());
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

fn now_ns() -> i128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0)
}

/// The blobs of the big files this worktree's record knows.
pub fn recorded(repo: &Repo) -> Vec<ObjectId> {
    let mut ids: Vec<ObjectId> = read_record(repo).into_values().map(|(_, id, _)| id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The blobs of the big regular files `paths` (relative to `root`), in
/// order: taken from the record where it still holds, else read once into
/// one new pack. `None` when a file is not a big regular file, or changed
/// while it was read: the caller then leaves it to git. `just_restored`:
/// the worktree was just written by a restore, whose stat data is trusted.
pub fn store(
    repo: &Repo,
    root: &Path,
    paths: &[&[u8]],
    just_restored: bool,
) -> Result<Option<Vec<(EntryKind, ObjectId)>>> {
    if paths.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let mut record = read_record(repo);
    let mut found: Vec<Option<(EntryKind, ObjectId)>> = vec![None; paths.len()];
    let mut to_read = Vec::new();
    for (at, path) in paths.iter().enumerate() {
        let Ok(meta) = std::fs::symlink_metadata(root.join(std::ffi::OsStr::from_bytes(path))) else {
            return Ok(None);
        };
        if !meta.is_file() || !is_big(meta.len()) {
            return Ok(None);
        }
        let stat = Stat::of(&meta);
        match record.get(*path) {
            Some((known, id, racy)) if *known == stat && (!racy || just_restored) && repo.gix.has_object(*id) => {
                found[at] = Some((kind(&stat), *id))
            }
            _ => to_read.push((at, stat)),
        }
    }
    if !to_read.is_empty() {
        let mut pack = PackWriter::new(&repo.common_dir().join("objects"), to_read.len() as u32)?;
        let total = to_read.iter().map(|(_, stat)| stat.size).sum();
        let mut hashed = 0;
        crate::progress::report(Step::Hash, 0, total);
        for (at, before) in &to_read {
            let read_at = now_ns();
            let Ok(mut file) = std::fs::File::open(root.join(std::ffi::OsStr::from_bytes(paths[*at]))) else {
                return Ok(None);
            };
            let Ok(meta) = file.metadata() else { return Ok(None) };
            if Stat::of(&meta) != *before {
                return Ok(None);
            }
            let mut counted = crate::progress::Counted::starting_at(&mut file, Step::Hash, hashed, total);
            let Ok(id) = pack.add(&mut counted, before.size) else { return Ok(None) };
            hashed += before.size;
            // The bytes read are the file's only if nothing touched it meanwhile.
            match std::fs::symlink_metadata(root.join(std::ffi::OsStr::from_bytes(paths[*at]))) {
                Ok(after) if Stat::of(&after) == *before => {}
                _ => return Ok(None),
            }
            record.insert(paths[*at].to_vec(), (*before, id, !before.settled_before(read_at, TICK_NS)));
            found[*at] = Some((kind(before), id));
        }
        // Blobs this repository had already (a file copied, or read before the record knew it) need no new pack.
        if to_read.iter().any(|(at, _)| found[*at].is_some_and(|(_, id)| !repo.gix.has_object(id))) {
            pack.finish()?;
        }
        write_record(repo, &record);
    }
    Ok(found.into_iter().collect())
}

fn kind(stat: &Stat) -> EntryKind {
    if stat.executable {
        EntryKind::BlobExecutable
    } else {
        EntryKind::Blob
    }
}

/// Remember the big files a checkout just wrote into the worktree at
/// `root`: `entries` are paths with the blob each was written from, and
/// `index` the index file the checkout wrote after them (git's own stat
/// data of each is in it, so a file that changed since reads as changed).
pub fn remember_checkout(repo: &Repo, root: &Path, index: &Path) {
    let Ok(written) = std::fs::metadata(index) else { return };
    let written = i128::from(written.mtime()) * 1_000_000_000 + i128::from(written.mtime_nsec());
    let options = gix::index::decode::Options::default();
    let Ok(file) = gix::index::File::at(index, repo.gix.object_hash(), true, options) else { return };
    let mut record = read_record(repo);
    let before = record.len();
    for entry in file.entries() {
        use gix::index::entry::Mode;
        if !matches!(entry.mode, Mode::FILE | Mode::FILE_EXECUTABLE) || !is_big(u64::from(entry.stat.size)) {
            continue;
        }
        let path = entry.path(&file);
        let Ok(meta) = std::fs::symlink_metadata(root.join(std::ffi::OsStr::from_bytes(path))) else { continue };
        let stat = Stat::of(&meta);
        let s = &entry.stat;
        // The file is still what the checkout wrote and recorded, before the index was written.
        let same = stat.mtime == (i64::from(s.mtime.secs), i64::from(s.mtime.nsecs))
            && stat.ctime == (i64::from(s.ctime.secs), i64::from(s.ctime.nsecs))
            && stat.ino as u32 == s.ino
            && stat.size as u32 == s.size
            && stat.executable == (entry.mode == Mode::FILE_EXECUTABLE);
        // Both times come from the same clock as the index file's: strictly older is settled, as git has it.
        if same {
            record.insert(path.to_vec(), (stat, entry.id, !stat.settled_before(written, 0)));
        }
    }
    if record.len() != before || before > 0 {
        write_record(repo, &record);
    }
}

/// Of the changed paths git status named, those `update-index` should take
/// as before, and the big regular files to store here instead. Only where
/// the raw bytes are the blob: nothing converts them (attributes,
/// line-ending settings, Git LFS; `may_convert` says what `converted` found)
/// and the executable bit counts.
pub fn split<'a>(
    repo: &Repo,
    root: &Path,
    changed: &'a [gix::bstr::BString],
    may_convert: bool,
) -> (Vec<&'a [u8]>, Vec<&'a [u8]>) {
    let all = || (changed.iter().map(|p| p.as_slice()).collect(), Vec::new());
    if may_convert
        || !usable(repo)
        || !repo.gix.config_snapshot().boolean("core.fileMode").unwrap_or(true)
        || crate::worktree::lfs::in_use(repo)
    {
        return all();
    }
    changed.iter().map(|p| p.as_slice()).partition(|path| {
        !std::fs::symlink_metadata(root.join(std::ffi::OsStr::from_bytes(path)))
            .is_ok_and(|meta| meta.is_file() && is_big(meta.len()))
    })
}

/// `update-index -z --index-info` lines for the big files `paths`, stored
/// (or found in the record) first; `None` when one changed while it was
/// read, for git to take as it finds them.
pub fn index_info(repo: &Repo, root: &Path, paths: &[&[u8]], just_restored: bool) -> Result<Option<Vec<u8>>> {
    let Some(stored) = store(repo, root, paths, just_restored)? else { return Ok(None) };
    let mut info = Vec::new();
    for (path, (kind, id)) in paths.iter().zip(stored) {
        let mode = if kind == EntryKind::BlobExecutable { "100755" } else { "100644" };
        info.extend_from_slice(format!("{mode} {id}\t").as_bytes());
        info.extend_from_slice(path);
        info.push(0);
    }
    Ok(Some(info))
}
