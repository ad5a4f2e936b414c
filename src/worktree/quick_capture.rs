//! A snapshot's working files tree made in this process from what
//! `clean_check` found (files changed or deleted, untracked files), instead
//! of `git status`, `update-index` and `write-tree` on a copy of the index:
//! the changed files' blobs are written, and the tree is built from the
//! index's entries with those changes (`index_tree`). Only where nothing
//! converts bytes and Git LFS is not in use; a file that changed again
//! since it was scanned, or is too large to read at once, sends the caller
//! to git.

use std::collections::HashMap;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use gix::bstr::{BString, ByteSlice};
use gix::objs::tree::EntryKind;
use gix::ObjectId;

use crate::error::Result;
use crate::repo::Repo;
use crate::worktree::clean_check::Found;
use crate::worktree::index_tree::{self, Item};
use crate::worktree::state::{parse_raw_diff, Changes};
use crate::worktree::{big_files, converted, lfs};

/// Files larger than this are not read whole (big files are streamed into a pack before this).
const MAX_READ: u64 = 16 << 20;

/// The working files tree and what went into it.
#[derive(Default)]
pub struct Quick {
    /// `None`: the worktree is exactly its index.
    pub tree: Option<ObjectId>,
    /// Tracked paths whose file differs from the index (changed or deleted).
    pub tracked: Vec<BString>,
    pub untracked: Vec<BString>,
    /// Bytes of the untracked files.
    pub untracked_bytes: u64,
}

/// The working files tree of the worktree at `root`, whose index is
/// `index` and which differs from it as `found` says; `None`: ask git.
/// `just_restored`: a restore just wrote it (its stat data is trusted).
pub fn worktree(
    repo: &Repo,
    index: &gix::index::File,
    found: &Found,
    root: &Path,
    just_restored: bool,
) -> Result<Option<Quick>> {
    if found.is_empty() {
        return Ok(Some(Quick::default()));
    }
    if lfs::in_use(repo) {
        return Ok(None);
    }
    let entries = index.entries();
    let now: HashMap<usize, Option<(EntryKind, ObjectId)>> = found.changed.iter().cloned().collect();
    let mut tracked = Vec::new();
    for (position, change) in &found.changed {
        let path = entries[*position].path(index);
        if converted::is_attributes(path) {
            return Ok(None);
        }
        // Read again to store it: it must still be what the scan saw.
        if let Some((kind, id)) = change {
            if write_file(repo, root, path)?.map(|(kind, id, _)| (kind, id)) != Some((*kind, *id)) {
                return Ok(None);
            }
        }
        tracked.push(path.to_owned());
    }
    let mut added = Vec::new();
    let mut untracked_bytes = 0;
    // Big files go into one pack together, read once (or not at all where this machine knows them).
    let mut big = Vec::new();
    for path in &found.untracked {
        if converted::is_attributes(path) {
            return Ok(None);
        }
        let len = size(root, path);
        if big_files::usable(repo) && big_files::is_big(len) {
            untracked_bytes += len;
            big.push(path.as_slice());
            continue;
        }
        let Some((kind, id, len)) = write_file(repo, root, path)? else { return Ok(None) };
        untracked_bytes += len;
        added.push((path.as_slice(), kind, id));
    }
    let Some(stored) = big_files::store(repo, root, &big, just_restored)? else { return Ok(None) };
    added.extend(big.iter().zip(stored).map(|(path, (kind, id))| (*path, kind, id)));
    let mut items = Vec::with_capacity(entries.len() + added.len());
    for (position, entry) in entries.iter().enumerate() {
        let path = entry.path(index).as_bytes();
        match now.get(&position) {
            Some(None) => {}
            Some(Some((kind, id))) => items.push(Item { path, kind: *kind, id: *id }),
            None => {
                let Some(kind) = index_tree::kind_of(entry.mode) else { return Ok(None) };
                items.push(Item { path, kind, id: entry.id });
            }
        }
    }
    items.extend(added.iter().map(|(path, kind, id)| Item { path, kind: *kind, id: *id }));
    items.sort_by(|a, b| a.path.cmp(b.path));
    let Some(tree) = index_tree::write_items(repo, &items)? else { return Ok(None) };
    let untracked = found.untracked.iter().map(|p| p.as_bstr().to_owned()).collect();
    Ok(Some(Quick { tree: Some(tree), tracked, untracked, untracked_bytes }))
}

/// Store the file at `path` under `root` as a blob: its kind, id and size;
/// `None` for what is neither a file nor a link, or too large.
fn write_file(repo: &Repo, root: &Path, path: &[u8]) -> Result<Option<(EntryKind, ObjectId, u64)>> {
    use std::os::unix::fs::PermissionsExt;
    let file = root.join(std::ffi::OsStr::from_bytes(path));
    let Ok(meta) = std::fs::symlink_metadata(&file) else { return Ok(None) };
    if meta.len() > MAX_READ {
        return Ok(None);
    }
    let (kind, bytes) = if meta.file_type().is_symlink() {
        let Ok(target) = std::fs::read_link(&file) else { return Ok(None) };
        (EntryKind::Link, target.into_os_string().into_vec())
    } else if meta.is_file() {
        let kind = if meta.permissions().mode() & 0o100 != 0 { EntryKind::BlobExecutable } else { EntryKind::Blob };
        let Ok(bytes) = std::fs::read(&file) else { return Ok(None) };
        (kind, bytes)
    } else {
        return Ok(None);
    };
    Ok(Some((kind, repo.gix.write_blob(&bytes)?.detach(), meta.len())))
}

fn size(root: &Path, path: &[u8]) -> u64 {
    std::fs::symlink_metadata(root.join(std::ffi::OsStr::from_bytes(path))).map(|m| m.len()).unwrap_or(0)
}

/// The paths whose entries differ between HEAD and the index's tree.
pub fn staged_paths(repo: &Repo, head: Option<ObjectId>, index_tree: ObjectId) -> Result<Vec<BString>> {
    let head_tree = match head {
        Some(head) => repo.gix.find_commit(head)?.tree_id()?.detach(),
        None => ObjectId::empty_tree(repo.gix.object_hash()),
    };
    if head_tree == index_tree {
        return Ok(Vec::new());
    }
    let diff =
        repo.git().run(["diff-tree", "-r", "-z", "--no-renames", &head_tree.to_string(), &index_tree.to_string()])?;
    Ok(parse_raw_diff(&diff)?.into_iter().map(|change| change.path).collect())
}

/// What a plan counts: the entries staged (differing from HEAD), the
/// tracked files that differ from the index, the untracked ones, and the
/// bytes of all of those files.
pub fn counts(
    repo: &Repo,
    head: Option<ObjectId>,
    index_tree: ObjectId,
    root: &Path,
    quick: &Quick,
) -> Result<Changes> {
    let staged = staged_paths(repo, head, index_tree)?;
    let mut changed: std::collections::BTreeSet<&BString> = staged.iter().collect();
    changed.extend(quick.tracked.iter());
    Ok(Changes {
        staged: staged.len(),
        unstaged: quick.tracked.len(),
        untracked: quick.untracked.len(),
        bytes: changed.iter().map(|p| size(root, p)).sum::<u64>() + quick.untracked_bytes,
        submodules: Vec::new(),
    })
}
