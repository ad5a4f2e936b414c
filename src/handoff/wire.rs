//! The answers the helper sends for each request (the `remote` protocol
//! carries them as JSON), and what its requests share: the thread id check
//! and the Git LFS parameters.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::arrival::Arrival;

use crate::error::{Error, Result};
use crate::thread::carried::Needs;
use crate::thread::state::is_thread_uuid;
use crate::worktree::state::Changes;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectMatch {
    /// The repository's common git dir on the host (what git pushes to).
    pub repo: String,
    /// The saved project directory.
    pub project: String,
    /// How the host recognised the repository: `roots` or `url` (absent from older helpers).
    #[serde(default)]
    pub matched_by: Option<String>,
    /// Where the host's clone is cut off when it is shallow (`.git/shallow`).
    #[serde(default)]
    pub shallow: Vec<String>,
    /// The host has the thread's HEAD commit.
    #[serde(default)]
    pub head_known: bool,
    /// The commits among the thread's history heads (`heads`) that the host lacks.
    #[serde(default)]
    pub unknown_heads: Vec<String>,
    /// The host has every commit where this computer's shallow history is cut off.
    #[serde(default)]
    pub boundary_known: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanAnswer {
    pub worktree: String,
    pub reuse: bool,
    /// Where the branch points on the host now, if it exists there.
    pub branch_tip: Option<String>,
    /// Another worktree on the host that has the branch checked out.
    pub branch_checked_out: Option<String>,
    /// Where the thread's Codex rollout goes there, and whether it replaces a copy.
    #[serde(default)]
    pub codex: Option<CodexPlan>,
    /// Commits the host's repository has (protocol 4), which a pack sent there leaves out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub haves: Vec<String>,
    /// The worktree there would not tell file names apart by case (absent
    /// from older helpers, which do not look).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub case_insensitive: bool,
}

/// Where a Codex thread's rollout goes on the destination.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodexPlan {
    pub rollout: String,
    /// The destination has a copy of the thread from an earlier stay, which this one extends.
    pub replaces: bool,
    /// Something Codex there will do that the user should know of.
    #[serde(default)]
    pub warning: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteThread {
    pub epoch: u64,
    pub owner_machine: String,
    #[serde(default)]
    pub owner_machine_id: Option<String>,
    pub snapshot: String,
    #[serde(default)]
    pub worktree: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BeginAnswer {
    pub thread: Option<RemoteThread>,
    /// What the host repaired of an interrupted handoff before this one, one sentence each.
    #[serde(default)]
    pub repairs: Vec<String>,
}

impl RemoteThread {
    /// Does the machine that answered `hello` own the thread, by this record?
    pub fn owned_by(&self, hello: &crate::remote::protocol::Hello) -> bool {
        match &self.owner_machine_id {
            Some(id) => *id == hello.machine_id,
            None => self.owner_machine == hello.machine,
        }
    }
}

pub type ArrivalAnswer = Arrival;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DepartAnswer {
    pub snapshot: String,
    /// The module repositories (relative to the host's common git dir)
    /// where the submodules' snapshots wait, parents first.
    #[serde(default)]
    pub modules: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusAnswer {
    /// The thread's branch (also where its worktree there works on a detached HEAD).
    pub branch: Option<String>,
    /// The HEAD commit of the thread's worktree there (absent from older helpers).
    #[serde(default)]
    pub head: Option<String>,
    pub changes: Changes,
    #[serde(default)]
    pub running: bool,
    #[serde(default)]
    pub transcript_bytes: Option<u64>,
    /// What a snapshot of the host's worktree needs here.
    #[serde(default)]
    pub needs: Needs,
    /// Asked for a case-insensitive destination: the thread's files there
    /// whose names differ only in case (`None` from older helpers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_collisions: Option<Vec<Vec<String>>>,
}

/// Does the thread's HEAD on the host descend from (or equal) a commit?
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DescendsAnswer {
    /// `None`: the host does not have that commit.
    pub descends: Option<bool>,
}

#[derive(Deserialize)]
pub(super) struct LfsParams {
    pub(super) repo: String,
    pub(super) uuid: String,
    pub(super) oids: Vec<String>,
    /// For `lfs_expose`: the last batch; the carrier is made now.
    #[serde(default)]
    pub(super) done: bool,
}

/// Refuse a request whose thread id is not a thread UUID.
pub(super) fn check_uuid(uuid: &str) -> Result<()> {
    if !is_thread_uuid(uuid) {
        return Err(Error::usage("bad_thread", format!("{uuid:?} is not a thread UUID")));
    }
    Ok(())
}

/// An answer as the JSON the protocol carries.
pub(super) fn answer(value: impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| Error::failed("json", "could not encode the answer").with_source(e))
}
