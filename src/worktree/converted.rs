//! Changed files whose working bytes are not what git's checkout would
//! write for their blob: line-ending conversion (`text`, `eol`,
//! `core.autocrlf`), `ident` and other filters. A file written with LF in a
//! `text eol=crlf` repository is clean to `git status`, yet checkout on the
//! other machine would write CRLF; the snapshot keeps such a file's exact
//! bytes as a blob, and the destination writes them after checkout.
//!
//! Only files that differ from HEAD are looked at: the others are as
//! checkout wrote them. Git LFS files are left out (their content travels
//! as an LFS object); a changed file that is an LFS pointer itself is
//! reported as such.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use gix::bstr::{BString, ByteSlice};
use gix::ObjectId;

use crate::error::{Context, Error, Result};
use crate::git::Git;
use crate::objects::parse_id;
use crate::repo::Repo;
use crate::worktree::lfs;
use crate::worktree::state::{parse_pointer, parse_raw_diff, WorktreeState, MAX_POINTER};

#[derive(Debug, Default)]
pub struct Checked {
    /// Paths and the blobs of their exact bytes.
    pub exact_bytes: Vec<(BString, ObjectId)>,
    /// Changed files whose working copy is a Git LFS pointer.
    pub pointers: Vec<BString>,
}

/// Could checkout write other bytes than a blob holds here? Only with
/// attributes (a `.gitattributes` file, `info/attributes`, a global or
/// system attributes file) or line-ending settings.
pub fn may_convert(repo: &Repo, index: &gix::index::File, changed: &[BString]) -> bool {
    if index.entries().iter().any(|e| is_attributes(e.path(index))) || changed.iter().any(|p| is_attributes(p)) {
        return true;
    }
    if !crate::worktree::checkout_settings::carried_settings(repo).is_empty() {
        return true;
    }
    let global = repo.config_string("core.attributesFile").map(std::path::PathBuf::from).or_else(|| {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))?;
        Some(config.join("git").join("attributes"))
    });
    let info = repo.common_dir().join("info").join("attributes");
    [global, Some(info), Some("/etc/gitattributes".into()), system_attributes().map(Path::to_path_buf)]
        .into_iter()
        .flatten()
        .any(|file| file.is_file())
}

/// The system-wide attributes file of the git on PATH, asked once per
/// process: where it is depends on how git was built (`/etc/gitattributes`
/// for a distribution's package, under `/usr/local` or `/opt/homebrew` for
/// others, inside the developer tools for Apple's); `/etc/gitattributes`
/// is looked at besides (an extra file only makes the scan more careful).
/// `None` from a git too old to say (before 2.42) or told to read none.
fn system_attributes() -> Option<&'static Path> {
    static FILE: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        std::process::Command::new("git")
            .args(["var", "GIT_ATTR_SYSTEM"])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|text| text.trim_end_matches('\n').to_owned())
            .filter(|path| path.starts_with('/'))
            .map(std::path::PathBuf::from)
    })
    .as_deref()
}

/// Is `path` a `.gitattributes` file (at any depth)?
pub fn is_attributes(path: &[u8]) -> bool {
    path.rsplit(|b| *b == b'/').next() == Some(b".gitattributes".as_slice())
}

