//! What travels beside a snapshot's own commits, over the handoff's
//! connection: each submodule's snapshot, pushed or fetched between module
//! repositories (`<git dir>/modules/<name>`) by git, and the Git LFS
//! objects the destination lacks, as the blobs of one carrier commit that
//! goes with the snapshot in the same push or fetch. git's pack protocol
//! compresses and streams them, and sends only objects the other side
//! lacks; no LFS server is involved.

use gix::ObjectId;
use serde::Deserialize;
use serde_json::json;

use crate::config::Host;
use crate::error::{Error, Result};
use crate::git::Git;
use crate::remote::protocol::PROTOCOL_TRANSCRIPTS;
use crate::remote::transport::Connection;
use crate::repo::Repo;
use crate::thread::carried;
use crate::thread::store::{self, Thread};
use crate::thread::transcript;
use crate::worktree::lfs;
use crate::worktree::record;
use crate::worktree::state::{self, Pointer};
use crate::worktree::submodules::{self, Carry, ModuleSource};

/// LFS oids per request: keeps each protocol line far below its limit.
const BATCH: usize = 4000;

/// The submodule snapshots and LFS objects of a snapshot taken here in the worktree `worktree`.
pub(super) struct Carried {
    pub modules: Vec<Carry>,
    pub lfs: Vec<Pointer>,
}

pub(super) fn of_departure(repo: &Repo, worktree: &Repo, departing: &Thread) -> Result<Carried> {
    let expected = departing.expected(repo, &ModuleSource::Worktree(worktree.workdir()?))?;
    Ok(Carried { modules: submodules::carries(&expected.state.submodules), lfs: expected.state.lfs_objects })
}

/// Push each submodule snapshot into the host's module repository, under the thread's incoming ref.
pub(super) fn push_submodules(conn: &Connection, project_repo: &str, uuid: &str, modules: &[Carry]) -> Result<()> {
    for carry in modules {
        let mut cmd = Git::new(&carry.git_dir, None).command([
            "push",
            "--recurse-submodules=no",
            "--porcelain",
            "--no-verify",
            "--quiet",
        ]);
        cmd.arg(conn.git_url(&format!("{project_repo}/{}", carry.module)));
        cmd.arg(format!("+{}:{}", carry.snapshot, store::incoming_ref(uuid, "snapshot")));
        for (k, v) in conn.git_env() {
            cmd.env(k, v);
        }
        crate::git::run_command(&mut cmd, None).map_err(|e| {
            Error::failed(
                "push_failed",
                format!("could not push submodule {} to {}: {}", carry.path, conn.host.name, e.message),
            )
        })?;
    }
    Ok(())
}

/// The carrier of the LFS objects the host lacks (asked in batches), if any.
pub(super) fn lfs_carrier_for_host(
    repo: &Repo,
    conn: &mut Connection,
    project_repo: &str,
    uuid: &str,
    objects: &[Pointer],
) -> Result<Option<ObjectId>> {
    let missing = lfs_missing_on(conn, project_repo, uuid, objects)?;
    lfs::pack(repo, &missing)
}

/// Which of `objects` the host lacks (asked in batches).
fn lfs_missing_on(conn: &mut Connection, project_repo: &str, uuid: &str, objects: &[Pointer]) -> Result<Vec<Pointer>> {
    #[derive(Deserialize)]
    struct Missing {
        missing: Vec<String>,
    }
    let mut missing = Vec::new();
    for batch in objects.chunks(BATCH) {
        let oids: Vec<&str> = batch.iter().map(|p| p.oid.as_str()).collect();
        let answer: Missing = conn.call("lfs_missing", json!({ "repo": project_repo, "uuid": uuid, "oids": oids }))?;
        missing.extend(batch.iter().filter(|p| answer.missing.contains(&p.oid)).cloned());
    }
    Ok(missing)
}

