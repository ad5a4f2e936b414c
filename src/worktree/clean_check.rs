//! How does a worktree differ from its index? Answered in this process for
//! the common cases, so that a snapshot does not wait for `git status`:
//! every file's stat data is compared on all cores, a file whose stat data
//! differs is judged by its content, and every directory is listed once for
//! names the index does not know.
//!
//! The answer is only ever what differs (files changed or deleted, untracked
//! files) or "ask git": anything this scan does not judge exactly as git
//! does (a differing file where attributes or line-ending settings convert
//! bytes, a submodule, sparse or intent-to-add entries, a case-insensitive
//! worktree, a new directory, a file that is neither a file nor a link, on
//! macOS a new name that is not ASCII where git precomposes Unicode) sends
//! the caller to `git status`, which then decides. The stat comparison is
//! stricter than git's (both times to the nanosecond, inode, owner, size,
//! type, executable bit): a mismatch git would forgive only costs hashing
//! the file. Git records both times with nanoseconds on Linux and macOS
//! alike (`st_mtim`, `st_mtimespec`); a file system that keeps whole
//! seconds (HFS+) gives 0 on both sides.
//!
//! An entry whose file may have changed within the clock tick its stat data
//! was taken in ("racily clean": not older than the index file), or whose
//! size git zeroed for that reason, is judged by its content as git judges
//! it: the file's blob id against the entry's, the raw bytes being what
//! `git add` would store where nothing converts them. A worktree just
//! checked out has thousands of such entries until something rewrites its
//! index.
//!
//! A directory whose listing held only the names the index expects is
//! remembered with its stat data (`<git dir>/codex-handoff-listings`): while
//! its times and inode stay the same (adding, removing or renaming a name
//! changes them) and the index expects the same names there, it is not
//! listed again. Only directories unchanged for over a second are
//! remembered, so a change within the same clock tick cannot hide.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use gix::objs::tree::EntryKind;
use gix::ObjectId;

use crate::error::Result;
use crate::repo::Repo;
use crate::worktree::{converted, index_tree};

/// What differs between a worktree and its index.
#[derive(Debug, Default)]
pub struct Found {
    /// Entries (by position in the index) whose file differs: what the file is
    /// now (kind and blob id), or `None` when it is gone.
    pub changed: Vec<(usize, Option<(EntryKind, ObjectId)>)>,
    /// Untracked files (regular files and symbolic links), not ignored.
    pub untracked: Vec<Vec<u8>>,
}

impl Found {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.untracked.is_empty()
    }
}

/// How the worktree of `repo` differs from `index` (read from its index
/// file); `None` means only that git must be asked. `trust_stat_data`: the
/// files were just written by a checkout that recorded their stat data (no
/// entry is racily clean).
pub fn scan_worktree(repo: &Repo, index: &gix::index::File, trust_stat_data: bool) -> Result<Option<Found>> {
    let Ok(root) = repo.workdir() else { return Ok(None) };
    let config = repo.gix.config_snapshot();
    let off = |key: &str| !config.boolean(key).unwrap_or(true);
    if config.boolean("core.ignoreCase").unwrap_or(false)
        || config.boolean("core.sparseCheckout").unwrap_or(false)
        || off("core.fileMode")
        || off("core.symlinks")
    {
        return Ok(None);
    }
    // An entry written in the index file's second may have changed since without its stat data showing it.
    let written = match std::fs::metadata(repo.gix.index_path()) {
        _ if trust_stat_data => i64::MAX,
        Ok(meta) => meta.mtime(),
        Err(_) => return Ok(None),
    };
    let special = gix::index::entry::Flags::SKIP_WORKTREE | gix::index::entry::Flags::INTENT_TO_ADD;
    let plain = index.entries().iter().all(|e| {
        e.stage_raw() == 0 && !e.flags.intersects(special) && !e.mode.contains(gix::index::entry::Mode::COMMIT)
    });
    if !plain {
        return Ok(None);
    }
    let racy = Racy { written, by_content: !converted::may_convert(repo, index, &[]), hash: repo.gix.object_hash() };
    let file = repo.git_dir().join("codex-handoff-listings");
    let known = read_listings(&file);
    let Some((changed, unknown, listed)) = scan(&root, index, &known, &racy) else { return Ok(None) };
    // macOS: git reads names from directories precomposed (NFC, `core.precomposeUnicode`),
    // which this scan does not; a name it did not expect that is not ASCII is git's to judge.
    if cfg!(target_os = "macos")
        && config.boolean("core.precomposeUnicode").unwrap_or(false)
        && unknown.iter().any(|name| !name.is_ascii())
    {
        return Ok(None);
    }
    if listed != known {
        write_listings(&file, &listed);
    }
    let Some(untracked) = not_ignored(repo, unknown)? else { return Ok(None) };
    // Only files and links: a new directory's contents are git's to list.
    if untracked.iter().any(|p| p.ends_with(b"/")) {
        return Ok(None);
    }
    Ok(Some(Found { changed, untracked }))
}

