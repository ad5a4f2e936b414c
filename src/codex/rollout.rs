//! Rollout files: `$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<local
//! time>-<thread id>.jsonl`, whose first line is the `session_meta` record.
//! Every Codex thread, legacy or paginated, is one such file: Codex finds a
//! thread by the file name's id and rebuilds its databases from the file.
//! Files older than a week may be compressed in place (`.jsonl.zst`); a
//! plain file beside a compressed one wins, as in Codex.

use std::io::{BufRead, BufReader};
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::codex_home;
use super::relocate::{read_line_limited, LINE_LIMIT};
use crate::error::{Error, Result};

pub const PLAIN: &str = ".jsonl";
pub const COMPRESSED: &str = ".jsonl.zst";

/// A thread's rollout file on this machine.
#[derive(Debug, Clone)]
pub struct Rollout {
    pub path: PathBuf,
    pub thread_id: String,
    /// The path below `$CODEX_HOME/sessions`.
    pub relative: String,
}

/// What the first line says about the thread.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub id: String,
    pub cwd: Option<String>,
    /// Creation time, UTC (RFC 3339).
    pub timestamp: Option<String>,
    /// `cli`, `vscode`, `exec`, …
    pub source: Option<String>,
}

pub fn sessions_dir() -> Result<PathBuf> {
    Ok(codex_home()?.join("sessions"))
}

/// Find the rollout of a thread given by id, unique id prefix (at least 6
/// hex digits) or the rollout file's path.
pub fn find(spec: &str) -> Result<Rollout> {
    let sessions = sessions_dir()?;
    let as_path = Path::new(spec);
    let path = if as_path.is_file() {
        as_path.canonicalize()?
    } else {
        let wanted = spec.trim().to_ascii_lowercase();
        let hex = wanted.chars().filter(char::is_ascii_hexdigit).count();
        if hex < 6 || !wanted.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(Error::not_found(
                "codex_session_not_found",
                format!("{spec} is neither a rollout file nor a Codex thread id"),
            )
            .with_help("give the thread's id (as `codex resume` shows it) or the path of its rollout-*.jsonl file"));
        }
        let mut matching: Vec<(String, PathBuf)> =
            scan(&sessions).into_iter().filter(|(id, _)| id.starts_with(&wanted)).collect();
        if let Some(exact) = matching.iter().position(|(id, _)| *id == wanted) {
            matching = vec![matching.swap_remove(exact)];
        }
        match matching.len() {
            1 => matching.remove(0).1,
            0 => {
                return Err(Error::not_found(
                    "codex_session_not_found",
                    format!("no Codex thread {spec} under {}", sessions.display()),
                )
                .with_help("check CODEX_HOME, or give the rollout file's path"))
            }
            _ => {
                let ids: Vec<String> = matching.into_iter().map(|(id, _)| id).collect();
                return Err(Error::usage(
                    "ambiguous_codex_thread",
                    format!("{spec} matches several Codex threads: {}", ids.join(", ")),
                )
                .with_help("give more digits of the id"));
            }
        }
    };
    let thread_id = check(&path)?;
    let relative = relative_to_sessions(&path, &sessions);
    Ok(Rollout { path, thread_id, relative })
}

fn relative_to_sessions(path: &Path, sessions: &Path) -> String {
    let sessions = sessions.canonicalize().unwrap_or_else(|_| sessions.to_path_buf());
    match path.strip_prefix(&sessions) {
        Ok(relative) => relative.to_string_lossy().into_owned(),
        Err(_) => path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    }
}

/// The thread id a rollout file name ends with (`rollout-…-<id>.jsonl[.zst]`).
pub fn id_of_name(name: &str) -> Option<String> {
    let stem = name.strip_suffix(COMPRESSED).or_else(|| name.strip_suffix(PLAIN))?;
    if !name.starts_with("rollout-") {
        return None;
    }
    let id = stem.get(stem.len().checked_sub(36)?..)?;
    let dash = stem.get(..stem.len() - 36)?.ends_with('-');
    (dash && uuid::Uuid::parse_str(id).is_ok()).then(|| id.to_ascii_lowercase())
}

