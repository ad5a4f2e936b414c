//! git push and fetch to and from a host, over the handoff's connection.

use std::io::Read;

use gix::ObjectId;
use serde::Deserialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::git::Git;
use crate::intake::{self, Quarantine, Taker};
use crate::remote::protocol::{PROTOCOL_PACK_IN, PROTOCOL_TRANSCRIPTS};
use crate::remote::transport::Connection;
use crate::repo::Repo;
use crate::thread::store;

fn push(repo: &Repo, conn: &Connection, remote_repo: &str, refspecs: &[String]) -> Result<()> {
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
fn fetch(repo: &Repo, conn: &Connection, remote_repo: &str, uuid: &str) -> Result<()> {
    fetch_refs(repo, conn, remote_repo, uuid, &store::outgoing_ref(uuid), &store::staged_notes_ref(uuid))
}

/// Fetch the host's record of the thread: its ref and the notes.
pub(super) fn fetch_record(repo: &Repo, conn: &Connection, remote_repo: &str, uuid: &str) -> Result<()> {
    fetch_refs(repo, conn, remote_repo, uuid, &store::thread_ref(uuid), store::NOTES_REF)
}

/// `git fetch` from the repository at `remote_repo` on the host over
/// `conn`, writing only what the refspecs the caller adds name.
pub(super) fn fetch_command(repo: &Repo, conn: &Connection, remote_repo: &str) -> std::process::Command {
    let mut cmd = Git::new(repo.common_dir(), None).command([
        "fetch",
        "--recurse-submodules=no",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
    ]);
    cmd.arg(conn.git_url(remote_repo));
    capped_env(repo, conn, &mut cmd);
    cmd
}

/// The connection's environment for a `git fetch` into `repo`, its input
/// under `repo`'s ceiling (git's fetch has none of its own).
pub(super) fn capped_env(repo: &Repo, conn: &Connection, cmd: &mut std::process::Command) {
    let ceiling = intake::Ceiling::of(repo).bytes;
    let env = if ceiling == u64::MAX { conn.git_env() } else { conn.git_env_capped(ceiling) };
    for (k, v) in env {
        cmd.env(k, v);
    }
}

/// Run `git fetch` (`cmd`) into the repository whose git dir is `git_dir`:
/// one that fails (a ceiling passed, a check failed) leaves no temporary
/// pack behind, as git's own fetch would.
pub(super) fn run_fetch(git_dir: &std::path::Path, cmd: &mut std::process::Command) -> Result<()> {
    let pack_dir = git_dir.join("objects").join("pack");
    let temporary = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&pack_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("tmp_"))
            .map(|e| e.path())
            .collect()
    };
    let before = temporary();
    crate::git::run_command(cmd, None).map(|_| ()).inspect_err(|_| {
        for left in temporary().into_iter().filter(|p| !before.contains(p)) {
            let _ = std::fs::remove_file(left);
        }
    })
}

fn fetch_refs(
    repo: &Repo,
    conn: &Connection,
    remote_repo: &str,
    uuid: &str,
    snapshot: &str,
    notes: &str,
) -> Result<()> {
    let mut cmd = fetch_command(repo, conn, remote_repo);
    cmd.arg(format!("+{snapshot}:{}", store::incoming_ref(uuid, "snapshot")));
    cmd.arg(format!("+{notes}:{}", store::incoming_ref(uuid, "notes")));
    run_fetch(&repo.common_dir(), &mut cmd)
        .map_err(|e| Error::failed("fetch_failed", format!("could not fetch from {}: {}", conn.host.name, e.message)))
}

/// What `pack_out` announces: the snapshot and notes the pack that follows brings.
#[derive(Deserialize)]
struct PackOffer {
    snapshot: String,
    notes: String,
    size: u64,
}