/// A directory as last listed: its times and inode, and a hash of the names
/// the index expected in it (no other name was there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Listed {
    times: [i64; 4],
    ino: u64,
    names: u64,
}

type Listings = std::collections::HashMap<Vec<u8>, Listed>;

/// One line per directory: `mtime mtime_ns ctime ctime_ns ino names path-in-hex`.
fn read_listings(file: &Path) -> Listings {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let [a, b, c, d, ino, names, path] = fields.as_slice() else { return None };
            let times = [a.parse().ok()?, b.parse().ok()?, c.parse().ok()?, d.parse().ok()?];
            let path = (0..path.len())
                .step_by(2)
                .map(|i| path.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                .collect::<Option<Vec<u8>>>()?;
            Some((path, Listed { times, ino: ino.parse().ok()?, names: names.parse().ok()? }))
        })
        .collect()
}

/// The listings, in the form [`read_listings`] reads.
fn write_listings(file: &Path, listed: &Listings) {
    let mut text = String::with_capacity(listed.len() * 96);
    for (path, l) in listed {
        let hex: String = path.iter().map(|b| format!("{b:02x}")).collect();
        let [a, b, c, d] = l.times;
        text += &format!("{a} {b} {c} {d} {} {} {hex}\n", l.ino, l.names);
    }
    crate::cache_file::write(file, text.as_bytes());
}

/// How entries that stat data cannot vouch for are judged.
struct Racy {
    /// The second the index file was written in: entries not older are racily clean.
    written: i64,
    /// Bytes go into git unconverted, so a file's content can be compared by its blob id.
    by_content: bool,
    hash: gix::hash::Kind,
}

/// Racily clean files larger than this are left to git.
const MAX_HASHED: u64 = 16 << 20;

/// One directory of the worktree as the index sees it.
struct Dir<'a> {
    path: &'a [u8],
    /// The entries directly in it: name and index position.
    files: Vec<(&'a [u8], usize)>,
    /// The directories in it that hold entries.
    subdirs: Vec<&'a [u8]>,
}

/// The directories that hold index entries, the worktree's root first.
fn dirs_of(index: &gix::index::File) -> Vec<Dir<'_>> {
    let mut dirs = vec![Dir { path: b"", files: Vec::new(), subdirs: Vec::new() }];
    let mut at: std::collections::HashMap<&[u8], usize> = std::collections::HashMap::new();
    at.insert(b"", 0);
    for (position, entry) in index.entries().iter().enumerate() {
        let path: &[u8] = entry.path(index);
        let (parent, name) = split(path);
        let slot = dir_slot(&mut dirs, &mut at, parent);
        dirs[slot].files.push((name, position));
    }
    dirs
}

/// The position of directory `path` in `dirs`, added (with its parents) when new.
fn dir_slot<'a>(dirs: &mut Vec<Dir<'a>>, at: &mut std::collections::HashMap<&'a [u8], usize>, path: &'a [u8]) -> usize {
    if let Some(slot) = at.get(path) {
        return *slot;
    }
    let (parent, name) = split(path);
    let parent = dir_slot(dirs, at, parent);
    dirs[parent].subdirs.push(name);
    dirs.push(Dir { path, files: Vec::new(), subdirs: Vec::new() });
    at.insert(path, dirs.len() - 1);
    dirs.len() - 1
}

/// A path's directory ("" at the root) and name.
fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(slash) => (&path[..slash], &path[slash + 1..]),
        None => (b"", path),
    }
}

/// The entries found changed, the names the index lacks and the listings to remember.
type Scanned = (Vec<(usize, Option<(EntryKind, ObjectId)>)>, Vec<Vec<u8>>, Listings);

