//! Per-thread locks: one writer per thread at a time on each machine. They
//! are OS advisory locks (flock) held by the process, so a process that dies
//! — however it dies — holds nothing, and its lock file blocks nobody.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    _file: File,
}

/// How long a lock that is busy is retried before giving up: long enough
/// for a probe by another process to pass, short enough to answer quickly.
const BRIEF: Duration = Duration::from_millis(300);

impl Lock {
    /// Take the lock `name` in `dir`, or fail with a clear error naming the holder.
    pub fn acquire(dir: &Path, name: &str, what: &str) -> Result<Lock> {
        Self::acquire_waiting(dir, name, what, BRIEF)
    }

    /// Like [`Lock::acquire`], waiting up to `wait` for the holder to finish.
    pub fn acquire_waiting(dir: &Path, name: &str, what: &str, wait: Duration) -> Result<Lock> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.lock"));
        let deadline = Instant::now() + wait.max(BRIEF);
        loop {
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)?;
            if !try_flock(&file, libc::LOCK_EX)? {
                if Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                return Err(busy(what, &mut file));
            }
            // The holder before us may have removed the file after we opened
            // it: then this lock is on a file nobody else will find.
            let same = std::fs::metadata(&path)
                .is_ok_and(|m| file.metadata().is_ok_and(|mine| mine.ino() == m.ino() && mine.dev() == m.dev()));
            if !same {
                continue;
            }
            // Who holds it, for the message another process shows.
            let _ = file.set_len(0);
            let _ = writeln!(file, "{}", std::process::id());
            return Ok(Lock { path, _file: file });
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Removed while still held; closing the file then lets go.
        let _ = std::fs::remove_file(&self.path);
    }
}

fn busy(what: &str, file: &mut File) -> Error {
    let mut holder = String::new();
    let _ = file.rewind();
    let _ = file.read_to_string(&mut holder);
    let pid = holder.split_whitespace().next().and_then(|p| p.parse::<u32>().ok());
    let by = pid.map(|p| format!(": another git-codex-handoff (pid {p}) is working on it")).unwrap_or_default();
    Error::refused("locked", format!("{what} is busy{by}"))
        .with_help("wait for it to finish, then run the command again")
}

/// flock without blocking: `false` when another process holds it.
fn try_flock(file: &File, mode: libc::c_int) -> Result<bool> {
    // SAFETY: flock on a file descriptor this process owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), mode | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err.into())
    }
}

/// Does a live process hold any lock in `dir` other than `mine`? (A lock
/// file nobody holds is left by a process that died.)
pub fn others_hold_locks_in(dir: &Path, mine: &[&Lock]) -> Result<bool> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(false) };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "lock") || mine.iter().any(|l| l.path == path) {
            continue;
        }
        let Ok(file) = File::open(&path) else { continue };
        // A shared probe: it never blocks a holder, only tells whether one exists.
        if !try_flock(&file, libc::LOCK_SH)? {
            return Ok(true);
        }
    }
    Ok(false)
}
