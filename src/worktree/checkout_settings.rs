//! Worktree settings that decide which files checkout writes and with which
//! bytes: sparse checkout (patterns, cone mode, sparse index) and line
//! endings (`core.autocrlf`, `core.eol`). They travel with the snapshot and
//! are set in the destination worktree's own config (`config.worktree`), as
//! `git sparse-checkout` does, so other worktrees there are unaffected.

use crate::error::{Error, Result};
use crate::repo::Repo;
use crate::worktree::state::Sparse;

/// Settings carried to the destination worktree, and the values each may
/// take, git's default first.
const CARRIED: &[(&str, &[&str])] =
    &[("core.autocrlf", &["false", "true", "input"]), ("core.eol", &["native", "lf", "crlf"])];

/// Patterns files larger than this are refused: nobody writes them by hand.
const MAX_PATTERNS: usize = 16 << 20;

/// The sparse-checkout settings of the worktree `repo` is opened at, if sparse.
pub fn capture_sparse(repo: &Repo) -> Result<Option<Sparse>> {
    let config = repo.gix.config_snapshot();
    if !config.boolean("core.sparseCheckout").unwrap_or(false) {
        return Ok(None);
    }
    let file = repo.git_dir().join("info").join("sparse-checkout");
    let bytes = match std::fs::read(&file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let patterns = repo.gix.write_blob(&bytes)?.detach();
    let (cone, sparse_index) = sparse_flags(repo);
    Ok(Some(Sparse { cone, sparse_index, patterns }))
}

fn sparse_flags(repo: &Repo) -> (bool, bool) {
    let config = repo.gix.config_snapshot();
    (config.boolean("core.sparseCheckoutCone").unwrap_or(false), config.boolean("index.sparse").unwrap_or(false))
}

/// The carried settings as this worktree sees them, those not at git's default.
pub fn carried_settings(repo: &Repo) -> Vec<(String, String)> {
    let config = repo.gix.config_snapshot();
    CARRIED
        .iter()
        .filter_map(|(key, values)| {
            let value = config.string(*key)?.to_string().trim().to_ascii_lowercase();
            // git reads a bare `autocrlf` (or yes/on/1) as true.
            let value = match value.as_str() {
                "" | "yes" | "on" | "1" if *key == "core.autocrlf" => "true".to_owned(),
                "no" | "off" | "0" if *key == "core.autocrlf" => "false".to_owned(),
                _ => value,
            };
            (value != values[0]).then(|| ((*key).to_owned(), value))
        })
        .collect()
}

/// Keep only settings this version carries, with values git accepts.
pub fn checked_settings(settings: Vec<(String, String)>) -> Result<Vec<(String, String)>> {
    for (key, value) in &settings {
        let known = CARRIED.iter().find(|(k, _)| k == key);
        if !known.is_some_and(|(_, values)| values.contains(&value.as_str())) {
            return Err(Error::failed(
                "bad_snapshot",
                format!("the snapshot carries an unknown setting {key} = {value:?}"),
            )
            .with_help("upgrade git-codex-handoff on both machines"));
        }
    }
    Ok(settings)
}

/// Give the worktree `worktree` the sparse-checkout settings and carried
/// settings of a snapshot, before its files are written. Only what differs
/// is written, into the worktree's own config.
pub fn apply(worktree: &Repo, sparse: Option<&Sparse>, settings: &[(String, String)]) -> Result<()> {
    let current = capture_sparse(worktree)?;
    let (cone, sparse_index) = sparse_flags(worktree);
    let mut writes: Vec<(&str, String)> = Vec::new();
    if sparse.is_some() != current.is_some() {
        writes.push(("core.sparseCheckout", sparse.is_some().to_string()));
    }
    if let Some(s) = sparse {
        if s.cone != cone {
            writes.push(("core.sparseCheckoutCone", s.cone.to_string()));
        }
        if s.sparse_index != sparse_index {
            writes.push(("index.sparse", s.sparse_index.to_string()));
        }
    }
    let have = carried_settings(worktree);
    for (key, values) in CARRIED {
        let want = settings.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or(values[0]);
        let now = have.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or(values[0]);
        if want != now {
            writes.push((key, want.to_owned()));
        }
    }
    if !writes.is_empty() {
        enable_worktree_config(worktree)?;
        let git = worktree.git();
        for (key, value) in &writes {
            git.run(["config", "--worktree", key, value])?;
        }
    }
    if let Some(s) = sparse {
        if current.as_ref().map(|c| c.patterns) != Some(s.patterns) {
            let blob = worktree.gix.find_blob(s.patterns)?;
            if blob.data.len() > MAX_PATTERNS {
                return Err(Error::failed("bad_snapshot", "the snapshot's sparse-checkout patterns are too large"));
            }
            let info = worktree.git_dir().join("info");
            std::fs::create_dir_all(&info)?;
            let tmp = info.join("sparse-checkout.codex-handoff.tmp");
            std::fs::write(&tmp, &blob.data)?;
            std::fs::rename(&tmp, info.join("sparse-checkout"))?;
        }
    }
    Ok(())
}

/// `git config --worktree` needs `extensions.worktreeConfig` once a
/// repository has more than one worktree; `git sparse-checkout` sets it the same way.
fn enable_worktree_config(worktree: &Repo) -> Result<()> {
    let common = crate::git::Git::new(worktree.common_dir(), None);
    let on = common.text(["config", "--bool", "--get", "extensions.worktreeConfig"]).is_ok_and(|v| v == "true");
    if !on {
        common.run(["config", "extensions.worktreeConfig", "true"])?;
    }
    Ok(())
}