/// Compare every entry's stat data with its file (and, where that differs,
/// its content), and list each directory (unless `known` says its listing
/// is unchanged) for names the index lacks (directories with a trailing
/// `/`), on all cores. Also returns the listings to remember. `None` as
/// soon as anything needs git.
fn scan(root: &Path, index: &gix::index::File, known: &Listings, racy: &Racy) -> Option<Scanned> {
    let dirs = dirs_of(index);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let differs = AtomicBool::new(false);
    let results = std::sync::Mutex::new((Vec::new(), Vec::new(), Listings::new()));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    std::thread::scope(|scope| {
        for worker in 0..workers {
            let (dirs, differs, results) = (&dirs, &differs, &results);
            scope.spawn(move || {
                let mut found = Vec::new();
                let mut changed = Vec::new();
                let mut listed = Vec::new();
                for dir in dirs.iter().skip(worker).step_by(workers) {
                    let checked = check_dir(root, dir, index, known, racy, now, &mut changed, &mut found);
                    match checked {
                        Some(remember) if !differs.load(Ordering::Relaxed) => listed.extend(remember),
                        _ => {
                            differs.store(true, Ordering::Relaxed);
                            return;
                        }
                    }
                }
                let mut results = results.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                results.0.extend(changed);
                results.1.extend(found);
                results.2.extend(listed);
            });
        }
    });
    if differs.load(Ordering::Relaxed) {
        return None;
    }
    Some(results.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// FNV-1a of the names, each ended by a NUL.
fn names_hash(names: &[&[u8]]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in names.iter().flat_map(|n| n.iter().chain(std::iter::once(&0u8))) {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// One directory: its entries' stat data against their files (looked up
/// from the directory, not from the root), and its listing against the
/// names the index expects there.
/// `None`: git must be asked; else the listing to remember, if any.
#[allow(clippy::too_many_arguments)]
fn check_dir(
    root: &Path,
    dir: &Dir,
    index: &gix::index::File,
    known: &Listings,
    racy: &Racy,
    now: i64,
    changed: &mut Vec<(usize, Option<(EntryKind, ObjectId)>)>,
    unknown: &mut Vec<Vec<u8>>,
) -> Option<Option<(Vec<u8>, Listed)>> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;
    let full = if dir.path.is_empty() { root.to_path_buf() } else { root.join(std::ffi::OsStr::from_bytes(dir.path)) };
    let handle = std::fs::File::open(&full).ok()?;
    let entries = index.entries();
    let mut name = Vec::with_capacity(256);
    for (file, position) in &dir.files {
        name.clear();
        name.extend_from_slice(file);
        name.push(0);
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `name` is NUL-terminated, `st` is written by fstatat before it is read.
        let got = unsafe {
            libc::fstatat(handle.as_raw_fd(), name.as_ptr().cast(), st.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW)
        };
        if got != 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOENT) {
                changed.push((*position, None));
                continue;
            }
            return None;
        }
        // SAFETY: fstatat returned 0, so it filled `st`.
        let st = unsafe { st.assume_init() };
        let entry = &entries[*position];
        if compare_stat(entry, &st, racy.written) == Stat::Same {
            continue;
        }
        // Stat data cannot tell: the content does, where nothing converts bytes between file and blob.
        if !racy.by_content {
            return None;
        }
        let now = content_of(&handle, &name, &st, racy.hash)?;
        if now != (index_tree::kind_of(entry.mode)?, entry.id) {
            changed.push((*position, Some(now)));
        }
    }
    let mut expected: Vec<&[u8]> = dir.files.iter().map(|(n, _)| *n).chain(dir.subdirs.iter().copied()).collect();
    expected.sort_unstable();
    let meta = handle.metadata().ok()?;
    let stamp = Listed {
        times: [meta.mtime(), meta.mtime_nsec(), meta.ctime(), meta.ctime_nsec()],
        ino: meta.ino(),
        names: names_hash(&expected),
    };
    if known.get(dir.path) == Some(&stamp) {
        return Some(Some((dir.path.to_vec(), stamp)));
    }
    let before = unknown.len();
    for item in std::fs::read_dir(&full).ok()? {
        let item = item.ok()?;
        let found = item.file_name();
        let found = found.as_bytes();
        if found == b".git" {
            continue;
        }
        let kind = item.file_type().ok()?;
        if expected.binary_search(&found).is_ok() {
            // A directory of entries must be a directory (not a link to one); files were checked above.
            if dir.subdirs.contains(&found) && !kind.is_dir() {
                return None;
            }
            continue;
        }
        let mut path = dir.path.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(found);
        if kind.is_dir() {
            path.push(b'/');
        }
        unknown.push(path);
    }
    // Only the names expected, and no change for over a second: worth remembering.
    let settled = stamp.times[0].max(stamp.times[2]) + 1 < now;
    Some((unknown.len() == before && settled).then(|| (dir.path.to_vec(), stamp)))
}

/// What an entry's stat data says of its file.
#[derive(Debug, PartialEq, Eq)]
enum Stat {
    Same,
    Differs,
    /// Only the content can tell: racily clean, or a size git zeroed.
    Unsure,
}

/// [`same_stat`], with git's two cases that need the content: an entry
/// not older than its index file, and one whose size git set to 0 so that
/// it would be looked at again (and nothing else differs).
fn compare_stat(entry: &gix::index::Entry, st: &libc::stat, written: i64) -> Stat {
    if same_stat(entry, st) {
        return if i64::from(entry.stat.mtime.secs) < written { Stat::Same } else { Stat::Unsure };
    }
    if entry.stat.size == 0 && st.st_size != 0 {
        let mut as_if_sized = entry.clone();
        as_if_sized.stat.size = st.st_size as u32;
        if same_stat(&as_if_sized, st) {
            return Stat::Unsure;
        }
    }
    Stat::Differs
}

/// What the file `name` (NUL-terminated) in directory `dir` is as a tree
/// entry: its kind and blob id (for a symbolic link, of its target).
/// `None` for anything else (a directory, a device) or a file too large.
fn content_of(
    dir: &std::fs::File,
    name: &[u8],
    st: &libc::stat,
    hash: gix::hash::Kind,
) -> Option<(EntryKind, ObjectId)> {
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFLNK => EntryKind::Link,
        libc::S_IFREG if st.st_mode & 0o100 != 0 => EntryKind::BlobExecutable,
        libc::S_IFREG => EntryKind::Blob,
        _ => return None,
    };
    let bytes = read_at(dir, name, st.st_mode & libc::S_IFMT == libc::S_IFLNK, st.st_size as u64)?;
    let id = gix::objs::compute_hash(hash, gix::objs::Kind::Blob, &bytes).ok()?;
    Some((kind, id))
}

