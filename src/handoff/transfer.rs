//! git push and fetch to and from a host, over the handoff's connection.

use crate::error::{Error, Result};
use crate::git::Git;
use crate::remote::transport::Connection;
use crate::repo::Repo;
use crate::thread::store;

pub(super) fn push(repo: &Repo, conn: &Connection, remote_repo: &str, refspecs: &[String]) -> Result<()> {
    let mut cmd = Git::new(repo.common_dir(), None).command([
        "push",
        "--recurse-submodules=no",
        "--atomic",
        "--porcelain",
        "--no-verify",
        "--quiet",
    ]);
    cmd.arg(conn.git_url(remote_repo)).args(refspecs);
    for (k, v) in conn.git_env() {
        cmd.env(k, v);
    }
    crate::git::run_command(&mut cmd, None)
        .map(|_| ())
        .map_err(|e| Error::failed("push_failed", format!("could not push to {}: {}", conn.host.name, e.message)))
}

/// Fetch the snapshot the host departed with (its outgoing ref and staged notes).
pub(super) fn fetch(repo: &Repo, conn: &Connection, remote_repo: &str, uuid: &str) -> Result<()> {
    fetch_refs(repo, conn, remote_repo, uuid, &store::outgoing_ref(uuid), &store::staged_notes_ref(uuid))
}

/// Fetch the host's record of the thread: its ref and the notes.
pub(super) fn fetch_record(repo: &Repo, conn: &Connection, remote_repo: &str, uuid: &str) -> Result<()> {
    fetch_refs(repo, conn, remote_repo, uuid, &store::thread_ref(uuid), store::NOTES_REF)
}

fn fetch_refs(
    repo: &Repo,
    conn: &Connection,
    remote_repo: &str,
    uuid: &str,
    snapshot: &str,
    notes: &str,
) -> Result<()> {
    let mut cmd = Git::new(repo.common_dir(), None).command([
        "fetch",
        "--recurse-submodules=no",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
    ]);
    cmd.arg(conn.git_url(remote_repo));
    cmd.arg(format!("+{snapshot}:{}", store::incoming_ref(uuid, "snapshot")));
    cmd.arg(format!("+{notes}:{}", store::incoming_ref(uuid, "notes")));
    for (k, v) in conn.git_env() {
        cmd.env(k, v);
    }
    crate::git::run_command(&mut cmd, None)
        .map(|_| ())
        .map_err(|e| Error::failed("fetch_failed", format!("could not fetch from {}: {}", conn.host.name, e.message)))
}
