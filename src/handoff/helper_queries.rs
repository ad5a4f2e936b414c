//! What the helper answers without changing anything here: the plan for
//! an arriving thread, the state of a thread's worktree, which LFS objects
//! this clone lacks, whether a commit is in the thread's history.

use serde::Deserialize;
use serde_json::{json, Value};

use super::projects::project_repo;
use super::wire::{answer, check_uuid, LfsParams};
use crate::error::{Error, Result};
use crate::handoff::{self, ForeignChanges, PlanAnswer};
use crate::machine::Machine;
use crate::promisor;
use crate::thread;
use crate::thread::carried::Needs;
use crate::thread::store;
use crate::worktree::capture;
use crate::worktree::restore;
use crate::worktree::state::WorktreeState;

#[derive(Deserialize)]
pub(super) struct ThreadParams {
    pub(super) repo: String,
    pub(super) uuid: String,
    /// For `status`: capture the state for the departure that follows.
    #[serde(default)]
    pub(super) keep: bool,
    /// For `status`: the destination does not tell names apart by case;
    /// say which of the thread's files differ only in case.
    #[serde(default)]
    case_fold: bool,
}
#[derive(Deserialize)]
pub(super) struct PlanParams {
    repo: String,
    pub(super) uuid: String,
    number: u64,
    branch: Option<String>,
    /// The thread's HEAD commit (absent from older clients).
    #[serde(default)]
    head: Option<String>,
    /// What the user calls this machine (absent from older clients).
    #[serde(default)]
    host: Option<String>,
    /// The thread's Codex thread id and when it was made, if it has one.
    #[serde(default)]
    codex_thread: Option<String>,
    #[serde(default)]
    codex_created: Option<String>,
    /// What the snapshot will need here (module repositories, git-lfs).
    #[serde(default)]
    needs: Needs,
}
#[derive(Deserialize)]
pub(super) struct DescendsParams {
    repo: String,
    uuid: String,
    commit: String,
}

/// The plan, and where the thread would go (kept for the arrival that
/// follows); `with_haves`: with the commits a pack sent here can leave out.
pub(super) fn plan(p: PlanParams, machine: &str, with_haves: bool) -> Result<(Value, handoff::ArrivalWorktree)> {
    let repo = project_repo(&p.repo)?;
    check_uuid(&p.uuid)?;
    thread::carried::check_needs(&repo, &p.needs, machine)?;
    if let Some(branch) = &p.branch {
        crate::repo::check_received_branch_name(branch)?;
    }
    let current = store::load(&repo, &p.uuid)?;
    // A partial clone fetches what the checkout lacks from its promisor: it must answer.
    if let Some(head) = p.head.as_deref().and_then(|h| store::parse_hex(h).ok()) {
        if let Some(tree) = repo.gix.find_commit(head).ok().and_then(|c| c.tree_id().ok()) {
            promisor::check_available(&repo, &[tree.detach()], p.host.as_deref().unwrap_or(machine))?;
        }
    }
    let target = handoff::arrival_worktree(&repo, &p.uuid, p.number, current.as_ref(), ForeignChanges::Refuse)?;
    let (branch_tip, branch_checked_out) = match &p.branch {
        Some(branch) => {
            let full = format!("refs/heads/{branch}");
            let tip = store::ref_target(&repo, &full)?.map(|t| t.to_string());
            let own = target.reuse.then_some(target.path.as_path());
            let pending = handoff::pending_arrival_worktree(&repo, &p.uuid)?;
            let elsewhere = restore::checked_out_in(&repo, &full)?
                .filter(|wt| !own.is_some_and(|o| crate::repo::same_path(o, wt)))
                .filter(|wt| !pending.as_deref().is_some_and(|p| crate::repo::same_path(p, wt)))
                .map(|wt| wt.to_string_lossy().into_owned());
            (tip, elsewhere)
        }
        None => (None, None),
    };
    let codex = match &p.codex_thread {
        Some(id) => Some(handoff::codex_plan(id, p.codex_created.as_deref())?),
        None => None,
    };
    let planned = answer(PlanAnswer {
        worktree: target.path.to_string_lossy().into_owned(),
        reuse: target.reuse,
        branch_tip,
        branch_checked_out,
        codex,
        haves: if with_haves { super::transfer::haves(&repo, &p.uuid)? } else { Vec::new() },
        case_insensitive: crate::thread::case_fold::case_insensitive(&target.path),
    })?;
    Ok((planned, target))
}

/// Which of these LFS objects this clone lacks.
pub(super) fn lfs_missing(p: LfsParams) -> Result<Value> {
    let repo = project_repo(&p.repo)?;
    check_uuid(&p.uuid)?;
    let missing = handoff::lfs_missing_here(&repo, &p.oids)?;
    Ok(json!({ "missing": missing }))
}

/// The thread's worktree here, as the plan of a hand-back shows it. With
/// `capture` (a thread at rest, its lock held, no question to be asked) the
/// state is captured whole by the same `git status`, for the departure that follows.
pub(super) fn status(p: ThreadParams, me: &Machine, capture: bool) -> Result<(Value, Option<WorktreeState>)> {
    let repo = project_repo(&p.repo)?;
    check_uuid(&p.uuid)?;
    let Some(thread) = store::load(&repo, &p.uuid)? else {
        return Ok((json!({ "branch": null, "changes": crate::worktree::state::Changes::default() }), None));
    };
    let worktree = thread::thread_worktree(&repo, &thread)?;
    let (head, branch) = capture::head_of(&worktree)?;
    let (branch, _) = thread.state.branch_from_worktree(branch, me);
    let running = crate::thread::running::current(&repo, &p.uuid)?.is_some();
    let transcript_bytes = crate::thread::transcript::current_size(&repo, &thread.state);
    let (changes, captured) = if capture && !running {
        let (state, changes) = capture::capture_counted(&worktree)?;
        (changes, Some(state))
    } else {
        (capture::count_changes(&worktree)?, None)
    };
    let mut status = json!({
        "branch": branch,
        "head": head.map(|h| h.to_string()),
        "changes": changes,
        "running": running,
        "transcript_bytes": transcript_bytes,
        "needs": thread::carried::needs(&worktree)?,
    });
    // (An older helper, as a test can make this one, does not look.)
    if p.case_fold && !crate::fault::active(crate::fault::Step::HelperProtocol2) {
        status["case_collisions"] = json!(thread::case_fold::in_worktree(&worktree)?);
    }
    Ok((status, captured))
}

/// Does the HEAD of the thread's worktree here descend from (or equal) the
/// given commit? `null` when this repository does not have that commit.
pub(super) fn descends(p: DescendsParams) -> Result<Value> {
    let repo = project_repo(&p.repo)?;
    check_uuid(&p.uuid)?;
    let commit = store::parse_hex(&p.commit)?;
    let thread = store::load(&repo, &p.uuid)?
        .ok_or_else(|| Error::not_found("thread_not_found", format!("no thread {} here", p.uuid)))?;
    let (head, _) = capture::head_of(&thread::thread_worktree(&repo, &thread)?)?;
    if repo.gix.find_commit(commit).is_err() {
        return Ok(json!({ "descends": null }));
    }
    let descends = match head {
        Some(head) => repo.is_ancestor(commit, head)?,
        None => false,
    };
    Ok(json!({ "descends": descends }))
}
