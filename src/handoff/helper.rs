//! The helper, `git-codex-handoff remote serve`: answers one client over
//! stdin/stdout (JSON lines), logs to stderr, and writes only into saved
//! projects and under the worktree root. Every request is hostile until
//! checked: identity (thread UUID, snapshot) comes from the request and is
//! checked against what was pushed, never the other way round.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{json, Value};

use super::helper_held::{self as held, Held};
use super::helper_queries as queries;
use super::projects::{self, project_repo};
use super::pulse::Sending;
use super::wire::{answer, check_uuid, LfsParams};
use crate::config;
use crate::error::{Error, Result};
use crate::fault;
use crate::handoff::{self, Departure, ForeignChanges, RemoteThread};
use crate::machine::Machine;
use crate::remote::protocol::{
    self, Request, Response, WireError, PROTOCOL_MACHINE_IDS, PROTOCOL_MAX, PROTOCOL_MIN, PROTOCOL_PACK_IN,
};
use crate::thread;
use crate::thread::state::DetachedOn;
use crate::thread::store;

struct Session {
    me: Machine,
    /// Run by a restricted key (`remote serve --restricted`): no configuration changes.
    restricted: bool,
    protocol: Option<u32>,
    /// Thread locks taken by `begin`, held until the session ends.
    held: Held,
    /// A request's bytes were left unread: the session ends after its answer.
    ending: bool,
    /// LFS objects asked for by `lfs_expose`, until its last batch.
    lfs_asked: Vec<String>,
    /// Bytes an answer announced, sent right after it.
    sending: Option<Sending>,
    /// Where the last plan found a thread goes here.
    planned: Option<(String, handoff::ArrivalWorktree)>,
    /// A thread's state captured by `status`, for its departure.
    kept: Option<(String, crate::worktree::state::WorktreeState)>,
    /// The client's `ioTimeout`: how long it waits for a sign of life (older clients: none).
    io_timeout: Option<std::time::Duration>,
    /// This side's progress, passed to a client that asked for it while a request runs.
    progress: Option<super::pulse::Latest>,
}

/// Serve requests until `bye` or end of input. `restricted`: a key limited to
/// handoffs, which may not change this machine's configuration.
pub fn serve(
    mut input: impl BufRead,
    mut output: impl Write + Send,
    mut log: impl Write,
    restricted: bool,
) -> Result<()> {
    // An inherited repository would redirect every git call.
    for var in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX"] {
        std::env::remove_var(var);
    }
    let mut session = Session {
        me: Machine::this(None)?,
        restricted,
        protocol: None,
        held: Held::default(),
        ending: false,
        lfs_asked: Vec::new(),
        sending: None,
        planned: None,
        kept: None,
        io_timeout: None,
        progress: None,
    };
    while let Some(line) = protocol::read_line(&mut input)? {
        let request: Request = match serde_json::from_slice(&line) {
            Ok(r) => r,
            Err(e) => {
                let err = Error::usage("bad_request", format!("not a request: {e}"));
                protocol::write_json(&mut output, &failure(&err))?;
                continue;
            }
        };
        if request.op == "bye" {
            break;
        }
        let _ = writeln!(log, "git-codex-handoff helper: {}", request.op);
        // Now and then a word on stderr while it works, for the client's timeout.
        let pulse = super::pulse::Pulse {
            io_timeout: session.io_timeout,
            op: &request.op,
            progress: session.progress.clone().map(|latest| (latest, &mut output as &mut (dyn Write + Send))),
        };
        let response = match super::pulse::with_heartbeat(pulse, || session.dispatch(&request, &mut input)) {
            Ok(result) => Response { ok: true, result: Some(result), error: None },
            Err(err) => {
                let _ = writeln!(log, "git-codex-handoff helper: {} failed: {}", request.op, err.full_message());
                failure(&err)
            }
        };
        protocol::write_json(&mut output, &response)?;
        // Bytes the answer announced follow it.
        if let Some(sending) = session.sending.take() {
            super::pulse::send(sending, session.io_timeout, &mut output)?;
        }
        if session.ending {
            break;
        }
    }
    Ok(())
}

