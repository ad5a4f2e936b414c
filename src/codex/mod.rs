//! The Codex CLI's files on this machine: `$CODEX_HOME` (default
//! `~/.codex`), rollouts under `sessions/` (`rollout`), their working
//! directory moved to another worktree (`relocate`), where an arriving
//! rollout goes (`placement`), Codex's state database read only
//! (`state_db`), the threads of a worktree (`threads`), and thread names in
//! `session_index.jsonl` (here).
//!
//! May use the root helpers only; knows nothing of git-codex-handoff's threads or hosts.

pub mod placement;
pub mod relocate;
pub mod rollout;
pub mod skills;
pub mod state_db;
pub mod threads;

use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;

use serde_json::Value;

use crate::error::Result;

/// Where Codex keeps its files: `CODEX_HOME`, else (in the helper, whose
/// environment is a non-login shell's) what the login shell sets it to, else `~/.codex`.
pub fn codex_home() -> Result<PathBuf> {
    Ok(codex_home_and_origin()?.0)
}

/// Where `codex_home` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HomeOrigin {
    Environment,
    LoginShell,
    Default,
}

pub fn codex_home_and_origin() -> Result<(PathBuf, HomeOrigin)> {
    if let Some(home) = std::env::var_os("CODEX_HOME").filter(|h| !h.is_empty()) {
        return Ok((PathBuf::from(home), HomeOrigin::Environment));
    }
    if let Some(home) = crate::login_shell::codex_home() {
        return Ok((home, HomeOrigin::LoginShell));
    }
    Ok((crate::config::home()?.join(".codex"), HomeOrigin::Default))
}

/// What Codex on this machine would use, as its login shell sets it up:
/// `CODEX_HOME` and where it came from, and the Codex CLI (path, version).
pub fn environment() -> Result<Value> {
    use crate::login_shell::{self, Question};
    let answer = login_shell::answer_here(Question::Check);
    let (codex_home, origin) = codex_home_and_origin()?;
    Ok(serde_json::json!({
        "login_shell": std::env::var("SHELL").ok(),
        "asked_login_shell": answer.is_some(),
        "codex_home": codex_home,
        "codex_home_from": origin,
        "codex": answer.as_ref().and_then(|a| a.codex.as_ref()).map(|found| serde_json::json!({
            "path": found.path,
            "found": found.how,
            "version": answer.as_ref().and_then(|a| a.codex_version.clone()),
        })),
    }))
}

/// Every thread name in `session_index.jsonl` (the last entry for an id wins).
pub fn thread_names() -> HashMap<String, String> {
    let mut names = HashMap::new();
    let Ok(file) = codex_home().and_then(|h| Ok(std::fs::File::open(h.join("session_index.jsonl"))?)) else {
        return names;
    };
    for line in std::io::BufReader::new(file).split(b'\n').map_while(std::io::Result::ok) {
        let Ok(entry) = serde_json::from_slice::<Value>(&line) else { continue };
        if let (Some(id), Some(name)) = (entry["id"].as_str(), entry["thread_name"].as_str()) {
            names.insert(id.to_ascii_lowercase(), name.to_owned());
        }
    }
    names
}

/// The thread's name in `session_index.jsonl`, if it has one.
pub fn thread_name(id: &str) -> Option<String> {
    thread_names().remove(&id.to_ascii_lowercase())
}

/// Keep `session_index.jsonl` in step: append the name unless it is already the latest.
pub fn record_thread_name(id: &str, name: &str) -> Result<()> {
    use std::io::Write;
    if thread_name(id).as_deref() == Some(name) {
        return Ok(());
    }
    let line = serde_json::json!({ "id": id, "thread_name": name, "updated_at": crate::time::now_rfc3339() });
    let home = codex_home()?;
    std::fs::create_dir_all(&home)?;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(home.join("session_index.jsonl"))?;
    writeln!(file, "{line}")?;
    Ok(())
}
