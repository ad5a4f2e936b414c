//! Changed files whose working bytes are not what git's checkout would
//! write for their blob: line-ending conversion (`text`, `eol`,
//! `core.autocrlf`), `ident` and other filters. A file written with LF in a
//! `text eol=crlf` repository is clean to `git status`, yet checkout on the
//! other machine would write CRLF; the snapshot keeps such a file's exact
//! bytes as a blob, and the destination writes them after checkout.
//!
//! Git LFS files are left out (their content travels as an LFS object); a
//! changed file that is an LFS pointer itself is reported as such.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;

use gix::bstr::{BString, ByteSlice};
use gix::ObjectId;

use crate::error::{Error, Result};
use crate::repo::Repo;
use crate::thread::lfs;

#[derive(Debug, Default)]
pub struct Checked {
    /// Paths and the blobs of their exact bytes.
    pub exact_bytes: Vec<(BString, ObjectId)>,
    /// Changed files whose working copy is a Git LFS pointer.
    pub pointers: Vec<BString>,
}

/// Check the regular files that differ between the index tree and the
/// working files tree of the worktree `repo` is opened at.
pub fn check(repo: &Repo, index_tree: ObjectId, worktree_tree: ObjectId) -> Result<Checked> {
    let mut checked = Checked::default();
    if index_tree == worktree_tree {
        return Ok(checked);
    }
    let diff = repo.git().run([
        "diff-tree",
        "-r",
        "-z",
        "--no-renames",
        &index_tree.to_string(),
        &worktree_tree.to_string(),
    ])?;
    let root = repo.workdir()?;
    for change in parse_raw_diff(&diff)? {
        let Some((mode, blob)) = change.new else { continue };
        if mode != "100644" && mode != "100755" {
            continue;
        }
        let file = root.join(std::ffi::OsStr::from_bytes(&change.path));
        let Ok(meta) = std::fs::symlink_metadata(&file) else { continue };
        if !meta.is_file() {
            continue;
        }
        let header = repo.gix.find_header(blob)?;
        if header.size() <= lfs::MAX_POINTER as u64 {
            let data = repo.gix.find_blob(blob)?.data.clone();
            if lfs::parse_pointer(&data).is_some() {
                // The content travels as an LFS object; a pointer written as the file stays one.
                if meta.len() == data.len() as u64 && std::fs::read(&file)? == data {
                    checked.pointers.push(change.path);
                }
                continue;
            }
        }
        if hash_file(repo, &file, meta.len())? != blob {
            let id = repo.gix.write_blob_stream(std::fs::File::open(&file)?)?.detach();
            checked.exact_bytes.push((change.path, id));
        }
    }
    Ok(checked)
}

/// The blob id of a file's bytes as they are (no filters), read in chunks.
fn hash_file(repo: &Repo, file: &std::path::Path, len: u64) -> Result<ObjectId> {
    let mut hasher = gix::hash::hasher(repo.gix.object_hash());
    hasher.update(&gix::objs::encode::loose_header(gix::objs::Kind::Blob, len));
    let mut reader = std::fs::File::open(file)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut read_total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        read_total += n as u64;
        hasher.update(&buf[..n]);
    }
    if read_total != len {
        // The file changed while it was read: it cannot be a match.
        return Ok(ObjectId::null(repo.gix.object_hash()));
    }
    hasher.try_finalize().map_err(|e| Error::failed("hash", "hashing a file failed").with_source(e))
}

/// One entry of `git diff-tree -r -z` raw output.
pub(crate) struct RawChange {
    pub path: BString,
    /// Mode and id on the old side; `None` when the path is new.
    pub old: Option<(String, ObjectId)>,
    /// Mode and id on the new side; `None` when the path is gone there.
    pub new: Option<(String, ObjectId)>,
}

/// Parse `git diff-tree -r -z` raw output.
pub(crate) fn parse_raw_diff(out: &[u8]) -> Result<Vec<RawChange>> {
    let bad = || Error::failed("bad_diff", "git diff-tree printed something unexpected");
    let mut fields = out.split(|b| *b == 0).filter(|f| !f.is_empty());
    let mut changes = Vec::new();
    while let Some(header) = fields.next() {
        let header = header.to_str().map_err(|_| bad())?;
        let parts: Vec<&str> = header.trim_start_matches(':').split(' ').collect();
        let [old_mode, new_mode, old_id, new_id, status, ..] = parts.as_slice() else {
            return Err(bad());
        };
        let path = fields.next().ok_or_else(bad)?.as_bstr().to_owned();
        let side = |mode: &str, id: &str| -> Result<Option<(String, ObjectId)>> {
            if mode.chars().all(|c| c == '0') {
                return Ok(None);
            }
            Ok(Some((mode.to_owned(), ObjectId::from_hex(id.as_bytes()).map_err(|_| bad())?)))
        };
        let old = if status.starts_with('A') { None } else { side(old_mode, old_id)? };
        let new = if status.starts_with('D') { None } else { side(new_mode, new_id)? };
        changes.push(RawChange { path, old, new });
    }
    Ok(changes)
}