fn failure(err: &Error) -> Response {
    Response { ok: false, result: None, error: Some(WireError::from(err)) }
}

fn params<T: for<'de> Deserialize<'de>>(request: &Request) -> Result<T> {
    serde_json::from_value(request.params.clone()).map_err(|e| {
        Error::usage("bad_request", format!("bad parameters for {}: {e}", request.op))
            .with_help("the client and helper versions may not match; upgrade both")
    })
}

#[derive(Deserialize)]
struct HelloParams {
    protocol: u32,
    /// The client's version (absent from the oldest clients).
    #[serde(default)]
    version: Option<String>,
    /// How long the client waits for a sign of life (absent from older clients).
    #[serde(default)]
    io_timeout_ms: Option<u64>,
    /// The client takes progress lines before an answer (absent from older clients).
    #[serde(default)]
    progress: bool,
}
#[derive(Deserialize)]
struct PathParams {
    path: PathBuf,
}
#[derive(Deserialize)]
struct TranscriptParams {
    repo: String,
    uuid: String,
    /// For `transcript_in`: the blob, and how many bytes of it follow the request.
    #[serde(default)]
    blob: Option<String>,
    #[serde(default)]
    size: Option<u64>,
}
#[derive(Deserialize)]
struct PackParams {
    repo: String,
    uuid: String,
    /// Commits the client has.
    #[serde(default)]
    haves: Vec<String>,
}
#[derive(Deserialize)]
struct PackInParams {
    repo: String,
    uuid: String,
    /// The thread's incoming refs to set (`snapshot`, `notes`, `head`, `lfs`) and their commits.
    refs: std::collections::BTreeMap<String, String>,
    /// How many bytes of pack follow the request.
    size: u64,
}
#[derive(Deserialize)]
struct BeginParams {
    repo: String,
    uuid: String,
    /// Repair what an interrupted handoff left here (not for a dry run).
    #[serde(default)]
    recover: bool,
}
#[derive(Deserialize)]
struct SnapshotParams {
    repo: String,
    uuid: String,
    snapshot: String,
    /// What the user calls this machine (absent from older clients).
    #[serde(default)]
    host: Option<String>,
    /// For `receive`: the client went from the plan to here without asking anything.
    #[serde(default)]
    planned: bool,
}
#[derive(Deserialize)]
struct DepartParams {
    repo: String,
    uuid: String,
    epoch: u64,
    to_machine: String,
    to_machine_id: String,
    from: String,
    to: String,
    initiator: String,
    initiator_id: String,
    #[serde(default)]
    branch: Option<String>,
    /// The thread will work on a detached HEAD on the receiving machine (its branch checked out elsewhere there).
    #[serde(default)]
    detached: bool,
    /// The worktree there that has the branch checked out, for the note (`None`: `--detach`).
    #[serde(default)]
    checked_out_in: Option<String>,
    #[serde(default)]
    no_interrupt: bool,
    #[serde(default = "default_interrupt_ms")]
    interrupt_timeout_ms: u64,
    /// The state `status` captured stands (no question was asked since).
    #[serde(default)]
    kept: bool,
    /// The worktree root planned for the thread on the receiving machine, for the note.
    to_worktree: Option<String>,
}

fn default_interrupt_ms() -> u64 {
    10_000
}

