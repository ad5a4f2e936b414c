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
    // Every machine will write it under this name: it must be one Codex finds.
    checked_location(&sessions, &relative, &session_id)?;
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

/// Where the rollout named `relative` (as a note records it, below
/// `$CODEX_HOME/sessions`) of Codex thread `thread_id` may live on this
/// machine. The name comes from another machine, so only Codex's own layout is
/// accepted — `YYYY/MM/DD/rollout-<time>-<thread id>.jsonl` (or `.jsonl.zst`)
/// — and no existing directory on the way may be a symlink leading out of
/// `sessions_root`. Anything else is refused before a file is touched.
pub fn checked_location(sessions_root: &Path, relative: &str, thread_id: &str) -> Result<PathBuf> {
    let refuse = |why: &str| {
        Error::refused("bad_rollout_path", format!("refused the Codex session file name {relative:?}: {why}"))
            .with_help("the note naming it did not come from git-codex-handoff; nothing was written")
    };
    if !is_uuid(thread_id) {
        return Err(refuse("the Codex thread id is not a UUID"));
    }
    let parts: Vec<&str> = relative.split('/').collect();
    let [year, month, day, name] = parts.as_slice() else {
        return Err(refuse("it is not of the form YYYY/MM/DD/rollout-…-<thread id>.jsonl"));
    };
    let digits = |text: &str, len: usize| text.len() == len && text.bytes().all(|b| b.is_ascii_digit());
    if !digits(year, 4) || !digits(month, 2) || !digits(day, 2) {
        return Err(refuse("its folders are not a date (YYYY/MM/DD)"));
    }
    let stem = name.strip_suffix(".jsonl").or_else(|| name.strip_suffix(".jsonl.zst"));
    let time = stem.and_then(|s| s.strip_prefix("rollout-")).and_then(|s| s.strip_suffix(thread_id));
    let Some(time) = time.and_then(|t| t.strip_suffix('-')) else {
        return Err(refuse("the file name is not rollout-…-<thread id>.jsonl"));
    };
    if !time.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')) {
        return Err(refuse("the file name holds characters Codex never writes"));
    }
    let location = sessions_root.join(relative);
    // Directories that exist already must resolve inside the root: a symlink
    // there (planted by anyone) would carry the write elsewhere.
    let root = match sessions_root.canonicalize() {
        Ok(root) => root,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(location),
        Err(e) => return Err(Error::from(e)),
    };
    let mut dir = sessions_root.to_path_buf();
    for part in [year, month, day] {
        dir.push(part);
        match std::fs::symlink_metadata(&dir) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(Error::from(e)),
        }
        let inside = dir.canonicalize().is_ok_and(|real| real.starts_with(&root) && real.is_dir());
        if !inside {
            return Err(refuse(&format!("{} is not a directory inside {}", dir.display(), root.display())));
        }
    }
    if std::fs::symlink_metadata(&location).is_ok_and(|m| !m.is_file()) {
        return Err(refuse(&format!("{} is not a plain file", location.display())));
    }
    Ok(location)
}

/// A thread id as Codex writes it: a hyphenated lowercase UUID.
pub fn is_uuid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok_and(|id| id.hyphenated().to_string() == text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0199a213-81c0-7800-8aa1-bbab2a035a53";

    #[test]
    fn only_codex_rollout_names_under_sessions() {
        let home = tempfile::tempdir().unwrap();
        let sessions = home.path().join("sessions");
        let good = format!("2026/11/24/rollout-2026-11-24T08-00-00-{ID}.jsonl");
        assert_eq!(checked_location(&sessions, &good, ID).unwrap(), sessions.join(&good));
        let zst = format!("2026/11/24/rollout-2026-11-24T08-00-00-{ID}.jsonl.zst");
        assert!(checked_location(&sessions, &zst, ID).is_ok());
        for bad in [
            "../../.ssh/authorized_keys".to_owned(),
            format!("/etc/rollout-x-{ID}.jsonl"),
            format!("2026/11/../../rollout-x-{ID}.jsonl"),
            format!("2026/11/24/../rollout-x-{ID}.jsonl"),
            format!("2026/11/24/x/rollout-x-{ID}.jsonl"),
            format!("2026/11/24/rollout-x-{ID}.json"),
            format!("2026/11/24/rollout-x-{ID}.jsonl/"),
            format!("2026/11/24/rollout-x/y-{ID}.jsonl"),
            format!("2026/11/24/rollout-{ID}.jsonl"),
            format!("2026/11/24/rollout-x\n-{ID}.jsonl"),
            format!("2026/11/24/rollout-x-{ID}x.jsonl"),
            "2026/11/24/rollout-x-0199a213-81c0-7800-8aa1-bbab2a035a54.jsonl".to_owned(),
            format!("2026/1/24/rollout-x-{ID}.jsonl"),
            format!("2026//11/24/rollout-x-{ID}.jsonl"),
            String::new(),
        ] {
            let err = checked_location(&sessions, &bad, ID).unwrap_err();
            assert_eq!(err.exit_code(), 4, "{bad:?}");
        }
        assert!(checked_location(&sessions, &good, "../x").is_err());
        assert!(checked_location(&sessions, &good, &ID.to_uppercase()).is_err());
    }

    #[test]
    fn symlinked_folders_may_not_lead_out() {
        let home = tempfile::tempdir().unwrap();
        let sessions = home.path().join("sessions");
        let outside = home.path().join("outside");
        std::fs::create_dir_all(sessions.join("2026")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, sessions.join("2026/11")).unwrap();
        let name = format!("2026/11/24/rollout-x-{ID}.jsonl");
        assert_eq!(checked_location(&sessions, &name, ID).unwrap_err().exit_code(), 4);
        // A symlink that stays inside is no escape; the root itself may be a symlink.
        std::fs::remove_file(sessions.join("2026/11")).unwrap();
        std::fs::create_dir_all(sessions.join("2026/12")).unwrap();
        std::os::unix::fs::symlink(sessions.join("2026/12"), sessions.join("2026/11")).unwrap();
        assert!(checked_location(&sessions, &name, ID).is_ok());
        let linked_root = home.path().join("linked-sessions");
        std::os::unix::fs::symlink(&sessions, &linked_root).unwrap();
        assert!(checked_location(&linked_root, &name, ID).is_ok());
        // The file itself must be a plain file when it exists.
        std::fs::create_dir_all(sessions.join("2026/12/24")).unwrap();
        std::os::unix::fs::symlink(outside.join("x"), sessions.join(&name)).unwrap();
        assert_eq!(checked_location(&sessions, &name, ID).unwrap_err().exit_code(), 4);
    }
}
