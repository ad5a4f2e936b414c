//! Where a thread's rollout goes on the machine it arrives on: never a
//! second file for one thread id. In order: the path Codex's state database
//! records for the thread (when it is a rollout path under `sessions/`), the
//! file this machine already holds for the thread (an earlier stay), else
//! the canonical `sessions/YYYY/MM/DD/rollout-<local time>-<id>.jsonl`.
//!
//! Nothing here trusts a path from the other machine: every candidate is
//! made from this machine's own files and checked to stay under
//! `$CODEX_HOME/sessions` (symlinks resolved) with a name ending in
//! `-<thread id>.jsonl` before anything is written.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::rollout::{self, is_rollout_path_for};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Placement {
    /// Where the thread's rollout will be written.
    pub path: PathBuf,
    /// This machine's copy of the thread now, to compare the incoming one with.
    pub current: Option<PathBuf>,
    /// Something Codex here will do that the user should know of.
    pub warning: Option<String>,
}

/// Decide where thread `id` (created at `created`, UTC) goes on this machine.
pub fn place(id: &str, created: Option<&str>) -> Result<Placement> {
    let id = id.to_ascii_lowercase();
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(Error::failed("bad_codex_thread", format!("{id:?} is not a Codex thread id")));
    }
    let home = super::codex_home()?;
    let sessions = home.join("sessions");
    let existing = rollout::locate(&id)?;
    let indexed = super::state_db::indexed_rollout(&home, &id);
    let mut warning = None;
    let from_index = match &indexed {
        Some(row) => match plain_of(row).filter(|p| is_rollout_path_for(&sessions, p, &id)) {
            Some(path) => Some(path),
            None => {
                warning = Some(format!(
                    "Codex's state database here ({}) records {} for this thread, outside its sessions folder; \
                     Codex will keep using that file until the row is gone",
                    home.join(super::state_db::FILE).display(),
                    row.display()
                ));
                None
            }
        },
        None => None,
    };
    let path = match (from_index, &existing) {
        (Some(path), _) => path,
        (None, Some(found)) => plain_of(found).unwrap_or_else(|| found.clone()),
        (None, None) => sessions.join(rollout::canonical_relative(&id, created)),
    };
    if !is_rollout_path_for(&sessions, &path, &id) {
        return Err(Error::refused(
            "codex_rollout_path",
            format!("{} is not a rollout path under {}", path.display(), sessions.display()),
        )
        .with_help("check for symbolic links in the Codex sessions folder"));
    }
    let compressed = compressed_of(&path);
    let current = [Some(path.clone()), Some(compressed), existing.clone()].into_iter().flatten().find(|p| p.is_file());
    if let Some(other) = existing.filter(|e| *e != path && *e != compressed_of(&path)) {
        let also = format!("another copy of this thread stays at {}", other.display());
        warning = Some(match warning {
            Some(w) => format!("{w}; {also}"),
            None => also,
        });
    }
    Ok(Placement { path, current, warning })
}

/// Write the rollout atomically where `placement` says; `fill` writes its
/// bytes. A compressed copy of the same file is removed afterwards, so
/// Codex sees one file.
pub fn write(placement: &Placement, fill: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let sessions = super::codex_home()?.join("sessions");
    let dir = placement.path.parent().map(Path::to_path_buf).unwrap_or_else(|| sessions.clone());
    std::fs::create_dir_all(&dir)?;
    let id = placement.path.file_name().and_then(|n| rollout::id_of_name(&n.to_string_lossy()));
    // Checked again now that the folders exist: none of them may lead elsewhere.
    if !id.as_deref().is_some_and(|id| is_rollout_path_for(&sessions, &placement.path, id)) {
        return Err(Error::refused(
            "codex_rollout_path",
            format!("{} is not a rollout path under {}", placement.path.display(), sessions.display()),
        ));
    }
    let mut tmp = tempfile::Builder::new().prefix(".rollout-").tempfile_in(&dir)?;
    {
        let mut out = std::io::BufWriter::with_capacity(256 * 1024, tmp.as_file_mut());
        fill(&mut out)?;
        out.flush()?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(&placement.path)
        .map_err(|e| Error::failed("io", format!("could not write {}", placement.path.display())).with_source(e))?;
    let compressed = compressed_of(&placement.path);
    if compressed.is_file() {
        std::fs::remove_file(&compressed)?;
    }
    Ok(())
}

/// `….jsonl.zst` -> `….jsonl`; a plain path as it is.
fn plain_of(path: &Path) -> Option<PathBuf> {
    let text = path.to_str()?;
    Some(PathBuf::from(text.strip_suffix(".zst").unwrap_or(text)))
}

fn compressed_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.zst", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "01a2353c-7efb-75a2-9024-5bf02581798b";

    #[test]
    fn only_rollout_names_under_sessions_pass() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = dir.path().join("sessions");
        std::fs::create_dir_all(sessions.join("2026/12")).unwrap();
        let good = sessions.join(format!("2026/12/02/rollout-2026-12-02T05-31-26-{ID}.jsonl"));
        assert!(is_rollout_path_for(&sessions, &good, ID));
        assert!(!is_rollout_path_for(&sessions, &good, "01a2353c-7efb-75a2-9024-000000000000"));
        assert!(!is_rollout_path_for(&sessions, &compressed_of(&good), ID));
        let dotdot = sessions.join(format!("2026/../../rollout-x-{ID}.jsonl"));
        assert!(!is_rollout_path_for(&sessions, &dotdot, ID));
        assert!(!is_rollout_path_for(&sessions, &dir.path().join(format!("rollout-x-{ID}.jsonl")), ID));
        // A folder that is a symlink out of sessions.
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, sessions.join("2026/12/03")).unwrap();
        let escaped = sessions.join(format!("2026/12/03/rollout-2026-12-03T00-00-00-{ID}.jsonl"));
        assert!(!is_rollout_path_for(&sessions, &escaped, ID));
        // Before any sessions folder exists.
        let fresh = dir.path().join("fresh/sessions");
        assert!(is_rollout_path_for(&fresh, &fresh.join(format!("2026/01/01/rollout-x-{ID}.jsonl")), ID));
    }
}