/// Fetch each submodule snapshot the host exposed into this clone's module repository.
pub(super) fn fetch_submodules(
    repo: &Repo,
    conn: &Connection,
    project_repo: &str,
    uuid: &str,
    modules: &[String],
) -> Result<()> {
    let common = repo.common_dir();
    for module in modules {
        submodules::check_module(module)?;
        let local = common.join(module);
        let mut cmd = Git::new(&local, None).command([
            "fetch",
            "--recurse-submodules=no",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
        ]);
        cmd.arg(conn.git_url(&format!("{project_repo}/{module}")));
        cmd.arg(format!("+{}:{}", store::outgoing_ref(uuid), store::incoming_ref(uuid, "snapshot")));
        super::transfer::capped_env(repo, conn, &mut cmd);
        super::transfer::run_fetch(&local, &mut cmd).map_err(|e| {
            Error::failed("fetch_failed", format!("could not fetch {module} from {}: {}", conn.host.name, e.message))
        })?;
    }
    Ok(())
}

/// Ask the host for the LFS objects of `snapshot` (fetched, its note in
/// `notes_ref`) that this clone lacks, and fetch their carrier.
pub(super) fn fetch_lfs(
    repo: &Repo,
    conn: &mut Connection,
    project_repo: &str,
    uuid: &str,
    snapshot: ObjectId,
    notes_ref: &str,
) -> Result<usize> {
    let state = store::read_note_in(repo, snapshot, notes_ref)?;
    let data = repo.gix.find_commit(store::parse_hex(&state.data_commit)?)?.tree_id()?.detach();
    let missing: Vec<String> = record::read(repo, data)?
        .lfs_objects
        .into_iter()
        .filter(|p| !lfs::has_object(repo, p))
        .map(|p| p.oid)
        .collect();
    fetch_lfs_carrier(repo, conn, project_repo, uuid, &missing)?;
    Ok(missing.len())
}

/// Ask the host to expose the LFS objects `missing` of its departing
/// snapshot and fetch their carrier to the thread's incoming `lfs` ref.
fn fetch_lfs_carrier(
    repo: &Repo,
    conn: &mut Connection,
    project_repo: &str,
    uuid: &str,
    missing: &[String],
) -> Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    let batches: Vec<&[String]> = missing.chunks(BATCH).collect();
    for (i, batch) in batches.iter().enumerate() {
        let _: serde_json::Value = conn.call(
            "lfs_expose",
            json!({ "repo": project_repo, "uuid": uuid, "oids": batch, "done": i + 1 == batches.len() }),
        )?;
    }
    let mut cmd = super::transfer::fetch_command(repo, conn, project_repo);
    cmd.arg(format!("+{}:{}", carried::outgoing_lfs_ref(uuid), carried::lfs_ref(uuid)));
    super::transfer::run_fetch(&repo.common_dir(), &mut cmd).map_err(|e| {
        Error::failed("fetch_failed", format!("could not fetch the LFS objects from {}: {}", conn.host.name, e.message))
    })?;
    Ok(())
}

/// Host to host, through this computer: the LFS objects of `snapshot`
/// (here, its note in `notes_ref`) that the destination lacks, exposed by
/// the host it leaves and fetched here as their carrier (the thread's
/// incoming `lfs` ref), never into this clone's own LFS storage. Returns
/// the carrier, for the destination.
pub(super) fn relay_lfs(
    repo: &Repo,
    from: (&mut Connection, &str),
    to: (&mut Connection, &str),
    uuid: &str,
    snapshot: ObjectId,
    notes_ref: &str,
) -> Result<Option<ObjectId>> {
    let state = store::read_note_in(repo, snapshot, notes_ref)?;
    let data = repo.gix.find_commit(store::parse_hex(&state.data_commit)?)?.tree_id()?.detach();
    let objects = record::read(repo, data)?.lfs_objects;
    if objects.is_empty() {
        return Ok(None);
    }
    let missing: Vec<String> = lfs_missing_on(to.0, to.1, uuid, &objects)?.into_iter().map(|p| p.oid).collect();
    if missing.is_empty() {
        return Ok(None);
    }
    fetch_lfs_carrier(repo, from.0, from.1, uuid, &missing)?;
    store::ref_target(repo, &carried::lfs_ref(uuid))
}

