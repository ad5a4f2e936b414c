//! Markers: a file per interrupted step, so the next run finishes it.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::repo::Repo;

/// A marker says an interrupted step must be finished by the next run.
pub(super) fn marker_path(repo: &Repo, kind: &str, uuid: &str) -> Result<PathBuf> {
    let dir = repo.private_dir()?.join("pending");
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(format!("{kind}-{uuid}.json")))
}

pub(super) fn set_marker(repo: &Repo, kind: &str, uuid: &str, value: &serde_json::Value) -> Result<()> {
    let path = marker_path(repo, kind, uuid)?;
    std::fs::write(&path, serde_json::to_vec(value).expect("marker serializes"))?;
    Ok(())
}

pub(super) fn read_marker(repo: &Repo, kind: &str, uuid: &str) -> Result<Option<serde_json::Value>> {
    match std::fs::read(marker_path(repo, kind, uuid)?) {
        Ok(data) => Ok(serde_json::from_slice(&data).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(super) fn clear_marker(repo: &Repo, kind: &str, uuid: &str) -> Result<()> {
    let _ = std::fs::remove_file(marker_path(repo, kind, uuid)?);
    Ok(())
}

pub(super) fn is_pending_arrival(repo: &Repo, uuid: &str, path: &Path) -> Result<bool> {
    Ok(read_marker(repo, "arrival", uuid)?
        .and_then(|m| m["worktree"].as_str().map(PathBuf::from))
        .is_some_and(|p| p == path))
}