/// Bring the snapshot the host departed with (and its staged notes) here,
/// as the fetch does, under the thread's incoming refs. From a helper that
/// can, the pack comes over the connection, made without what this
/// computer has (`haves`) nor the transcript that came beside it
/// ([`super::carry::transcript_from_host`]): git's fetch cannot leave one
/// blob out, and passing 100 MiB through it costs seconds.
pub(super) fn fetch_departed(
    repo: &Repo,
    conn: &mut Connection,
    remote_repo: &str,
    uuid: &str,
    haves: &[ObjectId],
) -> Result<()> {
    if conn.hello.protocol < PROTOCOL_TRANSCRIPTS {
        return fetch(repo, conn, remote_repo, uuid);
    }
    let haves: Vec<String> = haves.iter().map(ObjectId::to_string).collect();
    let conn_name = conn.host.name.clone();
    let mut arrived = None;
    let offer: PackOffer = conn.call_receiving(
        "pack_out",
        json!({ "repo": remote_repo, "uuid": uuid, "haves": haves }),
        |offer: &PackOffer| offer.size,
        |offer, bytes| {
            let what = format!("the snapshot from {}", conn_name);
            arrived = Some(intake::take_pack(repo, bytes, offer.size, Taker::Fetch, &what)?);
            Ok(())
        },
    )?;
    let arrived = arrived.ok_or_else(|| Error::failed("fetch_failed", "no pack came"))?;
    let refs = [("snapshot", store::parse_hex(&offer.snapshot)?), ("notes", store::parse_hex(&offer.notes)?)];
    set_incoming_when_whole(repo, uuid, arrived, &refs).map_err(|e| {
        Error::failed("fetch_failed", format!("what came from {} is incomplete: {}", conn.host.name, e.message))
    })
}

/// Set the thread's incoming refs `refs` (names under
/// `refs/codex-handoff/incoming/<uuid>/`) to commits that arrived in
/// `arrived`, once everything they reach is here, as git's fetch and
/// receive-pack check it; only then do the objects leave the quarantine.
fn set_incoming_when_whole(repo: &Repo, uuid: &str, arrived: Quarantine, refs: &[(&str, ObjectId)]) -> Result<()> {
    let mut check = vec!["rev-list".to_owned(), "--objects".into(), "--quiet".into()];
    check.extend(refs.iter().map(|(_, id)| id.to_string()));
    check.extend(["--not".into(), "--all".into()]);
    let check: Vec<&str> = check.iter().map(String::as_str).collect();
    crate::git::run_command(&mut arrived.git(repo, &check), None)?;
    arrived.migrate()?;
    for (what, id) in refs {
        let name = store::incoming_ref(uuid, what);
        store::set_ref(repo, &name, None, None, "codex-handoff: clean up")?;
        store::set_ref(repo, &name, None, Some(*id), "codex-handoff: arrived")?;
    }
    Ok(())
}

/// What `pack-objects --revs` (and `rev-list`) are given: what `tips`
/// reach, without what the other side has (`haves`: the commits among them
/// known here) and without `left_out` (blobs that travel beside the pack).
pub(super) fn revs(repo: &Repo, tips: &[ObjectId], haves: &[String], left_out: &[ObjectId]) -> Result<String> {
    let mut revs: String = tips.iter().map(|id| format!("{id}\n")).collect();
    let snapshots = thread_snapshots(repo)?;
    for have in haves.iter().filter_map(|h| store::parse_hex(h).ok()) {
        // Only commits this clone has: an unknown one would stop pack-objects.
        let Ok(commit) = repo.gix.find_commit(have) else { continue };
        revs.push_str(&format!("^{have}\n"));
        // pack-objects leaves out the trees of only those commits the tips
        // descend from; a thread's snapshot is no ancestor of another's, so
        // its trees (and their big files) are named to be left out too.
        if snapshots.contains(&have) {
            let parents: Vec<ObjectId> = commit.parent_ids().map(|p| p.detach()).collect();
            let trees = std::iter::once(commit.tree_id().ok().map(|t| t.detach()))
                .chain(parents.into_iter().map(|p| Some(repo.gix.find_commit(p).ok()?.tree_id().ok()?.detach())));
            for tree in trees.flatten() {
                revs.push_str(&format!("^{tree}\n"));
            }
        }
    }
    for blob in left_out {
        revs.push_str(&format!("^{blob}\n"));
    }
    Ok(revs)
}

/// Add to `revs` the big blobs that go beside the pack as entries.
fn leave_out(revs: &mut String, big: &[crate::pack_reuse::Entry]) {
    for entry in big {
        revs.push_str(&format!("^{}\n", entry.id));
    }
}

