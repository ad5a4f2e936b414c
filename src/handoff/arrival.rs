//! The arriving half of a handoff, run on the machine that receives the
//! thread: where it goes, the checks before anything changes, restore,
//! verify, then record this machine as the owner.
//!
//! An arrival is recorded in a marker before the first write; moving the
//! thread's ref to the incoming snapshot is the point where it counts. A run
//! that stopped before that point is rolled back by [`recover_arrival`]
//! (a new worktree removed, a reused one put back as it was, the branch
//! where it was); one that stopped after it is finished.

use super::markers::{clear_marker, read_marker, set_marker, ArrivalMarker, ARRIVAL};
use std::path::{Path, PathBuf};

use gix::ObjectId;
use serde::{Deserialize, Serialize};

use crate::config;
use crate::error::{Error, Result};
use crate::fault::{self, Step};
use crate::machine::Machine;
use crate::promisor;
use crate::repo::Repo;
use crate::thread;
use crate::thread::carried;
use crate::thread::store::{self, Thread};
use crate::worktree::capture;
use crate::worktree::restore;
use crate::worktree::submodules::ModuleSource;

/// What to do when the thread's old worktree here has changes it did not make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForeignChanges {
    Refuse,
    NewWorktree,
}

#[derive(Debug, Clone)]
pub struct ArrivalWorktree {
    pub path: PathBuf,
    pub reuse: bool,
    /// For a reused worktree: the snapshot whose state it holds, and whether its HEAD is detached.
    pub holds: Option<(ObjectId, bool)>,
}

/// Where a thread arriving here goes: its old worktree if that holds exactly
/// what the thread left there, else a new one under the worktree root.
pub fn arrival_worktree(
    repo: &Repo,
    uuid: &str,
    number: u64,
    known: Option<&Thread>,
    foreign: ForeignChanges,
) -> Result<ArrivalWorktree> {
    let old = thread::worktree_record(repo, uuid)?.filter(|p| p.exists());
    let (Some(old), Some(thread)) = (old, known) else {
        return Ok(ArrivalWorktree { path: new_worktree_path(repo, uuid, number)?, reuse: false, holds: None });
    };
    if let Some(holds) = untouched(repo, thread, &old)? {
        return Ok(ArrivalWorktree { path: old, reuse: true, holds: Some(holds) });
    }
    match foreign {
        ForeignChanges::NewWorktree => {
            Ok(ArrivalWorktree { path: new_worktree_path(repo, uuid, number)?, reuse: false, holds: None })
        }
        ForeignChanges::Refuse => Err(Error::refused(
            "worktree_changed",
            format!("the thread's worktree {} has changes the thread did not make", old.display()),
        )
        .with_help(format!(
            "keep them elsewhere (`git -C {} stash push --include-untracked`), then hand the thread off again; \
             the thread's own state is safe where it is now",
            old.display()
        ))),
    }
}

fn new_worktree_path(repo: &Repo, uuid: &str, number: u64) -> Result<PathBuf> {
    let repo_name = repo
        .workdir()
        .ok()
        .or_else(|| repo.common_dir().parent().map(Path::to_path_buf))
        .and_then(|p| p.file_name().map(|n| sanitize(&n.to_string_lossy())))
        .unwrap_or_else(|| "repo".into());
    let base = config::worktree_root()?.join(repo_name);
    let short: String = uuid.chars().filter(char::is_ascii_hexdigit).take(8).collect();
    let mut path = base.join(format!("{number}-{short}"));
    let mut n = 2;
    while path.symlink_metadata().is_ok() {
        path = base.join(format!("{number}-{short}-{n}"));
        n += 1;
    }
    if path.to_str().is_none() {
        // Paths cross the wire and sit in notes as text.
        return Err(Error::refused("non_utf8_path", format!("the worktree root {} is not UTF-8", base.display()))
            .with_help("set codex-handoff.worktreeRoot to a directory whose path is UTF-8"));
    }
    Ok(path)
}

fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '-' })
        .collect();
    let cleaned = cleaned.trim_matches(|c| c == '-' || c == '.').to_owned();
    if cleaned.is_empty() {
        "repo".into()
    } else {
        cleaned
    }
}