impl Session {
    fn dispatch(&mut self, request: &Request, input: &mut dyn BufRead) -> Result<Value> {
        if request.op != "hello" && self.protocol.is_none() {
            return Err(Error::usage("no_hello", "the first request must be hello"));
        }
        if self.restricted && projects::changes_configuration(&request.op) {
            return Err(projects::refused_over_restricted_key(&request.op));
        }
        let hands_over = matches!(request.op.as_str(), "begin" | "receive" | "depart" | "release");
        if hands_over && self.protocol.is_some_and(|p| p < PROTOCOL_MACHINE_IDS) {
            // Such a client records owners by hostname, which two machines may share.
            return Err(Error::new(
                crate::error::Kind::Helper,
                "client_incompatible",
                format!(
                    "handing a thread over needs protocol {PROTOCOL_MACHINE_IDS} (machine ids); the client speaks 1"
                ),
            )
            .with_help("upgrade git-codex-handoff on the computer that runs the handoff"));
        }
        match request.op.as_str() {
            "hello" => self.hello(params(request)?),
            "environment" => crate::codex::environment(),
            "projects" => projects::projects(),
            "project_save" => projects::project_save(&params::<PathParams>(request)?.path),
            "project_forget" => projects::project_forget(&params::<PathParams>(request)?.path),
            "find_project" => projects::find_project(params(request)?, &self.me.name),
            "plan" => {
                let p: queries::PlanParams = params(request)?;
                let uuid = p.uuid.clone();
                let with_haves = self.protocol.is_some_and(|p| p >= PROTOCOL_PACK_IN);
                let (planned, target) = queries::plan(p, &self.me.name, with_haves)?;
                self.planned = Some((uuid, target));
                Ok(planned)
            }
            "begin" => self.begin(params(request)?),
            "status" => {
                let p: queries::ThreadParams = params(request)?;
                let uuid = p.uuid.clone();
                let keep = p.keep && project_repo(&p.repo).is_ok_and(|r| self.held.check(&r, &uuid).is_ok());
                let (status, captured) = queries::status(p, &self.me, keep)?;
                self.kept = captured.map(|state| (uuid, state));
                Ok(status)
            }
            "descends" => queries::descends(params(request)?),
            "receive" => self.receive(params(request)?),
            "depart" => self.depart(params(request)?),
            "release" => self.release(params(request)?),
            "lfs_missing" => queries::lfs_missing(params(request)?),
            "lfs_expose" => self.lfs_expose(params(request)?),
            "transcript_in" => {
                let p: TranscriptParams = params(request)?;
                let ceiling = held::ceiling_for(&p.repo);
                let (taken, after) =
                    held::beside(input, p.size.unwrap_or(0), ceiling, "a transcript", self.io_timeout, |bytes| {
                        let repo = project_repo(&p.repo)?;
                        self.held.check(&repo, &p.uuid)?;
                        handoff::take_transcript(&repo, &p.uuid, p.blob.as_deref(), p.size, bytes)
                            .map_err(|e| super::space::explain(e, None, &[repo.common_dir()], p.size.unwrap_or(0)))
                    });
                self.ending = matches!(after, held::After::End);
                taken
            }
            "pack_in" => {
                let p: PackInParams = params(request)?;
                let ceiling = held::ceiling_for(&p.repo);
                let (taken, after) = held::beside(input, p.size, ceiling, "a pack", self.io_timeout, |bytes| {
                    let repo = project_repo(&p.repo)?;
                    self.held.check(&repo, &p.uuid)?;
                    handoff::take_pushed(&repo, &p.uuid, &p.refs, bytes, p.size)
                        .map_err(|e| super::space::explain(e, None, &[repo.common_dir()], p.size))
                });
                self.ending = matches!(after, held::After::End);
                taken
            }
            "transcript_out" => {
                let p: TranscriptParams = params(request)?;
                let repo = project_repo(&p.repo)?;
                self.held.check(&repo, &p.uuid)?;
                let (offer, blob) = handoff::offer_transcript(&repo, &p.uuid)?;
                self.sending = blob.map(|blob| Sending::Blob(Box::new(repo), blob));
                Ok(offer)
            }
            "pack_out" => {
                let p: PackParams = params(request)?;
                let repo = project_repo(&p.repo)?;
                self.held.check(&repo, &p.uuid)?;
                let (offer, pack) = handoff::offer_pack(&repo, &p.uuid, &p.haves)?;
                self.sending = Some(Sending::Pack(pack));
                Ok(offer)
            }
            "attach" => handoff::attach::prepare(params(request)?, &self.me, self.restricted),
            other => Err(Error::usage("unknown_op", format!("unknown request {other:?}"))
                .with_help("the client is newer than this helper; upgrade the helper")),
        }
    }

