//! The thread state stored as a note on every snapshot commit.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::machine::Machine;

/// Version of the note's JSON layout. 2 added the machine ids; notes of
/// schema 1 name machines only by their display names, and still work.
pub const SCHEMA: u32 = 2;

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
    /// Short branch name; `None` for a detached HEAD.
    pub branch: Option<String>,
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
}