/// Refuse, before anything changes, a thread whose submodules' snapshots
/// would have to pass through module repositories this clone lacks.
pub(super) fn check_relay_modules(repo: &Repo, needs: &carried::Needs, from: &Host, to: &Host) -> Result<()> {
    let common = repo.common_dir();
    if let Some(module) = needs.modules.iter().find(|m| Repo::open(&common.join(&m.module)).is_err()) {
        return Err(Error::refused(
            "relay_needs_module",
            format!(
                "the thread's submodule {} passes through this computer on its way from {} to {}, but this clone has \
                 no module repository for it",
                module.path, from.name, to.name
            ),
        )
        .with_help(format!(
            "run `git submodule update --init {}` here first (it changes no file of the thread), then hand it off again",
            module.path
        )));
    }
    Ok(())
}

/// Host to host, through this computer: each submodule snapshot the host it
/// leaves exposed (`modules`, module repositories relative to a clone's
/// common git dir) is fetched into this clone's module repository, under
/// the thread's incoming ref, and pushed on to the destination's.
pub(super) fn relay_submodules(
    repo: &Repo,
    from: (&Connection, &str),
    to: (&Connection, &str),
    uuid: &str,
    modules: &[String],
) -> Result<()> {
    if modules.is_empty() {
        return Ok(());
    }
    fetch_submodules(repo, from.0, from.1, uuid, modules)?;
    let mut carries = Vec::new();
    for module in modules {
        let git_dir = repo.common_dir().join(module);
        let snapshot = store::ref_target(&Repo::open(&git_dir)?, &store::incoming_ref(uuid, "snapshot"))?
            .ok_or_else(|| Error::failed("fetch_failed", format!("{module} brought no snapshot")))?;
        carries.push(Carry { path: module.clone(), module: module.clone(), git_dir, snapshot });
    }
    push_submodules(to.0, to.1, uuid, &carries)
}

/// On the departing side: put each submodule snapshot of `departing` into
/// this clone's module repository under `refname`, where the other machine
/// fetches it. Returns the module repositories, parents first.
pub fn expose_submodules(repo: &Repo, worktree: &Repo, departing: &Thread, refname: &str) -> Result<Vec<String>> {
    let carried = of_departure(repo, worktree, departing)?;
    let common = repo.common_dir();
    for carry in &carried.modules {
        let target = common.join(&carry.module);
        let module = Repo::open(&target).map_err(|_| {
            Error::failed(
                "submodule_missing",
                format!("submodule {} has no module repository at {}", carry.path, target.display()),
            )
            .with_help(format!("initialise it with `git submodule update --init {}` in the saved project", carry.path))
        })?;
        if crate::repo::same_path(&carry.git_dir, &target) {
            let old = store::ref_target(&module, refname)?;
            store::set_ref(&module, refname, old, Some(carry.snapshot), "codex-handoff: outgoing")?;
        } else {
            let mut cmd =
                Git::new(&carry.git_dir, None).command(["push", "--recurse-submodules=no", "--quiet", "--no-verify"]);
            cmd.arg(&target).arg(format!("+{}:{refname}", carry.snapshot));
            crate::git::run_command(&mut cmd, None)?;
        }
    }
    Ok(carried.modules.into_iter().map(|c| c.module).collect())
}