/// A pack (in a temporary file, and its size) of what `revs` say.
fn make_pack(repo: &Repo, revs: &str) -> Result<(tempfile::NamedTempFile, u64)> {
    let mut file = tempfile::NamedTempFile::new_in(repo.private_dir()?)?;
    // Big blobs are copied as they sit in their packs, never searched for deltas nor held in memory.
    let threshold = format!("core.bigFileThreshold={}", crate::blob_pack::PACK_FROM);
    let mut cmd = Git::new(repo.common_dir(), None).command([
        "-c",
        &threshold,
        "pack-objects",
        "--revs",
        "--stdout",
        "--thin",
        "--delta-base-offset",
        "-q",
    ]);
    crate::git::run_command_into(&mut cmd, revs.as_bytes(), file.reopen()?)?;
    let size = file.as_file_mut().metadata()?.len();
    Ok((file, size))
}

/// The commits this clone's threads' refs name.
fn thread_snapshots(repo: &Repo) -> Result<std::collections::HashSet<ObjectId>> {
    let references = repo.gix.references()?;
    let Ok(iter) = references.prefixed(store::THREAD_REF_PREFIX) else { return Ok(Default::default()) };
    Ok(iter.flatten().filter_map(|mut r| r.peel_to_id().ok().map(|id| id.detach())).collect())
}

/// The helper's side of `pack_out`: a pack of the snapshot thread `uuid`
/// departed with and its staged notes, without what the client has
/// (`haves`, those known here) and without a transcript sent beside it.
/// Returns the answer and the pack to send after it: its big blobs copied
/// as the entries they are here, then what pack-objects made of the rest.
pub fn offer_pack(repo: &Repo, uuid: &str, haves: &[String]) -> Result<(serde_json::Value, OutPack)> {
    let Some(snapshot) = store::ref_target(repo, &store::outgoing_ref(uuid))? else {
        return Err(Error::failed("not_departed", format!("thread {uuid} has not departed from here")));
    };
    let staged = store::staged_notes_ref(uuid);
    let notes = store::ref_target(repo, &staged)?
        .ok_or_else(|| Error::failed("not_departed", format!("thread {uuid} has no staged note here")))?;
    let state = store::read_note_in(repo, snapshot, &staged)?;
    let transcript = crate::thread::transcript::travelling(repo, &state)?.map(|(blob, _)| blob);
    let left_out: Vec<ObjectId> = transcript.into_iter().collect();
    let mut revs = revs(repo, &[snapshot, notes], haves, &left_out)?;
    let big = super::big_send::plan(repo, &revs, None)?;
    leave_out(&mut revs, &big);
    let (file, rest) = make_pack(repo, &revs)?;
    let size = crate::pack_reuse::merged_size(&big, rest);
    let offer = json!({ "snapshot": snapshot.to_string(), "notes": notes.to_string(), "size": size });
    Ok((offer, OutPack { big, rest: file, rest_size: rest }))
}

/// The pack a helper sends for `pack_out`.
pub struct OutPack {
    big: Vec<crate::pack_reuse::Entry>,
    rest: tempfile::NamedTempFile,
    rest_size: u64,
}

impl OutPack {
    pub fn write_to(&self, out: &mut dyn std::io::Write) -> Result<()> {
        crate::pack_reuse::write_merged(&self.big, &mut self.rest.reopen()?, self.rest_size, out)
    }
}

/// The thread's incoming refs a client may set with `pack_in`.
const PUSHED: &[&str] = &["snapshot", "notes", "head", "lfs"];

/// At most this many commits the host has are named to the client.
const MAX_HAVES: usize = 4096;

/// What goes to a host beside the snapshot's pack: a transcript blob sent
/// before it, and the big files' blobs that may go as a pack of their own.
pub(super) struct Beside<'a> {
    pub transcript: Option<ObjectId>,
    pub big: &'a [ObjectId],
}