    fn hello(&mut self, p: HelloParams) -> Result<Value> {
        if p.protocol < PROTOCOL_MIN {
            return Err(Error::new(
                crate::error::Kind::Helper,
                "helper_incompatible",
                format!(
                    "this helper (version {}) speaks protocol {PROTOCOL_MIN}-{PROTOCOL_MAX}; the client (version {}) \
                     at most {}",
                    env!("CARGO_PKG_VERSION"),
                    p.version.as_deref().unwrap_or("unknown"),
                    p.protocol
                ),
            )
            .with_help(format!(
                "upgrade git-codex-handoff on the computer that started the handoff to version {}: \
                 `cargo install --locked --path .` in a checkout of it (or `make install`)",
                env!("CARGO_PKG_VERSION")
            )));
        }
        let mut protocol = p.protocol.min(PROTOCOL_MAX);
        if fault::trip(fault::Step::HelperProtocol2) {
            protocol = protocol.min(PROTOCOL_MACHINE_IDS);
        }
        self.protocol = Some(protocol);
        self.io_timeout = p.io_timeout_ms.filter(|ms| *ms > 0).map(std::time::Duration::from_millis);
        self.progress = p.progress.then(super::pulse::Latest::install);
        Ok(json!({
            "heartbeat": self.io_timeout.is_some(),
            "protocol": protocol,
            "version": env!("CARGO_PKG_VERSION"),
            "machine": self.me.name,
            "machine_id": self.me.id,
            "worktree_root": config::worktree_root().ok(),
            "executable": std::env::current_exe().ok(),
        }))
    }

    fn begin(&mut self, p: BeginParams) -> Result<Value> {
        let repo = project_repo(&p.repo)?;
        check_uuid(&p.uuid)?;
        let lock = self.held.take(&repo, &p.uuid, self.io_timeout)?;
        let mut repairs = Vec::new();
        if p.recover {
            repairs = handoff::repair_here(&repo, lock, &p.uuid, &self.me)?;
        }
        let thread = store::load(&repo, &p.uuid)?.map(|t| RemoteThread {
            epoch: t.state.epoch,
            owner_machine: t.state.owner_machine.clone(),
            owner_machine_id: t.state.owner_machine_id.clone(),
            snapshot: t.snapshot.to_string(),
            worktree: thread::worktree_record(&repo, &p.uuid).ok().flatten().map(|w| w.to_string_lossy().into_owned()),
        });
        Ok(json!({ "thread": thread, "repairs": repairs }))
    }

    fn receive(&mut self, p: SnapshotParams) -> Result<Value> {
        let repo = project_repo(&p.repo)?;
        self.held.check(&repo, &p.uuid)?;
        let snapshot = store::parse_hex(&p.snapshot)?;
        if store::ref_target(&repo, &store::incoming_ref(&p.uuid, "snapshot"))? != Some(snapshot) {
            return Err(
                Error::failed("nothing_received", "the snapshot did not arrive").with_help("run the handoff again")
            );
        }
        handoff::check_incoming(&repo, &p.uuid, snapshot, p.host.as_deref().unwrap_or(&self.me.name))?;
        let notes_before = store::ref_target(&repo, store::NOTES_REF)?;
        handoff::merge_incoming_notes(&repo, &p.uuid)?;
        fault::point(fault::Step::BeforeRestore);
        // The plan's look at the worktree stands when the client went on without a question (the lock was held since).
        let planned = self.planned.take().filter(|(uuid, _)| p.planned && *uuid == p.uuid).map(|(_, target)| target);
        let arrived =
            handoff::arrival(&repo, &p.uuid, snapshot, &self.me, ForeignChanges::Refuse, planned).map_err(|e| {
                let e = super::space::arrival_failed(e, &repo, snapshot, None);
                // The thread stays where it was: no note of it here either.
                handoff::undo_incoming(&repo, &p.uuid, notes_before);
                e
            })?;
        store::delete_refs_under(&repo, &format!("refs/codex-handoff/incoming/{}/", p.uuid))?;
        answer(arrived)
    }