/// Does the worktree at `path` hold exactly the state of the last snapshot
/// this machine took there? Its HEAD may since have let go of the branch
/// (detached at the same commit). Returns that snapshot and whether HEAD is detached.
fn untouched(repo: &Repo, thread: &Thread, path: &Path) -> Result<Option<(ObjectId, bool)>> {
    let me = Machine::this(Some(repo))?;
    let path_text = path.to_string_lossy();
    let last_taken_here = thread::history(repo, thread)?
        .into_iter()
        .find(|(_, s)| s.taken_on(&me) && s.worktree.as_deref() == Some(path_text.as_ref()));
    let Some((snapshot, state)) = last_taken_here else { return Ok(None) };
    // Submodule snapshots are pinned in the worktree's own module repositories.
    let Ok(expected) = Thread { snapshot, state }.expected(repo, &ModuleSource::Worktree(path.to_owned())) else {
        return Ok(None);
    };
    let worktree = Repo::open(path)?;
    let index = worktree.gix.index_or_empty()?;
    if capture::check_capturable(&worktree, &index).is_err() {
        return Ok(None);
    }
    let Ok((_, branch_now)) = capture::head_of(&worktree) else { return Ok(None) };
    let detached = branch_now.is_none() && expected.state.branch.is_some();
    // A HEAD detached at the same commit has let go of the branch: compare without it.
    let same = crate::worktree::verify::differences(&worktree, &expected.state, !detached).is_ok_and(|d| d.is_empty());
    Ok(same.then_some((snapshot, detached)))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Arrival {
    pub worktree: String,
    /// The thread's branch.
    pub branch: Option<String>,
    pub epoch: u64,
    pub snapshot: String,
    /// The worktree works on a detached HEAD: the branch is checked out elsewhere there.
    #[serde(default)]
    pub detached: bool,
}

/// Make the snapshot `snapshot` (present here with its note) the thread's
/// state on this machine: restore and verify it in a worktree, then record
/// this machine as the owner. Call [`recover_arrival`] first: an earlier,
/// interrupted arrival must be rolled back or finished before another.
/// `uuid` is the thread the request named: the note must agree.
/// `planned`: where the plan, under the same lock and with no question
/// asked since, found the thread goes ([`arrival_worktree`]); `None` looks again.
pub fn arrival(
    repo: &Repo,
    uuid: &str,
    snapshot: ObjectId,
    me: &Machine,
    foreign: ForeignChanges,
    planned: Option<ArrivalWorktree>,
) -> Result<Arrival> {
    let state = store::read_note(repo, snapshot)?;
    state.check_arrived(uuid)?;
    let uuid = uuid.to_owned();
    let current = store::load(repo, &uuid)?;
    if let Some(current) = &current {
        if current.snapshot == snapshot {
            let worktree = thread::worktree_record(repo, &uuid)?.unwrap_or_default();
            return Ok(Arrival {
                worktree: worktree.to_string_lossy().into_owned(),
                detached: state.detached_on(me),
                branch: state.branch,
                epoch: state.epoch,
                snapshot: snapshot.to_string(),
            });
        }
        if current.state.epoch >= state.epoch {
            return Err(Error::refused(
                "stale_handoff",
                format!(
                    "this machine has thread {} at epoch {}, newer than the incoming epoch {}",
                    uuid, current.state.epoch, state.epoch
                ),
            )
            .with_help("the handoff was overtaken by another; check `git codex-handoff thread log`"));
        }
    }
    if !state.owned_by(me) {
        return Err(Error::refused(
            "not_for_this_machine",
            format!(
                "the incoming snapshot hands the thread to {}, not to this machine ({})",
                state.owner_machine, me.name
            ),
        )
        .with_help(format!("check {} on both machines", crate::machine::MACHINE_ID_KEY)));
    }
    if let Some(branch) = &state.branch {
        crate::repo::check_received_branch_name(branch)?;
    }
    let incoming = Thread { snapshot, state };
    let expected = incoming.expected(repo, &carried::incoming_modules(repo))?;
    let transcript = store::transcript_blob(repo, store::parse_hex(&incoming.state.data_commit)?)?;
    crate::thread::transcript::check_incoming(repo, &incoming.state, transcript)?;
    carried::take_in(repo, &uuid, &expected)?;
    let target = match planned {
        Some(planned) => planned,
        None => arrival_worktree(repo, &uuid, incoming.state.number, current.as_ref(), foreign)?,
    };
    // Detached here: the branch is checked out in another worktree, which keeps it; the restore leaves it alone.
    let detach = incoming.state.detached_on(me);
    let branch = incoming.state.branch.clone().filter(|_| !detach);
    let branch_before = match &branch {
        Some(b) => store::ref_target(repo, &format!("refs/heads/{b}"))?.map(|id| id.to_string()),
        None => None,
    };
    let marker = ArrivalMarker {
        snapshot: snapshot.to_string(),
        worktree: target.path.to_string_lossy().into_owned(),
        new: !target.reuse,
        previous: target.holds.map(|(id, _)| id.to_string()),
        detached: target.holds.is_some_and(|(_, detached)| detached),
        made_here: thread::worktree_made_here(repo, &uuid)?,
        branch,
        branch_before,
        head: incoming.state.head.clone(),
    };
    set_marker(repo, ARRIVAL, &uuid, &marker)?;
    // The directories made for a new worktree go again if the arrival fails.
    let made: Vec<PathBuf> = if target.reuse {
        Vec::new()
    } else {
        target.path.ancestors().skip(1).take_while(|d| !d.exists()).map(Path::to_path_buf).collect()
    };
    let committed = (|| -> Result<restore::Restored> {
        let restored = if target.reuse {
            {
                let holds = target.holds.map(|(snapshot, _)| store::snapshot_trees(repo, snapshot)).transpose()?;
                restore::into_existing_worktree(repo, &expected, &target.path, detach, holds)?
            }
        } else {
            if let Some(parent) = target.path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            restore::into_new_worktree(repo, &expected, &target.path, detach)?
        };
        fault::point(Step::ArrivalRestored);
        crate::thread::transcript::install(repo, &incoming.state, transcript, &restored.worktree)?;
        // From here on the thread is this machine's.
        store::move_thread_ref(repo, &uuid, current.as_ref().map(|c| c.snapshot), snapshot)?;
        Ok(restored)
    })();
    carried::clean_incoming(repo, &uuid);
    let restored = match committed {
        Ok(restored) => restored,
        // Nothing of a failed arrival stays, one that did not verify included:
        // a new worktree goes (with its branch), a reused one is put back.
        Err(e) => {
            let done = recover_arrival(repo, &uuid);
            for dir in &made {
                let _ = std::fs::remove_dir(dir);
            }
            // (A new worktree's restore already says it was removed.)
            return Err(match done {
                Ok(Some(done)) if target.reuse && e.code == "verify_failed" => restore::taken_back(e, &done),
                Ok(_) => e,
                // What blocked the arrival may block taking it back: the marker stays for the next run.
                Err(undo) => restore::taken_back(
                    e,
                    &format!("{} is not yet put back as it was ({})", target.path.display(), undo.message),
                ),
            });
        }
    };
    fault::point(Step::ArrivalCommitted);
    // The arrival counted: what is left is bookkeeping, which the marker lets the next run finish.
    if thread::set_worktree_record(repo, &uuid, &restored.worktree, marker.new || marker.made_here).is_ok() {
        let _ = clear_marker(repo, ARRIVAL, &uuid);
    }
    Ok(Arrival {
        worktree: restored.worktree.to_string_lossy().into_owned(),
        detached: restored.branch.is_none() && incoming.state.branch.is_some(),
        branch: incoming.state.branch,
        epoch: incoming.state.epoch,
        snapshot: snapshot.to_string(),
    })
}

/// Finish or roll back an arrival of thread `uuid` that stopped half-way
/// here; returns what was done, for the user. Call under the thread's lock.
pub fn recover_arrival(repo: &Repo, uuid: &str) -> Result<Option<String>> {
    let Some(marker) = read_marker::<ArrivalMarker>(repo, ARRIVAL, uuid)? else { return Ok(None) };
    let snapshot = store::parse_hex(&marker.snapshot)?;
    let worktree = PathBuf::from(&marker.worktree);
    let current = store::load(repo, uuid)?;
    if current.as_ref().is_some_and(|c| c.snapshot == snapshot) {
        // It had counted: only the bookkeeping after that point is left.
        thread::set_worktree_record(repo, uuid, &worktree, marker.new || marker.made_here)?;
        clear_marker(repo, ARRIVAL, uuid)?;
        return Ok(Some(format!("finished recording the interrupted arrival in {}", worktree.display())));
    }
    let done = if marker.new {
        let removed = restore::remove_worktree(repo, &worktree)?;
        roll_back_branch(repo, &marker, &arrived_head(repo, &marker, snapshot)?)?;
        if removed {
            format!("removed the worktree {} that an interrupted arrival had begun", worktree.display())
        } else {
            format!("rolled back an interrupted arrival (nothing of it was left in {})", worktree.display())
        }
    } else {
        roll_back_branch(repo, &marker, &arrived_head(repo, &marker, snapshot)?)?;
        let previous = marker.previous.as_deref().map(store::parse_hex).transpose()?;
        let Some(previous) = previous else {
            return Err(Error::failed("marker_damaged", format!("the arrival marker of thread {uuid} is incomplete"))
                .with_help(format!("check the worktree {} and remove the marker by hand", worktree.display())));
        };
        let state = store::read_note(repo, previous)?;
        // Its submodule snapshots are pinned in the worktree's own module repositories.
        let modules = ModuleSource::Worktree(worktree.clone());
        let expected = Thread { snapshot: previous, state }.expected(repo, &modules)?;
        restore::into_existing_worktree(repo, &expected, &worktree, marker.detached, None)?;
        format!(
            "put the worktree {} back as the thread had left it (an arrival there was interrupted)",
            worktree.display()
        )
    };
    clear_marker(repo, ARRIVAL, uuid)?;
    Ok(Some(done))
}

/// The worktree an interrupted arrival of `uuid` was writing, if one was:
/// the next run rolls it back, so it holds no branch a plan must refuse for.
pub fn pending_arrival_worktree(repo: &Repo, uuid: &str) -> Result<Option<PathBuf>> {
    Ok(read_marker::<ArrivalMarker>(repo, ARRIVAL, uuid)?.map(|m| PathBuf::from(m.worktree)))
}

/// The HEAD commit of the arriving snapshot `snapshot`: as the marker
/// records it, else (an unborn branch, or a marker of an older version) as
/// its note does, if it is still here.
fn arrived_head(repo: &Repo, marker: &ArrivalMarker, snapshot: ObjectId) -> Result<Option<ObjectId>> {
    match &marker.head {
        Some(head) => store::parse_hex(head).map(Some),
        None => Ok(store::read_note(repo, snapshot).ok().and_then(|s| s.head).and_then(|h| store::parse_hex(&h).ok())),
    }
}

/// Put the branch back where it was before the arrival, if the arrival
/// moved it (and nothing else has since).
fn roll_back_branch(repo: &Repo, marker: &ArrivalMarker, arrived_head: &Option<ObjectId>) -> Result<()> {
    let (Some(branch), Some(head)) = (&marker.branch, arrived_head) else { return Ok(()) };
    let name = format!("refs/heads/{branch}");
    let before = marker.branch_before.as_deref().map(store::parse_hex).transpose()?;
    let now = store::ref_target(repo, &name)?;
    if now == before || now != Some(*head) {
        return Ok(());
    }
    store::set_ref(repo, &name, now, before, "codex-handoff: roll back an interrupted arrival")
}

/// Refusals that need the incoming snapshot, checked before anything here
/// changes (notes are merged only afterwards); the incoming refs are removed
/// on refusal.
/// `here` names this machine as the user calls it, for messages.
pub fn check_incoming(repo: &Repo, uuid: &str, snapshot: ObjectId, here: &str) -> Result<()> {
    let checked = (|| {
        let state = store::read_note_in(repo, snapshot, &store::incoming_ref(uuid, "notes"))?;
        state.check_arrived(uuid)?;
        let transcript = store::transcript_blob(repo, store::parse_hex(&state.data_commit)?)?;
        crate::thread::transcript::check_incoming(repo, &state, transcript)?;
        // The paths the snapshot's records name, checked while nothing has changed yet.
        let data = repo.gix.find_commit(store::parse_hex(&state.data_commit)?)?.tree_id()?.detach();
        crate::worktree::record::read(repo, data)?;
        // A partial clone fetches the files it lacks while restoring: refuse now if it cannot.
        let worktree_tree = repo.gix.find_commit(snapshot)?.tree_id()?.detach();
        let index_tree = repo.gix.find_commit(store::parse_hex(&state.index_commit)?)?.tree_id()?.detach();
        promisor::check_available(repo, &[worktree_tree, index_tree], here)
    })();
    if checked.is_err() {
        let _ = store::delete_refs_under(repo, &format!("refs/codex-handoff/incoming/{uuid}/"));
    }
    checked
}

pub fn merge_incoming_notes(repo: &Repo, uuid: &str) -> Result<()> {
    if let Some(notes) = store::ref_target(repo, &store::incoming_ref(uuid, "notes"))? {
        store::merge_notes(repo, notes)?;
    }
    Ok(())
}
