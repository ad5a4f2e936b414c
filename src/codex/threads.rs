//! The Codex threads that work in a directory, found by reading the first
//! line of every rollout under `sessions/` (no Codex process needed).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::rollout;
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct CodexThread {
    pub id: String,
    pub path: PathBuf,
    /// The working directory its rollout starts in.
    pub cwd: PathBuf,
    /// Its name in `session_index.jsonl`.
    pub name: Option<String>,
    /// When its rollout last changed.
    pub updated: Option<SystemTime>,
    pub source: Option<String>,
}

/// Every Codex thread whose working directory is `root` or below it,
/// most recently active first.
pub fn under(root: &Path) -> Result<Vec<CodexThread>> {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let names = super::thread_names();
    let mut found = Vec::new();
    for (id, path) in rollout::scan(&rollout::sessions_dir()?) {
        let Some(meta) = rollout::meta_of(&path) else { continue };
        let Some(cwd) = meta.cwd.map(PathBuf::from) else { continue };
        if !inside(&cwd, &root) {
            continue;
        }
        let updated = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let name = names.get(&id).cloned();
        found.push(CodexThread { id, path, cwd, name, updated, source: meta.source });
    }
    found.sort_by(|a, b| b.updated.cmp(&a.updated).then(a.id.cmp(&b.id)));
    Ok(found)
}

/// Is `dir` the directory `root` or inside it (symlinks resolved where they exist)?
pub fn inside(dir: &Path, root: &Path) -> bool {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    dir.starts_with(root)
}
