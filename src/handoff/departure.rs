//! The departing half of a handoff, run on the machine that owns the
//! thread: snapshot at the next epoch, noted but not yet published.

use crate::error::Result;
use crate::machine::Machine;
use crate::repo::Repo;
use crate::thread::state::{DetachedOn, Handoff};
use crate::thread::store::{self, Thread};
use crate::time::now_rfc3339;
use crate::worktree::capture;

pub struct Departure {
    pub to_machine: Machine,
    /// The machine running the handoff command.
    pub initiator: Machine,
    pub from: String,
    pub to: String,
    pub branch: Option<String>,
    /// The thread will work on a detached HEAD at the destination (its branch is checked out elsewhere there).
    pub detached: Option<DetachedOn>,
    /// The worktree root it is planned to go to there.
    pub to_worktree: Option<String>,
}

/// Snapshot the thread's worktree at the next epoch, owned by the
/// destination, and note it — without moving the thread's ref: until the
/// destination confirms, this machine still owns the thread.
/// `captured` is the worktree's state if it was just taken, else it is taken now.
pub fn departure(
    repo: &Repo,
    worktree: &Repo,
    thread: &Thread,
    to: Departure,
    captured: Option<crate::worktree::state::WorktreeState>,
) -> Result<Thread> {
    let me = Machine::this(Some(repo))?;
    let mut captured = match captured {
        Some(state) => state,
        None => capture::capture(worktree)?,
    };
    // The LFS objects that must travel with it, named in the snapshot.
    captured.lfs_objects =
        crate::worktree::lfs::needed(worktree, captured.head, captured.index_tree, captured.worktree_tree)?;
    let mut state = thread.state.clone();
    // A worktree here that works detached (its branch checked out elsewhere here) still carries the branch.
    let (carried, _) = thread.state.branch_from_worktree(captured.branch.clone(), &me);
    state.branch = to.branch.or(carried);
    state.branch_detached_on = to.detached.filter(|_| state.branch.is_some());
    state.epoch = thread.state.epoch + 1;
    state.set_owner(&to.to_machine);
    state.worktree = Some(worktree.workdir()?.to_string_lossy().into_owned());
    state.updated_at = now_rfc3339();
    state.transcript.codex_thread_name = crate::thread::transcript::current_codex_name(&thread.state);
    state.handoff = Some(Handoff {
        from_machine: me.name,
        to_machine: to.to_machine.name,
        initiator: to.initiator.name,
        from_machine_id: Some(me.id),
        to_machine_id: Some(to.to_machine.id),
        initiator_id: Some(to.initiator.id),
        from: to.from,
        to: to.to,
        at: state.updated_at.clone(),
        to_worktree: to.to_worktree,
    });
    let transcript = crate::thread::transcript::capture(repo, &thread.state)?;
    store::reset_staged_notes(repo, &thread.state.uuid)?;
    let notes = store::staged_notes_ref(&thread.state.uuid);
    store::write_snapshot(repo, &captured, state, Some(thread), transcript, &notes)
}