/// On the departing side: a carrier of the asked LFS objects of the
/// thread's outgoing snapshot, under the outgoing LFS ref. Only objects
/// that snapshot lists and this clone has are carried.
pub fn expose_lfs(repo: &Repo, uuid: &str, asked: &[String]) -> Result<usize> {
    let snapshot = store::ref_target(repo, &store::outgoing_ref(uuid))?
        .ok_or_else(|| Error::usage("not_departed", "nothing is departing for that thread"))?;
    let state = store::read_note_in(repo, snapshot, &store::staged_notes_ref(uuid))
        .or_else(|_| store::read_note(repo, snapshot))?;
    let data = repo.gix.find_commit(store::parse_hex(&state.data_commit)?)?.tree_id()?.detach();
    let objects: Vec<Pointer> = record::read(repo, data)?
        .lfs_objects
        .into_iter()
        .filter(|p| asked.contains(&p.oid) && lfs::has_object(repo, p))
        .collect();
    let refname = carried::outgoing_lfs_ref(uuid);
    let old = store::ref_target(repo, &refname)?;
    match lfs::pack(repo, &objects)? {
        Some(carrier) => store::set_ref(repo, &refname, old, Some(carrier), "codex-handoff: outgoing LFS objects")?,
        None => store::set_ref(repo, &refname, old, None, "codex-handoff: no LFS objects")?,
    }
    Ok(objects.len())
}

/// Which of `oids` this clone's LFS storage lacks.
pub fn lfs_missing_here(repo: &Repo, oids: &[String]) -> Result<Vec<String>> {
    let storage = lfs::storage(repo);
    let mut missing = Vec::new();
    for oid in oids {
        if !state::valid_oid(oid) {
            return Err(Error::usage("bad_request", format!("{oid:?} is not a Git LFS object id")));
        }
        if !storage.join("objects").join(&oid[0..2]).join(&oid[2..4]).join(oid).is_file() {
            missing.push(oid.clone());
        }
    }
    Ok(missing)
}

/// After a hand-back: drop the refs that exposed the thread's LFS objects and submodule snapshots.
pub fn clean_outgoing(repo: &Repo, uuid: &str) {
    let _ = store::set_ref(repo, &carried::outgoing_lfs_ref(uuid), None, None, "codex-handoff: released");
    for dir in submodules::module_repositories(&repo.common_dir()) {
        if let Ok(module) = Repo::open(&dir) {
            let _ = store::set_ref(&module, &store::outgoing_ref(uuid), None, None, "codex-handoff: released");
        }
    }
}

/// An arrival here failed: the notes ref goes back to where it was and the
/// incoming refs go, so nothing of the thread's new state stays behind.
pub fn undo_incoming(repo: &Repo, uuid: &str, notes_before: Option<ObjectId>) {
    if let Ok(now) = store::ref_target(repo, store::NOTES_REF) {
        if now != notes_before {
            let _ = store::set_ref(repo, store::NOTES_REF, now, notes_before, "codex-handoff: handoff failed");
        }
    }
    carried::clean_incoming(repo, uuid);
}

/// A large transcript of the departing snapshot goes to the host beside the
/// push, as raw bytes on the connection: the host stores it as a pack of its
/// own and puts it at the thread's incoming `transcript` ref, so the push,
/// which then finds it there, leaves it out. Returns the blob sent, if one was.
pub(super) fn transcript_to_host(
    repo: &Repo,
    conn: &mut Connection,
    project_repo: &str,
    uuid: &str,
    departing: &Thread,
) -> Result<Option<ObjectId>> {
    if conn.hello.protocol < PROTOCOL_TRANSCRIPTS {
        return Ok(None);
    }
    let Some((blob, size)) = transcript::travelling(repo, &departing.state)? else { return Ok(None) };
    let mut bytes = transcript::BlobStream::open(repo, blob)?;
    let params = json!({ "repo": project_repo, "uuid": uuid, "blob": blob.to_string(), "size": size });
    let _: serde_json::Value = conn.call_sending("transcript_in", params, &mut bytes, size)?;
    Ok(Some(blob))
}

/// What `transcript_out` announces.
#[derive(Deserialize)]
struct Offer {
    blob: Option<String>,
    #[serde(default)]
    size: u64,
    carrier: Option<String>,
    #[serde(default)]
    time: i64,
}

