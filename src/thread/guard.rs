//! What the git hooks check: a commit in a worktree whose thread now lives on
//! another machine would not travel with the thread.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::machine::Machine;
use crate::repo::Repo;
use crate::thread::store::{self, Thread};

/// Why a commit here is refused, if it is: this worktree is the recorded
/// worktree of a thread that is now owned by another machine.
pub fn pre_commit_refusal(repo: &Repo) -> Result<Option<Error>> {
    if repo.gix.config_snapshot().boolean(crate::config::ALLOW_COMMITS_ELSEWHERE).unwrap_or(false) {
        return Ok(None);
    }
    let Ok(workdir) = repo.workdir() else { return Ok(None) };
    let workdir = workdir.canonicalize().unwrap_or(workdir);
    // Read the per-machine worktree records directly: no store access (and so
    // nothing slow) unless one of them names this worktree.
    let records = repo.common_dir().join("codex-handoff").join("worktrees");
    let Ok(entries) = std::fs::read_dir(&records) else { return Ok(None) };
    let mut uuids = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
        let recorded = PathBuf::from(text.lines().next().unwrap_or_default());
        let recorded = recorded.canonicalize().unwrap_or(recorded);
        if recorded == workdir {
            uuids.push(name);
        }
    }
    if uuids.is_empty() {
        return Ok(None);
    }
    let me = Machine::this(Some(repo))?;
    for uuid in uuids {
        let Some(thread) = store::load(repo, &uuid)? else { continue };
        if !thread.state.owned_by(&me) {
            return Ok(Some(elsewhere(&thread, &me)));
        }
    }
    Ok(None)
}

fn elsewhere(thread: &Thread, me: &Machine) -> Error {
    let owner = thread.owner_name(me);
    let n = thread.state.number;
    Error::refused(
        "thread_elsewhere",
        format!(
            "this worktree belongs to thread #{n} \"{}\", which is now on {owner}; a commit here would not go with it",
            thread.state.title
        ),
    )
    .with_help(format!(
        "bring the thread back first with `git codex-handoff {n} local`; to commit here anyway use \
         `git commit --no-verify`, or `git config {} true`",
        crate::config::ALLOW_COMMITS_ELSEWHERE
    ))
}