/// Every rollout under `sessions` as (thread id, path), one per id (a plain
/// file hides a compressed one). Symlinks are not followed.
pub fn scan(sessions: &Path) -> Vec<(String, PathBuf)> {
    let mut found: std::collections::BTreeMap<String, PathBuf> = Default::default();
    let mut dirs = vec![(sessions.to_path_buf(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            if kind.is_dir() && depth < 4 {
                dirs.push((entry.path(), depth + 1));
            } else if kind.is_file() {
                if let Some(id) = id_of_name(&name) {
                    let keep = found.get(&id).is_some_and(|p| p.to_string_lossy().ends_with(PLAIN));
                    if !keep {
                        found.insert(id, entry.path());
                    }
                }
            }
        }
    }
    found.into_iter().collect()
}

/// The rollout of thread `id` on this machine, if there is one.
pub fn locate(id: &str) -> Result<Option<PathBuf>> {
    let id = id.to_ascii_lowercase();
    Ok(scan(&sessions_dir()?).into_iter().find(|(found, _)| *found == id).map(|(_, path)| path))
}

pub fn is_compressed(path: &Path) -> bool {
    path.to_string_lossy().ends_with(COMPRESSED)
}

/// The rollout's lines, decompressed if need be.
pub fn open(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    let file = std::fs::File::open(path).map_err(|e| {
        Error::not_found("codex_session_not_found", format!("cannot open {}", path.display())).with_source(e)
    })?;
    if is_compressed(path) {
        let decoder = zstd::stream::read::Decoder::new(file).map_err(|e| {
            Error::failed("codex_rollout_unreadable", format!("cannot decompress {}", path.display())).with_source(e)
        })?;
        Ok(Box::new(BufReader::with_capacity(256 * 1024, decoder)))
    } else {
        Ok(Box::new(BufReader::with_capacity(256 * 1024, file)))
    }
}

/// The `session_meta` record that starts a rollout.
pub fn read_meta(reader: &mut dyn BufRead) -> Option<Meta> {
    let mut first = Vec::new();
    let (_, complete) = read_line_limited(reader, &mut first, LINE_LIMIT).ok()?;
    if !complete {
        return None;
    }
    let line: Value = serde_json::from_slice(&first).ok()?;
    if line["type"] != "session_meta" {
        return None;
    }
    let payload = &line["payload"];
    let text = |key: &str| payload[key].as_str().map(str::to_owned);
    Some(Meta { id: text("id")?, cwd: text("cwd"), timestamp: text("timestamp"), source: text("source") })
}

pub fn meta_of(path: &Path) -> Option<Meta> {
    read_meta(&mut *open(path).ok()?)
}

/// Check a file is a rollout; returns its thread id.
pub fn check(path: &Path) -> Result<String> {
    let mut reader = open(path)?;
    let meta = read_meta(&mut *reader).ok_or_else(|| {
        Error::usage("not_a_rollout", format!("{} does not start with a session_meta record", path.display()))
            .with_help("give a Codex CLI rollout file (rollout-*.jsonl under $CODEX_HOME/sessions)")
    })?;
    Ok(meta.id)
}

/// Segmented rollouts name older segment files by absolute path, which
/// would not exist on another machine.
pub const SEGMENT_MARKER: &[u8] = b"\"rollout_reference\"";

pub fn segmented(path: &Path) -> Error {
    Error::refused("codex_segmented", format!("{} is split into segments", path.display()))
        .with_help("handing off segmented Codex threads isn't supported by this version")
}

/// `sessions/YYYY/MM/DD/rollout-YYYY-MM-DDThh-mm-ss-<id>.jsonl` for a thread
/// created at `created` (RFC 3339, UTC), in this machine's local time, as
/// Codex names a new thread's file.
pub fn canonical_relative(id: &str, created: Option<&str>) -> String {
    let secs = created.and_then(parse_rfc3339).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
    });
    let (y, mo, d, h, mi, s) = local_time(secs);
    format!("{y:04}/{mo:02}/{d:02}/rollout-{y:04}-{mo:02}-{d:02}T{h:02}-{mi:02}-{s:02}-{id}{PLAIN}")
}

fn local_time(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: both pointers are valid for the call; localtime_r is thread-safe.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        let utc = crate::time::format_rfc3339(secs);
        let n = |r: std::ops::Range<usize>| utc.get(r).and_then(|s| s.parse().ok()).unwrap_or(0);
        return (n(0..4), n(5..7), n(8..10), n(11..13), n(14..16), n(17..19));
    }
    (
        i64::from(tm.tm_year) + 1900,
        i64::from(tm.tm_mon) + 1,
        i64::from(tm.tm_mday),
        i64::from(tm.tm_hour),
        i64::from(tm.tm_min),
        i64::from(tm.tm_sec),
    )
}

/// Seconds since the epoch of `YYYY-MM-DDThh:mm:ss[.fff]Z`.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let n = |r: std::ops::Range<usize>| -> Option<i64> { text.get(r)?.parse().ok() };
    let (y, mo, d, h, mi, s) = (n(0..4)?, n(5..7)?, n(8..10)?, n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// A thread id as Codex writes it: a hyphenated lowercase UUID.
pub fn is_uuid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok_and(|id| id.hyphenated().to_string() == text)
}

