//! Git's own lock files (`packed-refs.lock`, `<ref>.lock`, `index.lock`)
//! that a killed process of ours left behind: git and gix refuse every later
//! update of that file while one exists. Under the thread's lock they are
//! removed when no process of ours could still be writing them.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::Result;
use crate::repo::Repo;
use crate::thread::lock::{others_hold_locks_in, Lock};

/// git holds these for one update (git itself gives up on `packed-refs.lock`
/// after a second); one this old belongs to a process that is gone.
const STALE_AFTER: Duration = Duration::from_secs(2);

/// What a thread's handoff writes in a repository.
pub struct Touched<'a> {
    pub uuid: &'a str,
    pub branch: Option<&'a str>,
    /// A worktree an interrupted arrival was writing (its HEAD and index).
    pub arriving: Option<&'a Path>,
    /// The thread's worktree, when a handoff made it (its HEAD: the branch is let go of there).
    pub made_here: Option<&'a Path>,
}

/// Remove the stale git lock files a handoff of this thread would trip over;
/// returns a sentence for each one removed. `held` is this process's lock
/// of the thread: refs of the thread's own are written only under it; files
/// shared with other threads (packed-refs, the notes ref, the branch) only
/// when no other process of ours holds any lock in this repository.
pub fn clear_stale(repo: &Repo, held: &Lock, touched: &Touched) -> Result<Vec<String>> {
    let common = repo.common_dir();
    let mut own = Vec::new();
    collect_locks(&common.join("refs").join("codex-handoff"), &mut own);
    own.retain(|p| p.to_string_lossy().contains(touched.uuid));
    // A user may hold a worktree's index.lock for minutes (`git commit` with
    // its editor open): only in a worktree our arrival was writing is it ours.
    if let Some(admin) = touched.arriving.and_then(crate::repo::admin_dir) {
        for name in ["HEAD.lock", "index.lock", "index.codex-handoff.tmp.lock"] {
            own.push(admin.join(name));
        }
    }
    if let Some(admin) = touched.made_here.and_then(crate::repo::admin_dir) {
        own.push(admin.join("HEAD.lock"));
    }
    let mut shared = vec![common.join("packed-refs.lock"), common.join("refs/notes/codex-handoff.lock")];
    if let Some(branch) = touched.branch {
        shared.push(common.join("refs/heads").join(format!("{branch}.lock")));
    }
    own.retain(|p| p.exists());
    shared.retain(|p| p.exists());
    if own.is_empty() && shared.is_empty() {
        return Ok(Vec::new());
    }
    let alone = !others_hold_locks_in(&repo.private_dir()?.join("locks"), &[held])?;
    if alone {
        own.extend(shared);
    }
    let mut removed = Vec::new();
    for path in own {
        if wait_until_stale(&path) && std::fs::remove_file(&path).is_ok() {
            removed.push(format!("removed the stale lock file {} (left by an interrupted process)", path.display()));
        }
    }
    Ok(removed)
}

/// Wait until `path` is old enough to be stale; `false` if it went away
/// (a live process finished with it).
fn wait_until_stale(path: &Path) -> bool {
    loop {
        let Ok(meta) = std::fs::symlink_metadata(path) else { return false };
        let age = meta.modified().ok().and_then(|m| SystemTime::now().duration_since(m).ok()).unwrap_or_default();
        if age >= STALE_AFTER {
            return true;
        }
        std::thread::sleep((STALE_AFTER - age).min(Duration::from_millis(200)));
    }
}

fn collect_locks(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect_locks(&path, out),
            Ok(_) if path.extension().is_some_and(|e| e == "lock") => out.push(path),
            _ => {}
        }
    }
}
