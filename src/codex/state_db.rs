//! Codex's state database (`$CODEX_HOME/state_5.sqlite`), read only. Codex
//! rebuilds it from the rollout files, but a row it already has wins: a row
//! naming a missing file makes `codex resume` fail with "no rollout found
//! for thread id", and a row naming another file makes Codex go on there.
//! So a thread arriving here is written where the row says when that is a
//! rollout path under `sessions/`, and the plan says so when it is not.
//! This module never writes the database.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

pub const FILE: &str = "state_5.sqlite";

/// The rollout path Codex's state database records for thread `id`, if any.
/// Any failure to read (no database, another schema, locked) is "no row".
pub fn indexed_rollout(codex_home: &Path, id: &str) -> Option<PathBuf> {
    let db = codex_home.join(FILE);
    if !db.is_file() {
        return None;
    }
    let connection = open(&db)?;
    let _ = connection.busy_timeout(std::time::Duration::from_millis(500));
    connection
        .query_row("SELECT rollout_path FROM threads WHERE id = ?1", [id], |row| row.get::<_, String>(0))
        .optional()
        .ok()
        .flatten()
        .map(PathBuf::from)
}

fn open(db: &Path) -> Option<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    // Without a write-ahead log no Codex process has the database open, and
    // `immutable` reads it without creating the -wal and -shm files. With
    // one, a plain read-only connection is the only way to see its rows.
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    if wal.exists() {
        return Connection::open_with_flags(db, flags - OpenFlags::SQLITE_OPEN_URI).ok();
    }
    let uri = format!("file:{}?immutable=1", uri_path(db));
    Connection::open_with_flags(uri, flags).ok()
}

/// A path as the path part of an SQLite `file:` URI.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for byte in path.to_string_lossy().bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_row_without_leaving_files_behind() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("co dex?#");
        std::fs::create_dir_all(&home).unwrap();
        {
            let c = Connection::open(home.join(FILE)).unwrap();
            c.execute_batch(
                "PRAGMA journal_mode=WAL; CREATE TABLE threads (id TEXT PRIMARY KEY, rollout_path TEXT NOT NULL);
                 INSERT INTO threads VALUES ('a', '/x/rollout-a.jsonl');",
            )
            .unwrap();
        }
        let before: Vec<_> = std::fs::read_dir(&home).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(indexed_rollout(&home, "a"), Some(PathBuf::from("/x/rollout-a.jsonl")));
        assert_eq!(indexed_rollout(&home, "b"), None);
        let after: Vec<_> = std::fs::read_dir(&home).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(before, after, "no -wal or -shm file was made");
        std::fs::write(home.join(FILE), b"not a database").unwrap();
        assert_eq!(indexed_rollout(&home, "a"), None);
        assert_eq!(indexed_rollout(&dir.path().join("missing"), "a"), None);
    }
}