/// Is `relative`, as a note from another machine names a thread's rollout
/// below `sessions/`, a rollout file name of thread `id` (`rollout-…-<id>.jsonl`
/// or `.jsonl.zst`) under plain folder names only (no `..`, nothing absolute)?
pub fn is_relative_for(relative: &str, id: &str) -> bool {
    let path = Path::new(relative);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    is_uuid(id)
        && !relative.ends_with('/')
        && relative.split('/').all(|part| !part.is_empty())
        && path.components().all(|c| matches!(c, Component::Normal(_)))
        && id_of_name(name).as_deref() == Some(id)
}

/// May thread `id`'s rollout be written at `path`? Only as a plain
/// `rollout-…-<id>.jsonl` under `sessions`, with no `..`, and no symlink
/// leading out of `sessions` among the folders that exist (they are resolved).
pub fn is_rollout_path_for(sessions: &Path, path: &Path, id: &str) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if !name.ends_with(PLAIN) || name.ends_with(COMPRESSED) || id_of_name(&name).as_deref() != Some(id) {
        return false;
    }
    let Ok(relative) = path.strip_prefix(sessions) else { return false };
    if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
        return false;
    }
    match (path.parent().and_then(resolved), resolved(sessions)) {
        (Some(dir), Some(root)) => dir.starts_with(root),
        _ => false,
    }
}

/// `path` with its deepest existing ancestor's symlinks resolved.
fn resolved(path: &Path) -> Option<PathBuf> {
    let mut rest = Vec::new();
    let mut ancestor = path;
    loop {
        if let Ok(real) = ancestor.canonicalize() {
            return Some(rest.iter().rev().fold(real, |p, part| p.join(part)));
        }
        rest.push(ancestor.file_name()?.to_owned());
        ancestor = ancestor.parent()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0199a213-81c0-7800-8aa1-bbab2a035a53";

    #[test]
    fn a_note_names_only_rollouts_of_its_thread_below_sessions() {
        for good in [
            format!("2026/11/24/rollout-2026-11-24T08-00-00-{ID}.jsonl"),
            format!("2026/11/24/rollout-2026-11-24T08-00-00-{ID}.jsonl.zst"),
            format!("rollout-x-{ID}.jsonl"),
        ] {
            assert!(is_relative_for(&good, ID), "{good:?}");
        }
        for bad in [
            "../../.ssh/authorized_keys".to_owned(),
            format!("/etc/rollout-x-{ID}.jsonl"),
            format!("2026/11/../../rollout-x-{ID}.jsonl"),
            format!("./rollout-x-{ID}.jsonl"),
            format!("2026//24/rollout-x-{ID}.jsonl"),
            format!("2026/11/24/rollout-x-{ID}.json"),
            format!("2026/11/24/rollout-x-{ID}.jsonl/"),
            format!("2026/11/24/rollout-{ID}.jsonl/x"),
            format!("2026/11/24/other-x-{ID}.jsonl"),
            "2026/11/24/rollout-x-0199a213-81c0-7800-8aa1-bbab2a035a54.jsonl".to_owned(),
            String::new(),
        ] {
            assert!(!is_relative_for(&bad, ID), "{bad:?}");
        }
        let good = format!("rollout-x-{ID}.jsonl");
        assert!(!is_relative_for(&good, "../x"));
        assert!(!is_relative_for(&good.to_uppercase(), &ID.to_uppercase()));
    }

    #[test]
    fn ids_come_from_well_formed_names_only() {
        let id = "01a2353c-7efb-75a2-9024-5bf02581798b";
        assert_eq!(id_of_name(&format!("rollout-2026-12-02T05-31-26-{id}.jsonl")).as_deref(), Some(id));
        assert_eq!(id_of_name(&format!("rollout-2026-12-02T05-31-26-{id}.jsonl.zst")).as_deref(), Some(id));
        assert_eq!(id_of_name(&format!("rollout-x{id}.jsonl")), None);
        assert_eq!(id_of_name(&format!("other-{id}.jsonl")), None);
        assert_eq!(id_of_name(&format!("rollout-{id}.json")), None);
        assert_eq!(id_of_name("rollout-.jsonl"), None);
        assert_eq!(id_of_name("rollout-\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}.jsonl"), None);
    }

    #[test]
    fn timestamps_parse_back() {
        assert_eq!(parse_rfc3339("2026-11-24T07:30:00.123Z"), Some(1_795_505_400));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(parse_rfc3339("garbage"), None);
        let name = canonical_relative("x", Some("2026-11-24T07:30:00Z"));
        assert!(name.ends_with("-x.jsonl") && name.starts_with("2026/11/2"), "{name}");
    }
}
