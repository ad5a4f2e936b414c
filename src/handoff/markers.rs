//! Markers: where an interrupted handoff stopped, recorded on the machine
//! where each step happens (under the thread's lock), so the next run there
//! finishes the step or rolls it back.
//!
//! - `arrival`: a restore into a worktree has begun here; the thread's ref
//!   moving to the marker's snapshot is the point where it counts.
//! - `release`: this computer owns a thread it brought back, and the host it
//!   came from has not yet been told to let go.
//! - `relay`: a thread is going from one host to another through this
//!   computer; until the destination is known to have it (or not) and the
//!   host it left has let go, the next run here settles that first.
//!
//! The other steps need no file: a departing snapshot waits in a staged
//! notes ref, and pushed or fetched objects under `refs/codex-handoff/incoming/`.

use std::path::PathBuf;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::Result;
use crate::repo::Repo;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ArrivalMarker {
    /// The snapshot being restored.
    pub snapshot: String,
    pub worktree: String,
    /// The worktree is new (else a reused one, which held `previous`).
    pub new: bool,
    /// For a reused worktree: the snapshot whose state it held, and whether its HEAD was detached.
    pub previous: Option<String>,
    pub detached: bool,
    /// Whether the thread's worktree here had been made by a handoff.
    pub made_here: bool,
    /// The branch the restore checks out, and where it pointed before (`None`: it did not exist).
    pub branch: Option<String>,
    pub branch_before: Option<String>,
    /// The arriving snapshot's HEAD commit: rolling back needs no note of it
    /// (a failed arrival takes the arriving note away again).
    #[serde(default)]
    pub head: Option<String>,
}

/// A thread going from one host to another through this computer: from
/// the moment its snapshot may reach the destination until the host it
/// left has let go.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct RelayMarker {
    /// The host it leaves and the one it goes to, as this computer names them.
    pub from: String,
    pub to: String,
    /// The snapshot it departed with, at `epoch`.
    pub snapshot: String,
    pub epoch: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ReleaseMarker {
    pub host: String,
    pub snapshot: String,
}

fn marker_path(repo: &Repo, kind: &str, uuid: &str) -> Result<PathBuf> {
    Ok(repo.private_dir()?.join("pending").join(format!("{kind}-{uuid}.json")))
}

/// Written whole or not at all (a new file renamed into place); a write
/// that fails (a full disk) leaves nothing behind.
pub(super) fn set_marker(repo: &Repo, kind: &str, uuid: &str, value: &impl Serialize) -> Result<()> {
    let path = marker_path(repo, kind, uuid)?;
    let tmp = path.with_extension("tmp");
    let data = serde_json::to_vec(value)
        .map_err(|e| crate::error::Error::failed("json", "could not encode a marker").with_source(e))?;
    let write = || -> std::io::Result<()> {
        std::fs::write(&tmp, &data)?;
        std::fs::rename(&tmp, &path)
    };
    // The directory is made on demand, and goes with its last marker (perhaps another thread's, just now).
    let written = write().or_else(|e| match (e.kind(), path.parent()) {
        (std::io::ErrorKind::NotFound, Some(dir)) => std::fs::create_dir_all(dir).and_then(|()| write()),
        _ => Err(e),
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        if let Some(dir) = path.parent() {
            let _ = std::fs::remove_dir(dir);
        }
        return Err(e.into());
    }
    Ok(())
}

pub(super) fn read_marker<T: DeserializeOwned>(repo: &Repo, kind: &str, uuid: &str) -> Result<Option<T>> {
    match std::fs::read(marker_path(repo, kind, uuid)?) {
        Ok(data) => Ok(serde_json::from_slice(&data).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(super) fn clear_marker(repo: &Repo, kind: &str, uuid: &str) -> Result<()> {
    let path = marker_path(repo, kind, uuid)?;
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    // The directory goes with its last marker (removing a directory that is not empty fails).
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}

pub(super) const ARRIVAL: &str = "arrival";
pub(super) const RELEASE: &str = "release";
pub(super) const RELAY: &str = "relay";
