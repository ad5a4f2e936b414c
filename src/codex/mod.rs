//! The Codex CLI's files on this machine: `$CODEX_HOME` (default
//! `~/.codex`), rollouts under `sessions/` (`rollout`), and the thread names
//! in `session_index.jsonl` (here).
//!
//! May use the root helpers only; knows nothing of threads or hosts.

pub mod rollout;

use std::path::PathBuf;

use serde_json::Value;

use crate::error::Result;

pub fn codex_home() -> Result<PathBuf> {
    match std::env::var_os("CODEX_HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home)),
        None => Ok(crate::config::home()?.join(".codex")),
    }
}

/// The session's name in `session_index.jsonl` (the last entry wins).
pub fn thread_name(id: &str) -> Option<String> {
    let text = std::fs::read_to_string(codex_home().ok()?.join("session_index.jsonl")).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["id"] == id)
        .and_then(|v| v["thread_name"].as_str().map(str::to_owned))
}

/// Keep `session_index.jsonl` in step: append the name unless it is already the latest.
pub fn record_thread_name(id: &str, name: &str) -> Result<()> {
    use std::io::Write;
    if thread_name(id).as_deref() == Some(name) {
        return Ok(());
    }
    let line = serde_json::json!({ "id": id, "thread_name": name, "updated_at": crate::time::now_rfc3339() });
    let mut file =
        std::fs::OpenOptions::new().create(true).append(true).open(codex_home()?.join("session_index.jsonl"))?;
    writeln!(file, "{line}")?;
    Ok(())
}
