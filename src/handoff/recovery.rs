//! Before a handoff goes on, each machine repairs — under the thread's
//! lock — what an interrupted handoff left there, so that running the same
//! command again finishes or cleanly restarts it instead of refusing.

use std::path::PathBuf;

use super::arrival::recover_arrival;
use super::markers::{clear_marker, read_marker, ArrivalMarker, ReleaseMarker, ARRIVAL, RELEASE};

use crate::error::Result;
use crate::machine::Machine;
use crate::repo::Repo;
use crate::thread;
use crate::thread::gitlocks::{self, Touched};
use crate::thread::lock::Lock;
use crate::thread::store;

/// Repair what an interrupted handoff of thread `uuid` left on this machine:
/// git lock files of a killed process, an arrival that stopped half-way
/// (finished if it had counted, else rolled back), a note to release a host
/// for an arrival that never counted, a worktree left behind that still
/// holds the branch, refs pushed or fetched for a run that stopped. Returns one sentence per repair, for the user.
pub fn repair_here(repo: &Repo, lock: &Lock, uuid: &str, me: &Machine) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let arrival = read_marker::<ArrivalMarker>(repo, ARRIVAL, uuid)?;
    let thread = store::load(repo, uuid)?;
    let arriving = arrival.as_ref().map(|m| PathBuf::from(&m.worktree));
    let made_here = match thread::worktree_made_here(repo, uuid)? {
        true => thread::worktree_record(repo, uuid)?,
        false => None,
    };
    // The branch a handoff here may have been writing: an arrival's, else the thread's own, unless the
    // thread works detached here (its branch belongs to another worktree here and is never written).
    let branch = match &arrival {
        Some(marker) => marker.branch.clone(),
        None => thread.filter(|t| !t.state.detached_on(me)).and_then(|t| t.state.branch),
    };
    let touched =
        Touched { uuid, branch: branch.as_deref(), arriving: arriving.as_deref(), made_here: made_here.as_deref() };
    done.extend(gitlocks::clear_stale(repo, lock, &touched)?);
    done.extend(recover_arrival(repo, uuid)?);
    let thread = store::load(repo, uuid)?;
    if let Some(release) = read_marker::<ReleaseMarker>(repo, RELEASE, uuid)? {
        // The host is told to let go only of an arrival that counted here.
        if thread.as_ref().map(|t| t.snapshot.to_string()) != Some(release.snapshot) {
            clear_marker(repo, RELEASE, uuid)?;
        }
    }
    if let Some(thread) = &thread {
        done.extend(thread::let_go_of_branch(repo, thread, me)?);
    }
    // What was pushed or fetched for a run that did not finish.
    store::delete_refs_under(repo, &format!("refs/codex-handoff/incoming/{uuid}/"))?;
    Ok(done)
}