    fn depart(&mut self, p: DepartParams) -> Result<Value> {
        let repo = project_repo(&p.repo)?;
        self.held.check(&repo, &p.uuid)?;
        let thread = store::load(&repo, &p.uuid)?
            .ok_or_else(|| Error::not_found("thread_not_found", format!("no thread {} here", p.uuid)))?;
        if !thread.state.owned_by(&self.me) || thread.state.epoch + 1 != p.epoch {
            return Err(Error::refused(
                "owner_mismatch",
                format!(
                    "thread {} here is at epoch {} owned by {}; the request was for epoch {}",
                    p.uuid, thread.state.epoch, thread.state.owner_machine, p.epoch
                ),
            ));
        }
        if let Some(branch) = &p.branch {
            crate::repo::check_received_branch_name(branch)?;
        }
        let worktree = thread::thread_worktree(&repo, &thread)?;
        let to_machine = Machine { id: p.to_machine_id, name: p.to_machine };
        let detached = p.detached.then(|| DetachedOn::on(&to_machine, p.checked_out_in));
        let timeout = std::time::Duration::from_millis(p.interrupt_timeout_ms);
        let interrupted = crate::thread::running::stop_for_handoff(&repo, &p.uuid, p.no_interrupt, timeout)?;
        // The state `status` captured stands for a thread at rest since, with no question asked.
        let kept = self.kept.take().filter(|(uuid, _)| p.kept && !interrupted && *uuid == p.uuid).map(|(_, s)| s);
        let departing = handoff::departure(
            &repo,
            &worktree,
            &thread,
            Departure {
                to_machine,
                initiator: Machine { id: p.initiator_id, name: p.initiator },
                from: p.from,
                to: p.to,
                branch: p.branch,
                detached,
                to_worktree: p.to_worktree,
            },
            kept,
        )?;
        fault::point(fault::Step::DepartSnapshotted);
        let outgoing = store::outgoing_ref(&p.uuid);
        let old = store::ref_target(&repo, &outgoing)?;
        store::set_ref(&repo, &outgoing, old, Some(departing.snapshot), "codex-handoff: outgoing")?;
        // The submodules' snapshots wait in this clone's module repositories.
        let modules = handoff::expose_submodules(&repo, &worktree, &departing, &outgoing)?;
        Ok(json!({ "snapshot": departing.snapshot.to_string(), "modules": modules }))
    }

    fn lfs_expose(&mut self, p: LfsParams) -> Result<Value> {
        let repo = project_repo(&p.repo)?;
        self.held.check(&repo, &p.uuid)?;
        self.lfs_asked.extend(p.oids);
        if !p.done {
            return Ok(json!({}));
        }
        let asked = std::mem::take(&mut self.lfs_asked);
        let count = handoff::expose_lfs(&repo, &p.uuid, &asked)?;
        Ok(json!({ "objects": count }))
    }

    fn release(&mut self, p: SnapshotParams) -> Result<Value> {
        let repo = project_repo(&p.repo)?;
        self.held.check(&repo, &p.uuid)?;
        fault::point(fault::Step::BeforeRelease);
        let snapshot = store::parse_hex(&p.snapshot)?;
        let current = store::load(&repo, &p.uuid)?
            .ok_or_else(|| Error::not_found("thread_not_found", format!("no thread {} here", p.uuid)))?;
        if current.snapshot != snapshot {
            // The note on the snapshot joins the shared notes only now.
            store::publish_staged_notes(&repo, &p.uuid)?;
            let state = store::read_note(&repo, snapshot)?;
            if state.owned_by(&self.me) || state.epoch <= current.state.epoch {
                return Err(Error::refused("bad_release", "that snapshot does not hand the thread away from here"));
            }
            store::move_thread_ref(&repo, &p.uuid, Some(current.snapshot), snapshot)?;
        }
        fault::point(fault::Step::ReleaseRecorded);
        store::set_ref(&repo, &store::outgoing_ref(&p.uuid), None, None, "codex-handoff: released")?;
        handoff::clean_outgoing(&repo, &p.uuid);
        let released = store::load(&repo, &p.uuid)?
            .ok_or_else(|| Error::not_found("thread_not_found", format!("no thread {} here", p.uuid)))?;
        let let_go = thread::let_go_of_branch(&repo, &released, &self.me)?;
        Ok(json!({ "let_go": let_go }))
    }
}
