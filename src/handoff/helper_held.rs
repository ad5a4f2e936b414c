//! What a helper's session holds: the thread locks `begin` took, each for
//! one thread in one repository, and the ceiling on the raw bytes that
//! follow a request. A request that changes a thread's state here names its
//! repository and thread; it goes on only when this session holds that
//! thread's lock in that repository (another session may hold the same
//! thread in another clone).

use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::intake::Ceiling;
use crate::repo::Repo;
use crate::thread::lock::Lock;

/// Thread locks, each with the repository (its common git dir) it is for.
#[derive(Default)]
pub(super) struct Held {
    locks: Vec<(PathBuf, String, Lock)>,
}

impl Held {
    /// Take the lock of thread `uuid` in `repo`, unless this session holds it.
    /// `io_timeout`: the client's, which a helper whose client died may be
    /// waiting out before it ends.
    pub(super) fn take(&mut self, repo: &Repo, uuid: &str, io_timeout: Option<Duration>) -> Result<&Lock> {
        let common = repo.common_dir();
        let index = match self.locks.iter().position(|(r, u, _)| *r == common && u == uuid) {
            Some(i) => i,
            None => {
                // A helper whose client died may still be finishing its last step, or
                // waiting out the client's timeout on a dead link before it ends.
                let wait = io_timeout.map_or(20, |t| t.as_secs() + 5).max(20);
                let lock = Lock::acquire_waiting(
                    &repo.private_dir()?.join("locks"),
                    uuid,
                    &format!("thread {uuid}"),
                    Duration::from_secs(wait),
                )?;
                self.locks.push((common, uuid.to_owned(), lock));
                self.locks.len() - 1
            }
        };
        self.locks.get(index).map(|(_, _, lock)| lock).ok_or_else(|| Error::failed("lock", "the lock went missing"))
    }

    /// This session holds the lock of thread `uuid` in `repo` (its `begin` came first).
    pub(super) fn check(&self, repo: &Repo, uuid: &str) -> Result<()> {
        let common = repo.common_dir();
        if self.locks.iter().any(|(r, u, _)| *r == common && u == uuid) {
            return Ok(());
        }
        let elsewhere = self.locks.iter().any(|(_, u, _)| u == uuid);
        let message = if elsewhere {
            format!("this session holds thread {uuid} in another repository, not in {}", common.display())
        } else {
            format!("this session holds no lock on thread {uuid} in {}", common.display())
        };
        Err(Error::usage("not_begun", message).with_help("begin must come first, for the same repository and thread"))
    }
}

/// Whether the session can go on after a request's bytes.
pub(super) enum After {
    Next,
    /// The bytes were not read (too many announced): nothing else can follow in order.
    End,
}

/// The `size` bytes that follow a request, given to `take` once `ceiling`
/// allows them; whatever a refused or failed request left unread is
/// skipped, so the next request follows. More than the ceiling is neither
/// written nor read: the refusal ends the session.
pub(super) fn beside(
    input: &mut dyn BufRead,
    size: u64,
    ceiling: Ceiling,
    what: &str,
    io_timeout: Option<Duration>,
    take: impl FnOnce(&mut dyn Read) -> Result<Value>,
) -> (Result<Value>, After) {
    if let Err(refused) = ceiling.check(what, size) {
        return (Err(refused), After::End);
    }
    // Bytes that stop coming for the client's `ioTimeout` end the session.
    super::pulse::watched(io_timeout, "receiving", input.take(size), |bytes| {
        let taken = take(bytes);
        match std::io::copy(bytes, &mut std::io::sink()) {
            Ok(_) if bytes.inner.limit() == 0 => (taken, After::Next),
            _ => (taken, After::End),
        }
    })
}

/// The ceiling for bytes sent to the repository at `path` (the default
/// when it is not a saved project's: the request is refused anyway).
pub(super) fn ceiling_for(path: &str) -> Ceiling {
    super::projects::project_repo(path)
        .map(|repo| Ceiling::of(&repo))
        .unwrap_or(Ceiling { bytes: crate::intake::DEFAULT_MAX_INPUT, configured: false })
}
