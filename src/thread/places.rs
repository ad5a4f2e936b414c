//! Where a thread lives on each machine: the worktree it works in here
//! (kept per machine, beside the repository: paths do not travel), with
//! its project subdirectory, and the one on its owner as last recorded.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::machine::Machine;
use crate::repo::Repo;
use crate::thread::store::Thread;

/// The worktree a thread lives in (or last lived in) on this machine. Kept
/// per machine, beside the repository: paths do not travel.
pub fn worktree_record(repo: &Repo, uuid: &str) -> Result<Option<PathBuf>> {
    Ok(read_worktree_record(repo, uuid)?.map(|(path, _)| path))
}

/// The directory a thread works in: its worktree root `root`, and the
/// project subdirectory below it, if any.
pub fn project_dir(root: &Path, subdirectory: &str) -> PathBuf {
    if subdirectory.is_empty() {
        root.to_path_buf()
    } else {
        root.join(subdirectory)
    }
}

/// Where the thread lives on this machine (its worktree here, with the
/// project subdirectory); `None` when another machine owns it.
pub fn worktree_here(repo: &Repo, thread: &Thread, me: &Machine) -> Option<PathBuf> {
    if !thread.state.owned_by(me) {
        return None;
    }
    let recorded = worktree_record(repo, &thread.state.uuid).ok().flatten();
    let taken_here = thread.state.worktree.as_ref().filter(|_| thread.state.taken_on(me)).map(PathBuf::from);
    Some(project_dir(&recorded.or(taken_here)?, &thread.state.subdirectory))
}

/// Where the thread lives on its owner, as last recorded: here, its
/// worktree; elsewhere, the worktree the handoff that took it there
/// planned, else the one its last snapshot there was taken in.
pub fn owner_worktree(repo: &Repo, thread: &Thread, me: &Machine) -> Option<PathBuf> {
    let s = &thread.state;
    if s.owned_by(me) {
        return worktree_here(repo, thread, me);
    }
    let owner = Machine { id: s.owner_machine_id.clone().unwrap_or_default(), name: s.owner_machine.clone() };
    let handed = s
        .handoff
        .as_ref()
        .filter(|h| owner.is(h.to_machine_id.as_deref(), &h.to_machine))
        .and_then(|h| h.to_worktree.clone());
    let root = handed.or_else(|| s.worktree.clone().filter(|_| s.taken_on(&owner)))?;
    Some(project_dir(Path::new(&root), &s.subdirectory))
}

/// Was the thread's worktree here made by a handoff (rather than being one
/// the user made)? Such a worktree lets go of the branch when the thread leaves.
pub fn worktree_made_here(repo: &Repo, uuid: &str) -> Result<bool> {
    Ok(read_worktree_record(repo, uuid)?.is_some_and(|(_, made)| made))
}

/// The record: the path on the first line, `made` on the second for a
/// worktree a handoff made. The path's bytes are kept as they are: a
/// worktree may live in a directory whose name is not UTF-8.
fn read_worktree_record(repo: &Repo, uuid: &str) -> Result<Option<(PathBuf, bool)>> {
    use std::os::unix::ffi::OsStrExt;
    let file = repo.private_dir()?.join("worktrees").join(uuid);
    match std::fs::read(&file) {
        Ok(bytes) => {
            let mut lines = bytes.split(|b| *b == b'\n');
            let path = lines.next().unwrap_or_default();
            let made = lines.next() == Some(MADE_HERE.as_bytes());
            Ok((!path.trim_ascii().is_empty()).then(|| (std::ffi::OsStr::from_bytes(path).into(), made)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

const MADE_HERE: &str = "made";

pub fn set_worktree_record(repo: &Repo, uuid: &str, path: &Path, made_here: bool) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let dir = repo.private_dir()?.join("worktrees");
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!("{uuid}.tmp"));
    let mut text = [path.as_os_str().as_bytes(), b"\n"].concat();
    if made_here {
        text.extend_from_slice(MADE_HERE.as_bytes());
        text.push(b'\n');
    }
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, dir.join(uuid))?;
    Ok(())
}