/// Check the regular files of the working files tree `worktree_tree` that
/// differ from HEAD's tree, in the worktree `repo` is opened at. `staged`
/// is git bound to an index that holds `worktree_tree`'s entries; without
/// `may_convert` (see [`may_convert`]) only LFS pointers are looked for.
pub fn check(
    repo: &Repo,
    head: Option<ObjectId>,
    worktree_tree: ObjectId,
    staged: &Git,
    may_convert: bool,
) -> Result<Checked> {
    let mut checked = Checked::default();
    let head_tree = match head {
        Some(head) => repo.gix.find_commit(head)?.tree_id()?.detach(),
        None => ObjectId::empty_tree(repo.gix.object_hash()),
    };
    // Nothing converts bytes here and no file can be an LFS pointer: nothing to look at.
    if head_tree == worktree_tree || (!may_convert && !lfs::in_use(repo)) {
        return Ok(checked);
    }
    let diff = repo.git().run([
        "diff-tree",
        "-r",
        "-z",
        "--no-renames",
        &head_tree.to_string(),
        &worktree_tree.to_string(),
    ])?;
    let root = repo.workdir()?;
    let mut candidates = Vec::new();
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
        if repo.gix.find_header(blob)?.size() <= MAX_POINTER as u64 {
            let data = repo.gix.find_blob(blob)?.data.clone();
            if parse_pointer(&data).is_some() {
                // The content travels as an LFS object; a pointer written as the file stays one.
                if meta.len() == data.len() as u64 && std::fs::read(&file)? == data {
                    checked.pointers.push(change.path);
                }
                continue;
            }
        }
        candidates.push((change.path, blob, meta.len()));
    }
    if candidates.is_empty() || !may_convert {
        return Ok(checked);
    }
    // What checkout would write for each, side by side with what is there.
    let scratch = tempfile::Builder::new()
        .prefix("checkout-")
        .tempdir_in(repo.private_dir()?)
        .context("tempdir", || "could not create a temporary directory".into())?;
    let mut list = Vec::new();
    for (path, _, _) in &candidates {
        list.extend_from_slice(path);
        list.push(0);
    }
    let mut prefix = scratch.path().as_os_str().as_bytes().to_vec();
    prefix.push(b'/');
    let mut cmd = staged.command(["checkout-index", "-f", "-z", "--stdin"]);
    cmd.arg(format!("--prefix={}", String::from_utf8_lossy(&prefix)));
    crate::git::run_command(&mut cmd, Some(&list))?;
    for (path, _, len) in candidates {
        let file = root.join(std::ffi::OsStr::from_bytes(&path));
        let written = scratch.path().join(std::ffi::OsStr::from_bytes(&path));
        let same = std::fs::metadata(&written).is_ok_and(|m| m.len() == len)
            && hash_file(repo, &written)? == hash_file(repo, &file)?;
        if !same {
            let id = Git::new(repo.common_dir(), None).run_with_input(
                ["hash-object", "-w", "--no-filters", "--stdin-paths"],
                Some(file.as_os_str().as_bytes()),
            )?;
            let id = parse_id(&String::from_utf8_lossy(&id))?;
            checked.exact_bytes.push((path, id));
        }
    }
    Ok(checked)
}

/// Files whose bytes checkout does not reproduce get the snapshot's bytes,
/// after checkout. Each must be a file of the snapshot's working tree
/// (what arrived is hostile).
pub fn write_exact_bytes(repo: &Repo, root: &Path, state: &WorktreeState) -> Result<()> {
    if state.exact_bytes.is_empty() {
        return Ok(());
    }
    let tree = repo.gix.find_tree(state.worktree_tree)?;
    let mut written = Vec::new();
    for (path, blob) in &state.exact_bytes {
        let rel = Path::new(std::ffi::OsStr::from_bytes(path));
        let is_file = tree.lookup_entry_by_path(rel)?.is_some_and(|e| e.mode().is_blob());
        if !is_file {
            return Err(Error::failed(
                "bad_snapshot",
                format!("the snapshot keeps bytes for {}, which it does not hold", path.to_str_lossy()),
            ));
        }
        let file = root.join(rel);
        if !std::fs::symlink_metadata(&file).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let mut out = std::fs::OpenOptions::new().write(true).truncate(true).open(&file)?;
        let mut child = repo
            .git()
            .command(["cat-file", "blob", &blob.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        if let Some(mut bytes) = child.stdout.take() {
            std::io::copy(&mut bytes, &mut out)?;
        }
        if !child.wait()?.success() {
            return Err(Error::failed(
                "bad_snapshot",
                format!("the exact bytes of {} are missing", path.to_str_lossy()),
            ));
        }
        written.push(path);
    }
    // The index recorded the size checkout wrote; git would call a file of
    // another size modified without looking. Entries without stat data get looked at.
    let index = gix::index::File::at(repo.gix.index_path(), repo.gix.object_hash(), false, Default::default())
        .map_err(|e| Error::failed("index_unreadable", "could not read the restored index").with_source(e))?;
    let mut info = Vec::new();
    for path in written {
        if let Some(entry) = index.entry_by_path(path.as_bstr()) {
            info.extend_from_slice(format!("{:o} {}\t", entry.mode.bits(), entry.id).as_bytes());
            info.extend_from_slice(path);
            info.push(0);
        }
    }
    if !info.is_empty() {
        repo.git().run_with_input(["update-index", "-z", "--index-info"], Some(&info))?;
    }
    Ok(())
}

/// The blob id of a file's bytes as they are (no filters), read in chunks.
fn hash_file(repo: &Repo, file: &Path) -> Result<ObjectId> {
    let len = std::fs::metadata(file)?.len();
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
