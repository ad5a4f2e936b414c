//! The thread state stored as a note on every snapshot commit.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::machine::Machine;

/// Version of the note's JSON layout. 2 added the machine ids; notes of
/// schema 1 name machines only by their display names, and still work.
/// 3 added `branch_detached_on`: `branch` is the thread's branch even where
/// its worktree works on a detached HEAD.
pub const SCHEMA: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Idle,
    Running,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadState {
    pub schema: u32,
    pub uuid: String,
    pub number: u64,
    pub title: String,
    /// Short branch name; `None` for a thread on a detached HEAD.
    pub branch: Option<String>,
    /// The machine where the thread's worktree has a detached HEAD although
    /// the thread has a branch (the branch is checked out in another worktree
    /// there); the branch there is left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_detached_on: Option<DetachedOn>,
    /// The HEAD commit; `None` on an unborn branch.
    pub head: Option<String>,
    pub epoch: u64,
    /// The owner's display name.
    pub owner_machine: String,
    /// The owner's machine id; what ownership is decided by (absent before schema 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_machine_id: Option<String>,
    pub status: Status,
    /// The worktree root the snapshot was taken in, on `source_machine`.
    pub worktree: Option<String>,
    /// The machine the snapshot was taken on.
    #[serde(default)]
    pub source_machine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_machine_id: Option<String>,
    /// The project directory relative to the worktree root ("" for the root).
    #[serde(default)]
    pub subdirectory: String,
    /// Commit whose tree is the index (a parent of the snapshot).
    pub index_commit: String,
    /// Thread-data commit (transcript), chained to the previous one.
    pub data_commit: String,
    /// Number of intent-to-add entries (their paths are in the thread-data tree).
    #[serde(default)]
    pub intent_to_add: usize,
    pub transcript: Transcript,
    pub created_at: String,
    pub updated_at: String,
    /// The handoff that produced this snapshot, if any.
    #[serde(default)]
    pub handoff: Option<Handoff>,
    /// Fields written by newer versions are kept when this version rewrites a note.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Where, and why, a thread with a branch works on a detached HEAD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachedOn {
    /// The machine's display name and id.
    pub machine: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// The worktree there that has the branch checked out; `None` when the
    /// handoff asked for a detached HEAD (`--detach`).
    #[serde(default)]
    pub checked_out_in: Option<String>,
}

impl DetachedOn {
    pub fn on(machine: &Machine, checked_out_in: Option<String>) -> DetachedOn {
        DetachedOn { machine: machine.name.clone(), machine_id: Some(machine.id.clone()), checked_out_in }
    }