/// Send what a handoff brings the host, `refs` (incoming ref names and
/// commits). With a helper of protocol 4, as one pack beside a `pack_in`
/// request on the helper's own session, made without the commits the host
/// said it has (`haves`, those known here) and without the transcript blob
/// that went beside it (`beside`), the big blobs among `beside.big` that the
/// host lacks going before it as a pack of their own; else by git push,
/// which opens a second session and runs receive-pack there.
pub(super) fn send_to_host(
    repo: &Repo,
    conn: &mut Connection,
    remote_repo: &str,
    uuid: &str,
    refs: &[(&str, ObjectId)],
    haves: &[String],
    beside: Beside,
) -> Result<()> {
    if conn.hello.protocol < PROTOCOL_PACK_IN {
        let refspecs: Vec<String> =
            refs.iter().map(|(name, id)| format!("+{id}:{}", store::incoming_ref(uuid, name))).collect();
        return push(repo, conn, remote_repo, &refspecs);
    }
    let tips: Vec<ObjectId> = refs.iter().map(|(_, id)| *id).collect();
    let left_out: Vec<ObjectId> = beside.transcript.into_iter().collect();
    // Big files first, as the pack entries they are here; the pack then leaves them out.
    let mut revs = revs(repo, &tips, haves, &left_out)?;
    let big = super::big_send::plan(repo, &revs, Some(beside.big))?;
    leave_out(&mut revs, &big);
    let (file, size) = make_pack(repo, &revs)?;
    let big_size = if big.is_empty() { 0 } else { crate::pack_reuse::pack_size(&big) };
    conn.one_send(big_size + size);
    super::big_send::send(conn, remote_repo, uuid, &big)?;
    let names: serde_json::Map<String, serde_json::Value> =
        refs.iter().map(|(name, id)| ((*name).to_owned(), json!(id.to_string()))).collect();
    let params = json!({ "repo": remote_repo, "uuid": uuid, "refs": names, "size": size });
    let _: serde_json::Value = conn.call_sending("pack_in", params, &mut file.reopen()?, size).map_err(|e| {
        if e.code == "push_failed" {
            e
        } else if e.kind == crate::error::Kind::Refused {
            // The host refused it by a rule of its own: that rule, its exit status and help stand.
            Error { message: format!("could not send the snapshot to {}: {}", conn.host.name, e.message), ..e }
        } else {
            Error::failed("push_failed", format!("could not send the snapshot to {}: {}", conn.host.name, e.message))
        }
    })?;
    Ok(())
}

/// The helper's part of a plan: the commits this repository has that a
/// pack sent here can leave out, the thread's own first (its ref, the
/// notes), then HEAD, other threads', remote-tracking branches, branches and tags.
pub(super) fn haves(repo: &Repo, uuid: &str) -> Result<Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut haves = Vec::new();
    let mut add = |id: ObjectId, haves: &mut Vec<String>| {
        if haves.len() < MAX_HAVES && seen.insert(id) {
            haves.push(id.to_string());
        }
    };
    for name in [store::thread_ref(uuid).as_str(), store::NOTES_REF] {
        if let Ok(Some(id)) = store::ref_target(repo, name) {
            add(id, &mut haves);
        }
    }
    if let Ok(id) = repo.gix.head_id() {
        add(id.detach(), &mut haves);
    }
    let references = repo.gix.references()?;
    // Other threads' snapshots: a big file two threads share crosses once.
    for prefix in [store::THREAD_REF_PREFIX, "refs/remotes", "refs/heads", "refs/tags"] {
        let Ok(iter) = references.prefixed(prefix) else { continue };
        for mut reference in iter.flatten() {
            // Tags name the commits they point at.
            if let Ok(id) = reference.peel_to_id() {
                if repo.gix.find_commit(id).is_ok() {
                    add(id.detach(), &mut haves);
                }
            }
        }
    }
    Ok(haves)
}

/// The helper's side of `pack_in`: a pack of `size` bytes from `bytes`,
/// then the thread's incoming refs `refs` set to commits it completed.
/// Only the names a handoff sends are accepted, every commit must be whole
/// here after the pack (as receive-pack checks), and objects are checked
/// as `receive.fsckObjects` says.
pub fn take_pushed(
    repo: &Repo,
    uuid: &str,
    refs: &std::collections::BTreeMap<String, String>,
    bytes: &mut dyn Read,
    size: u64,
) -> Result<serde_json::Value> {
    let mut targets = Vec::new();
    for (name, id) in refs {
        let Some(name) = PUSHED.iter().find(|pushed| **pushed == name.as_str()) else {
            return Err(Error::usage("bad_request", format!("pack_in cannot set {name:?}")));
        };
        targets.push((*name, store::parse_hex(id)?));
    }
    let arrived = intake::take_pack(repo, bytes, size, Taker::Receive, &format!("the pack for thread {uuid}"))?;
    set_incoming_when_whole(repo, uuid, arrived, &targets).map_err(|e| {
        Error::failed("push_failed", format!("what came for thread {uuid} is incomplete: {}", e.message))
    })?;
    Ok(json!({}))
}