/// Before the fetch of the host's departing snapshot: its large transcript
/// comes beside it, as raw bytes on the connection, and is stored here as a
/// pack of its own. A commit holding only it, made here exactly as the host
/// made it, goes at the thread's incoming `transcript` ref: the fetch says
/// it has that commit, and the host leaves the blob out of the pack.
pub(super) fn transcript_from_host(repo: &Repo, conn: &mut Connection, project_repo: &str, uuid: &str) -> Result<()> {
    if conn.hello.protocol < PROTOCOL_TRANSCRIPTS {
        return Ok(());
    }
    let mut stored = None;
    let offer: Offer = conn.call_receiving(
        "transcript_out",
        json!({ "repo": project_repo, "uuid": uuid }),
        |offer: &Offer| if offer.blob.is_some() { offer.size } else { 0 },
        |offer, bytes| {
            let Some(blob) = offer.blob.as_deref() else { return Ok(()) };
            let blob = store::parse_hex(blob)?;
            transcript::store_arriving(repo, bytes, offer.size, blob)?;
            stored = Some(blob);
            Ok(())
        },
    )?;
    let Some(blob) = stored else { return Ok(()) };
    let carrier = transcript::carrier(repo, blob, offer.time)?;
    // Made differently there (another version): the fetch carries the blob again, nothing worse.
    if offer.carrier.as_deref() == Some(carrier.to_string().as_str()) {
        let name = store::incoming_ref(uuid, "transcript");
        store::set_ref(repo, &name, None, None, "codex-handoff: clean up")?;
        store::set_ref(repo, &name, None, Some(carrier), "codex-handoff: transcript in transit")?;
    }
    Ok(())
}

/// The helper's side of `transcript_in`: `size` bytes that must be blob
/// `blob`, the transcript of thread `uuid` on its way here.
pub fn take_transcript(
    repo: &Repo,
    uuid: &str,
    blob: Option<&str>,
    size: Option<u64>,
    bytes: &mut dyn std::io::Read,
) -> Result<serde_json::Value> {
    let (Some(blob), Some(size)) = (blob, size) else {
        return Err(Error::usage("bad_request", "transcript_in needs the blob and its size"));
    };
    let blob = store::parse_hex(blob)?;
    transcript::store_arriving(repo, bytes, size, blob)?;
    let name = store::incoming_ref(uuid, "transcript");
    store::set_ref(repo, &name, None, None, "codex-handoff: clean up")?;
    store::set_ref(repo, &name, None, Some(blob), "codex-handoff: transcript arrived")?;
    Ok(json!({}))
}

/// The helper's side of `transcript_out`: the large transcript of the
/// snapshot thread `uuid` departed with, announced (with the commit that
/// holds only it) and then sent by [`send_transcript`]; `null` when it is
/// small enough for the fetch.
pub fn offer_transcript(repo: &Repo, uuid: &str) -> Result<(serde_json::Value, Option<ObjectId>)> {
    let Some(snapshot) = store::ref_target(repo, &store::outgoing_ref(uuid))? else {
        return Err(Error::failed("not_departed", format!("thread {uuid} has not departed from here")));
    };
    let state = store::read_note_in(repo, snapshot, &store::staged_notes_ref(uuid))
        .or_else(|_| store::read_note(repo, snapshot))?;
    let Some((blob, size)) = transcript::travelling(repo, &state)? else {
        return Ok((json!({ "blob": null }), None));
    };
    let time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let carrier = transcript::carrier(repo, blob, time)?;
    let offer = json!({ "blob": blob.to_string(), "size": size, "carrier": carrier.to_string(), "time": time });
    Ok((offer, Some(blob)))
}

/// The bytes of transcript blob `blob`, after the answer that announced them.
pub fn send_transcript(repo: &Repo, blob: ObjectId, out: &mut dyn std::io::Write) -> Result<()> {
    let size = repo.gix.find_header(blob)?.size();
    let copied = std::io::copy(&mut transcript::BlobStream::open(repo, blob)?, out)?;
    out.flush()?;
    if copied != size {
        return Err(Error::failed(
            "transcript_unreadable",
            format!("only {copied} of {size} bytes of {blob} could be read"),
        ));
    }
    Ok(())
}
