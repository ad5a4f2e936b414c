//! The arriving half of a handoff, run on the machine that receives the
//! thread: where it goes, the checks before anything changes, restore,
//! verify, then record this machine as the owner.

use super::markers::{clear_marker, is_pending_arrival, set_marker};
use std::path::{Path, PathBuf};

use gix::ObjectId;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config;
use crate::error::{Error, Result};
use crate::git::Git;
use crate::promisor;
use crate::repo::Repo;
use crate::thread;
use crate::thread::restore::{self, Expected};
use crate::thread::snapshot;
use crate::thread::store::{self, Thread};

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
}

/// Where a thread arriving here goes: its old worktree if that holds exactly
/// what the thread left there (or what an interrupted arrival put there),
/// else a new one under the worktree root.
pub fn arrival_worktree(
    repo: &Repo,
    uuid: &str,
    number: u64,
    known: Option<&Thread>,
    foreign: ForeignChanges,
) -> Result<ArrivalWorktree> {
    let new_path = || -> Result<PathBuf> {
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
        while path.exists() && !is_pending_arrival(repo, uuid, &path)? {
            path = base.join(format!("{number}-{short}-{n}"));
            n += 1;
        }
        if path.to_str().is_none() {
            // Paths cross the wire and sit in notes as text.
            return Err(Error::refused("non_utf8_path", format!("the worktree root {} is not UTF-8", base.display()))
                .with_help("set codex-handoff.worktreeRoot to a directory whose path is UTF-8"));
        }
        Ok(path)
    };
    let old = thread::worktree_record(repo, uuid)?.filter(|p| p.exists());
    let (Some(old), Some(thread)) = (old, known) else {
        return Ok(ArrivalWorktree { path: new_path()?, reuse: false });
    };
    if is_pending_arrival(repo, uuid, &old)? || untouched(repo, thread, &old)? {
        return Ok(ArrivalWorktree { path: old, reuse: true });
    }
    match foreign {
        ForeignChanges::NewWorktree => Ok(ArrivalWorktree { path: new_path()?, reuse: false }),
        ForeignChanges::Refuse => Err(Error::refused(
            "worktree_changed",
            format!("the thread's worktree {} has changes the thread did not make", old.display()),
        )
        .with_help("commit, stash or discard them there (or remove that worktree), then hand the thread off again")),
    }
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
/// this machine took there?
fn untouched(repo: &Repo, thread: &Thread, path: &Path) -> Result<bool> {
    let me = crate::repo::machine_name(Some(repo));
    let path_text = path.to_string_lossy();
    let last_taken_here = thread::history(repo, thread)?.into_iter().find(|(_, s)| {
        s.source_machine.as_deref() == Some(me.as_str()) && s.worktree.as_deref() == Some(path_text.as_ref())
    });
    let Some((snapshot, state)) = last_taken_here else { return Ok(false) };
    let expected = Expected::of(repo, &Thread { snapshot, state })?;
    let worktree = Repo::open(path)?;
    let index = worktree.gix.index_or_empty()?;
    if snapshot::check_capturable(&worktree, &index).is_err() {
        return Ok(false);
    }
    let mut now = snapshot::capture(&worktree)?;
    let mut then = expected.state;
    now.intent_to_add.sort();
    then.intent_to_add.sort();
    Ok(now == then)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Arrival {
    pub worktree: String,
    pub branch: Option<String>,
    pub epoch: u64,
    pub snapshot: String,
}

/// Make the snapshot `snapshot` (present here with its note) the thread's
/// state on this machine: restore and verify it in a worktree, then record
/// this machine as the owner. Running it again after an interruption
/// finishes the job. `uuid` is the thread the request named: the note must agree.
pub fn arrival(repo: &Repo, uuid: &str, snapshot: ObjectId, me: &str, foreign: ForeignChanges) -> Result<Arrival> {
    let state = store::read_note(repo, snapshot)?;
    state.check_arrived(uuid)?;
    let uuid = uuid.to_owned();
    let current = store::load(repo, &uuid)?;
    if let Some(current) = &current {
        if current.snapshot == snapshot {
            let worktree = thread::worktree_record(repo, &uuid)?.unwrap_or_default();
            return Ok(Arrival {
                worktree: worktree.to_string_lossy().into_owned(),
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
    if state.owner_machine != me {
        return Err(Error::refused(
            "not_for_this_machine",
            format!("the incoming snapshot hands the thread to {}, not to {me}", state.owner_machine),
        )
        .with_help("check codex-handoff.machine on both machines"));
    }
    let incoming = Thread { snapshot, state };
    let expected = Expected::of(repo, &incoming)?;
    let transcript = store::transcript_blob(repo, store::parse_hex(&incoming.state.data_commit)?)?;
    crate::thread::transcript::check_incoming(repo, &incoming.state, transcript)?;
    let target = arrival_worktree(repo, &uuid, incoming.state.number, current.as_ref(), foreign)?;
    set_marker(repo, "arrival", &uuid, &json!({ "worktree": target.path.to_string_lossy() }))?;
    let restored = if target.reuse {
        restore::into_existing_worktree(repo, &expected, &target.path, false)?
    } else {
        if target.path.exists() {
            // What an interrupted arrival left: it never held anything else.
            let _ = Git::new(repo.common_dir(), None).run([
                std::ffi::OsStr::new("worktree"),
                "remove".as_ref(),
                "--force".as_ref(),
                target.path.as_os_str(),
            ]);
            let _ = std::fs::remove_dir_all(&target.path);
        }
        if let Some(parent) = target.path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        restore::into_new_worktree(repo, &expected, &target.path, false)?
    };
    crate::thread::transcript::install(repo, &incoming.state, transcript, &restored.worktree)?;
    store::move_thread_ref(repo, &uuid, current.map(|c| c.snapshot), snapshot)?;
    thread::set_worktree_record(repo, &uuid, &restored.worktree)?;
    clear_marker(repo, "arrival", &uuid)?;
    Ok(Arrival {
        worktree: restored.worktree.to_string_lossy().into_owned(),
        branch: restored.branch,
        epoch: incoming.state.epoch,
        snapshot: snapshot.to_string(),
    })
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
        // Everything the restore will read from the snapshot, checked while nothing has changed yet.
        let expected = Expected::of(repo, &Thread { snapshot, state })?;
        // A partial clone fetches the files it lacks while restoring: refuse now if it cannot.
        promisor::check_available(repo, &[expected.state.worktree_tree, expected.state.index_tree], here)
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
