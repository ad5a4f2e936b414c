//! Per-thread lock files: one writer per thread at a time on each machine.
//! A lock left by a process that no longer runs (a crash) is taken over, and
//! so is one left empty or unreadable by a crash before its pid was written.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

impl Lock {
    /// Take the lock `name` in `dir`, or fail with a clear error naming the holder.
    pub fn acquire(dir: &Path, name: &str, what: &str) -> Result<Lock> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.lock"));
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    writeln!(file, "{} {}", std::process::id(), crate::repo::machine_name(None))?;
                    return Ok(Lock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    let pid = holder.split_whitespace().next().and_then(|p| p.parse::<i32>().ok());
                    match pid {
                        Some(pid) if !process_alive(pid) => {
                            // The holder died without cleaning up: take over its lock.
                            let _ = std::fs::remove_file(&path);
                            continue;
                        }
                        Some(pid) => {
                            return Err(Error::refused(
                                "locked",
                                format!("{what} is busy: another git-codex-handoff (pid {pid}) is working on it"),
                            )
                            .with_help(format!(
                                "wait for it to finish and run the command again; if no such process exists, remove {}",
                                path.display()
                            )))
                        }
                        None if left_unwritten(&path) => {
                            // Its creator died before writing its pid: nobody holds it.
                            let _ = std::fs::remove_file(&path);
                            continue;
                        }
                        None => {
                            // Being written this instant: treat as busy.
                            return Err(Error::refused("locked", format!("{what} is busy")).with_help(format!(
                                "run the command again in a moment; if it stays busy, remove {}",
                                path.display()
                            )));
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::refused("locked", format!("{what} is busy")).with_help("run the command again in a moment"))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub fn process_alive(pid: i32) -> bool {
    crate::process::alive(pid)
}

/// How long a lock file may stay without its holder's pid: it is written
/// right after the file is created, so an older empty or unreadable file was
/// left by a process that died in between.
const UNWRITTEN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

fn left_unwritten(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|at| at.elapsed().is_ok_and(|age| age > UNWRITTEN_GRACE))
}