/// The bytes of file `name` (NUL-terminated) in `dir`, or a link's target,
/// read without following links; `None` unless there are exactly `size`.
pub(crate) fn read_at(dir: &std::fs::File, name: &[u8], link: bool, size: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::io::{AsRawFd, FromRawFd};
    if size > MAX_HASHED {
        return None;
    }
    if link {
        let mut target = vec![0u8; size as usize + 1];
        // SAFETY: `name` is NUL-terminated and `target` has room for the length passed.
        let got = unsafe {
            libc::readlinkat(dir.as_raw_fd(), name.as_ptr().cast(), target.as_mut_ptr().cast(), target.len())
        };
        if got < 0 || got as u64 != size {
            return None;
        }
        target.truncate(size as usize);
        return Some(target);
    }
    // SAFETY: `name` is NUL-terminated; the descriptor returned is owned by the File made from it.
    let fd = unsafe {
        libc::openat(dir.as_raw_fd(), name.as_ptr().cast(), libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut bytes = Vec::with_capacity(size as usize);
    if file.take(size + 1).read_to_end(&mut bytes).is_err() || bytes.len() as u64 != size {
        return None;
    }
    Some(bytes)
}

/// The entry's recorded stat data is the file's, to the nanosecond (sizes
/// as git keeps them, in 32 bits), and the file is of the entry's kind.
fn same_stat(entry: &gix::index::Entry, st: &libc::stat) -> bool {
    use gix::index::entry::Mode;
    let s = &entry.stat;
    let kind = st.st_mode & libc::S_IFMT;
    let kind_matches = match entry.mode {
        Mode::FILE => kind == libc::S_IFREG && st.st_mode & 0o100 == 0,
        Mode::FILE_EXECUTABLE => kind == libc::S_IFREG && st.st_mode & 0o100 != 0,
        Mode::SYMLINK => kind == libc::S_IFLNK,
        _ => false,
    };
    kind_matches
        && i64::from(s.mtime.secs) == st.st_mtime
        && i64::from(s.mtime.nsecs) == st.st_mtime_nsec
        && i64::from(s.ctime.secs) == st.st_ctime
        && i64::from(s.ctime.nsecs) == st.st_ctime_nsec
        && s.ino == st.st_ino as u32
        && s.uid == st.st_uid
        && s.gid == st.st_gid
        && s.size == st.st_size as u32
}

/// Of `paths` (none of them in the index), those git does not ignore;
/// `None` when git could not be asked.
fn not_ignored(repo: &Repo, paths: Vec<Vec<u8>>) -> Result<Option<Vec<Vec<u8>>>> {
    if paths.is_empty() {
        return Ok(Some(paths));
    }
    let mut input = Vec::new();
    for path in &paths {
        input.extend_from_slice(path);
        input.push(0);
    }
    // check-ignore reads its paths as pathspecs and refuses literal ones: a
    // name it could take for magic (`:(...)`) is left to git status.
    if paths.iter().any(|p| p.starts_with(b":")) {
        return Ok(None);
    }
    let mut cmd = repo.git().command(["check-ignore", "-z", "--stdin", "--no-index"]);
    // check-ignore exits 1 when it ignores none of them.
    let Ok(out) = crate::git::run_command_exiting(&mut cmd, Some(&input), &[0, 1]) else { return Ok(None) };
    let ignored: HashSet<&[u8]> = out.split(|b| *b == 0).filter(|p| !p.is_empty()).collect();
    Ok(Some(paths.into_iter().filter(|p| !ignored.contains(p.as_slice())).collect()))
}