    pub fn is(&self, machine: &Machine) -> bool {
        machine.is(self.machine_id.as_deref(), &self.machine)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Transcript {
    pub sha256: String,
    pub size: u64,
    /// The linked Codex CLI session, if any.
    #[serde(default)]
    pub codex_session: Option<String>,
    /// Its rollout file below `$CODEX_HOME/sessions`, the same on every machine.
    #[serde(default)]
    pub codex_rollout: Option<String>,
    /// Its name in Codex's `session_index.jsonl`, carried along.
    #[serde(default)]
    pub codex_thread_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handoff {
    pub from_machine: String,
    pub to_machine: String,
    /// The machine that ran the handoff command ("this computer").
    pub initiator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_machine_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_machine_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator_id: Option<String>,
    /// The source and destination as the initiator names them (`local` or a host name).
    pub from: String,
    pub to: String,
    pub at: String,
    /// The worktree root on the destination the handoff planned to restore into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_worktree: Option<String>,
}

impl ThreadState {
    /// Does `machine` own the thread in this state?
    pub fn owned_by(&self, machine: &Machine) -> bool {
        machine.is(self.owner_machine_id.as_deref(), &self.owner_machine)
    }

    pub fn set_owner(&mut self, machine: &Machine) {
        self.owner_machine.clone_from(&machine.name);
        self.owner_machine_id = Some(machine.id.clone());
    }

    /// Does the thread work on a detached HEAD on `machine` while its branch
    /// is checked out elsewhere there?
    pub fn detached_on(&self, machine: &Machine) -> bool {
        self.branch.is_some() && self.branch_detached_on.as_ref().is_some_and(|d| d.is(machine))
    }

    /// The thread's branch, given the branch its worktree on `machine` is on
    /// now, and whether it still works detached there: a HEAD detached by a
    /// handoff keeps the thread's branch; one the user put on a branch (or
    /// detached) decides.
    pub fn branch_from_worktree(&self, worktree_branch: Option<String>, machine: &Machine) -> (Option<String>, bool) {
        match worktree_branch {
            Some(branch) => (Some(branch), false),
            None if self.detached_on(machine) => (self.branch.clone(), true),
            None => (None, false),
        }
    }

    /// Was this snapshot taken on `machine`?
    pub fn taken_on(&self, machine: &Machine) -> bool {
        self.source_machine.as_deref().is_some_and(|name| machine.is(self.source_machine_id.as_deref(), name))
    }

    pub fn set_source(&mut self, machine: &Machine) {
        self.source_machine = Some(machine.name.clone());
        self.source_machine_id = Some(machine.id.clone());
    }

    /// The host name under which `machine` sent the thread to its current
    /// owner, if `machine` ran that handoff (a host name means something only
    /// on the machine that named it).
    pub fn sent_by(&self, machine: &Machine) -> Option<&str> {
        let h = self.handoff.as_ref()?;
        let initiated = machine.is(h.initiator_id.as_deref(), &h.initiator);
        let to_owner = match (&h.to_machine_id, &self.owner_machine_id) {
            (Some(to), Some(owner)) => to == owner,
            _ => h.to_machine == self.owner_machine,
        };
        (initiated && to_owner).then_some(h.to.as_str())
    }

    pub fn to_note(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec_pretty(self).expect("thread state serializes");
        text.push(b'\n');
        text
    }

    pub fn from_note(data: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(data)
    }

    /// Check a note that came from another machine before anything is made
    /// from it: it must be about the thread the request named (identity comes
    /// from the request, never from the note), and every field that becomes a
    /// file name or a git argument here must be well-formed.
    pub fn check_arrived(&self, uuid: &str) -> Result<()> {
        let refuse = |what: String| {
            Error::refused("bad_note", format!("refused the incoming state of thread {uuid}: {what}"))
                .with_help("it was not written by git-codex-handoff; nothing was changed")
        };
        if self.uuid != uuid || !is_thread_uuid(uuid) {
            return Err(refuse(format!("its note names thread {:?}", self.uuid)));
        }
        if let Some(branch) = &self.branch {
            crate::repo::check_received_branch_name(branch)?;
        }
        if !is_relative_dir(&self.subdirectory) {
            return Err(refuse(format!("{:?} is not a subdirectory", self.subdirectory)));
        }
        match (&self.transcript.codex_session, &self.transcript.codex_rollout) {
            (Some(session), _) if !is_thread_uuid(session) => {
                Err(refuse(format!("{session:?} is not a Codex thread id")))
            }
            (Some(session), Some(relative)) if !crate::codex::rollout::is_relative_for(relative, session) => {
                Err(Error::refused(
                    "bad_rollout_path",
                    format!("refused the Codex session file name {relative:?} of thread {uuid}"),
                )
                .with_help(format!(
                    "a Codex thread's file is named rollout-…-{session}.jsonl below $CODEX_HOME/sessions; \
                     the note was not written by git-codex-handoff, and nothing was changed"
                )))
            }
            (None, Some(_)) => Err(refuse("a Codex session file without a Codex thread id".into())),
            _ => Ok(()),
        }
    }
}

/// A thread or Codex thread id: a UUID, hyphenated, lower case (as generated).
pub fn is_thread_uuid(text: &str) -> bool {
    crate::codex::rollout::is_uuid(text)
}

/// "" or a relative path of plain names (no `.`, `..`, empty parts or `.git`).
pub fn is_relative_dir(path: &str) -> bool {
    path.is_empty()
        || path.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && !part.eq_ignore_ascii_case(".git")
                && !part.contains('\0')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdirectories_stay_below_the_root() {
        for good in ["", "sub", "a/b", "\u{fc}ber"] {
            assert!(is_relative_dir(good), "{good:?}");
        }
        for bad in ["/etc", "..", "a/../..", "a//b", "./a", "a/", ".git/hooks", "a/.GIT"] {
            assert!(!is_relative_dir(bad), "{bad:?}");
        }
    }

    fn machine(id: &str, name: &str) -> Machine {
        Machine { id: id.into(), name: name.into() }
    }

    fn note(extra: &str) -> ThreadState {
        let text = format!(
            r#"{{"schema": 2, "uuid": "u", "number": 1, "title": "t", "branch": "main", "head": null, "epoch": 1,
                "owner_machine": "devbox", "owner_machine_id": "d", "status": "idle", "worktree": null,
                "index_commit": "", "data_commit": "", "transcript": {{"sha256": "", "size": 0}},
                "created_at": "", "updated_at": ""{extra}}}"#
        );
        ThreadState::from_note(text.as_bytes()).unwrap()
    }

    #[test]
    fn a_note_without_the_field_is_on_its_branch_everywhere() {
        let state = note("");
        assert_eq!(state.branch_detached_on, None);
        assert!(!state.detached_on(&machine("d", "devbox")));
        assert_eq!(state.branch_from_worktree(None, &machine("d", "devbox")), (None, false));
    }

    #[test]
    fn a_detached_worktree_keeps_the_branch_only_on_the_machine_the_note_names() {
        let state = note(r#", "branch_detached_on": {"machine": "devbox", "machine_id": "d", "checked_out_in": "/x"}"#);
        let devbox = machine("d", "devbox");
        let other = machine("o", "devbox");
        assert!(state.detached_on(&devbox));
        assert!(!state.detached_on(&other), "ids decide, not names");
        assert_eq!(state.branch_from_worktree(None, &devbox), (Some("main".into()), true));
        assert_eq!(state.branch_from_worktree(Some("feat".into()), &devbox), (Some("feat".into()), false));
        assert_eq!(state.branch_from_worktree(None, &other), (None, false));
        let again = ThreadState::from_note(&state.to_note()).unwrap();
        assert_eq!(again.branch_detached_on, state.branch_detached_on);
        assert!(again.extra.is_empty(), "the field is not kept twice: {:?}", again.extra);
    }
}
