//! Rollout files: `$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<local
//! time>-<uuid>.jsonl`, whose first line is the `session_meta` record.
//! `codex resume <uuid>` finds a correctly named file there even without a
//! row in Codex's state database, which repairs itself from it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::codex_home;
use crate::error::{Error, Result};

/// A session's rollout file on this machine.
#[derive(Debug, Clone)]
pub struct Rollout {
    pub path: PathBuf,
    pub session_id: String,
    /// The path below `$CODEX_HOME/sessions`, kept the same on every machine.
    pub relative: String,
}

/// Find the rollout of a session given by UUID (searched under
/// `$CODEX_HOME/sessions`) or by the rollout file's path.
pub fn find(spec: &str) -> Result<Rollout> {
    let sessions = codex_home()?.join("sessions");
    let as_path = Path::new(spec);
    let path = if as_path.is_file() {
        as_path.canonicalize()?
    } else {
        let id = uuid::Uuid::parse_str(spec).map_err(|_| {
            Error::not_found("codex_session_not_found", format!("{spec} is neither a rollout file nor a session UUID"))
                .with_help(
                    "give the session's UUID (as `codex resume` shows it) or the path of its rollout-*.jsonl file",
                )
        })?;
        search(&sessions, &id.to_string())?
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if name.ends_with(".jsonl.zst") {
        return Err(Error::refused(
            "codex_rollout_compressed",
            format!("the Codex session file {} is compressed", path.display()),
        )
        .with_help(
            "resume the session once with `codex resume <UUID>` (Codex decompresses it to append), then try again",
        ));
    }
    let session_id = check(&path)?;
    let relative = path
        .strip_prefix(sessions.canonicalize().unwrap_or(sessions.clone()))
        .map(|r| r.to_string_lossy().into_owned())
        .unwrap_or_else(|_| dated_relative(&name));
    Ok(Rollout { path, session_id, relative })
}

/// `rollout-2026-11-24T08-00-00-<uuid>.jsonl` -> `2026/11/24/rollout-...`.
fn dated_relative(name: &str) -> String {
    let date = name.strip_prefix("rollout-").and_then(|r| r.get(..10)).unwrap_or("1970-01-01");
    format!("{}/{name}", date.replace('-', "/"))
}

fn search(sessions: &Path, id: &str) -> Result<PathBuf> {
    let mut found = None;
    let mut dirs = vec![sessions.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                dirs.push(path);
            } else if name.starts_with("rollout-")
                && (name.ends_with(&format!("{id}.jsonl")) || name.ends_with(&format!("{id}.jsonl.zst")))
            {
                // A plain file hides a compressed sibling, as in Codex.
                if found.as_ref().is_none_or(|f: &PathBuf| f.to_string_lossy().ends_with(".zst")) {
                    found = Some(path);
                }
            }
        }
    }
    found.ok_or_else(|| {
        Error::not_found("codex_session_not_found", format!("no Codex session {id} under {}", sessions.display()))
            .with_help("check CODEX_HOME, or give the rollout file's path")
    })
}

/// Check a rollout can be carried exactly; returns its session id.
pub fn check(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).map_err(|e| {
        Error::not_found("codex_session_not_found", format!("cannot open {}", path.display())).with_source(e)
    })?;
    let mut reader = BufReader::new(file);
    let mut first = Vec::new();
    reader.read_until(b'\n', &mut first)?;
    let meta: Value = serde_json::from_slice(&first).unwrap_or(Value::Null);
    if meta["type"] != "session_meta" || !meta["payload"]["id"].is_string() {
        return Err(Error::usage(
            "not_a_rollout",
            format!("{} does not start with a session_meta record", path.display()),
        )
        .with_help("give a Codex CLI rollout file (rollout-*.jsonl under $CODEX_HOME/sessions)"));
    }
    if meta["payload"]["history_mode"].as_str().is_some_and(|m| m.starts_with("paginated")) {
        return Err(Error::refused(
            "codex_paginated",
            "this Codex thread uses paginated history, which Codex keeps in its state database".to_string(),
        )
        .with_help(
            "handing off paginated Codex threads isn't supported by this version; start the thread with legacy history",
        ));
    }
    // Segmented rollouts name older segment files by absolute path.
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.windows(18).any(|w| w == b"\"rollout_reference") {
            return Err(Error::refused("codex_segmented", format!("{} is split into segments", path.display()))
                .with_help("handing off segmented Codex sessions isn't supported by this version"));
        }
    }
    Ok(meta["payload"]["id"].as_str().unwrap_or_default().to_owned())
}

/// The session's first line with `cwd` and the git fields pointing at the new worktree.
pub fn rewrite_meta(first_line: &[u8], cwd: &Path, branch: Option<&str>, head: Option<&str>) -> Result<Vec<u8>> {
    let mut meta: Value =
        serde_json::from_slice(first_line.strip_suffix(b"\n").unwrap_or(first_line)).map_err(|e| {
            Error::failed("not_a_rollout", "the transcript does not start with a session_meta record").with_source(e)
        })?;
    let payload = meta
        .get_mut("payload")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| Error::failed("not_a_rollout", "the transcript's session_meta has no payload"))?;
    payload.insert("cwd".into(), Value::String(cwd.to_string_lossy().into_owned()));
    if let Some(git) = payload.get_mut("git").and_then(Value::as_object_mut) {
        if let Some(branch) = branch {
            git.insert("branch".into(), Value::String(branch.to_owned()));
        }
        if let Some(head) = head {
            git.insert("commit_hash".into(), Value::String(head.to_owned()));
        }
    }
    let mut out = serde_json::to_vec(&meta).expect("JSON serializes");
    out.push(b'\n');
    Ok(out)
}

/// The session's `cwd` as the first line records it.
pub fn meta_cwd(first_line: &[u8]) -> Option<String> {
    let meta: Value = serde_json::from_slice(first_line.strip_suffix(b"\n").unwrap_or(first_line)).ok()?;
    meta["payload"]["cwd"].as_str().map(str::to_owned)
}
