//! The departing half of a handoff, run on the machine that owns the
//! thread: snapshot at the next epoch, noted but not yet published.

use crate::error::Result;
use crate::repo::Repo;
use crate::thread::snapshot;
use crate::thread::state::Handoff;
use crate::thread::store::{self, Thread};
use crate::time::now_rfc3339;

pub struct Departure {
    pub to_machine: String,
    /// The machine running the handoff command.
    pub initiator: String,
    pub from: String,
    pub to: String,
    pub branch: Option<String>,
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
    captured: Option<snapshot::WorktreeState>,
) -> Result<Thread> {
    let me = crate::repo::machine_name(Some(repo));
    let captured = match captured {
        Some(state) => state,
        None => snapshot::capture(worktree)?,
    };
    let mut state = thread.state.clone();
    state.branch = to.branch.or_else(|| captured.branch.clone());
    state.epoch = thread.state.epoch + 1;
    state.owner_machine = to.to_machine.clone();
    state.worktree = Some(worktree.workdir()?.to_string_lossy().into_owned());
    state.updated_at = now_rfc3339();
    state.transcript.codex_thread_name = crate::thread::transcript::current_codex_name(&thread.state);
    state.handoff = Some(Handoff {
        from_machine: me.clone(),
        to_machine: to.to_machine,
        initiator: to.initiator,
        from: to.from,
        to: to.to,
        at: state.updated_at.clone(),
    });
    let transcript = crate::thread::transcript::capture(repo, &thread.state)?;
    store::reset_staged_notes(repo, &thread.state.uuid)?;
    let notes = store::staged_notes_ref(&thread.state.uuid);
    store::write_snapshot(repo, &captured, state, Some(thread), transcript, &notes)
}
