//! Handoffs: a thread's Git state leaves one machine and arrives on another.
//!
//! `departure` and `arrival` are the two halves; each runs on its own
//! machine (this computer or the helper on a host). `to_host` and `to_local`
//! drive a whole handoff from this computer. Ownership changes hands only
//! after the destination has restored and verified the state, and the highest
//! epoch always says who owns the thread.

use std::path::{Path, PathBuf};

use gix::ObjectId;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{self, Host};
use crate::error::{Error, Result};
use crate::fingerprint;
use crate::git::Git;
use crate::repo::Repo;
use crate::restore::{self, Expected};
use crate::snapshot::{self, Changes};
use crate::state::{now_rfc3339, Handoff};
use crate::store::{self, Thread};
use crate::threads;
use crate::transport::Connection;

/// What a handoff will do, shown before it starts.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub thread: u64,
    pub uuid: String,
    pub title: String,
    pub from: String,
    pub to: String,
    pub worktree: String,
    pub reuse_worktree: bool,
    pub branch: Option<String>,
    pub branch_action: String,
    pub changes: Changes,
    pub transcript_bytes: u64,
    /// The thread's command is running and will be interrupted first.
    pub running: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub thread: u64,
    pub uuid: String,
    pub host: String,
    pub worktree: String,
    pub branch: Option<String>,
    pub epoch: u64,
    pub snapshot: String,
    /// Nothing had to move: an earlier run already finished, or the thread was there.
    pub already_there: bool,
    pub dry_run: bool,
}

/// Lets the caller show the plan, ask for confirmation and report progress.
pub trait Interaction {
    /// Show the plan; return false to stop without changing anything.
    fn confirm(&mut self, plan: &Plan) -> bool;
    fn progress(&mut self, text: &str);
}

pub struct Request {
    pub thread: String,
    pub destination: String,
    pub branch: Option<String>,
    pub dry_run: bool,
    /// Refuse a running thread instead of interrupting it.
    pub no_interrupt: bool,
    /// How long to wait after SIGINT, and again after SIGTERM.
    pub interrupt_timeout: std::time::Duration,
    /// A person will be asked to confirm the plan (so the snapshot must wait for the answer).
    pub interactive: bool,
}

/// The two destinations that name this computer.
pub fn is_local(destination: &str) -> bool {
    destination == "local" || destination == "."
}

/// Run one handoff from this computer.
pub fn run(repo: &Repo, request: &Request, ui: &mut dyn Interaction) -> Result<Outcome> {
    let destination = request.destination.as_str();
    if destination == "cloud" || destination.starts_with("cloud:") {
        return Err(Error::refused("unsupported_destination", "handoff to a Codex cloud environment isn't supported")
            .with_help("hand the thread to a host reachable over SSH (`git codex-handoff destinations`)"));
    }
    if let Some(branch) = &request.branch {
        check_branch_name(repo, branch)?;
    }
    let host = if is_local(destination) {
        None
    } else {
        config::check_host_name(destination)?;
        Some(config::find_host(destination)?)
    };
    let me = crate::repo::machine_name(Some(repo));
    let thread = store::resolve(repo, &request.thread)?;
    // `thread run` exports CODEX_HANDOFF_THREAD; the Codex CLI exports CODEX_THREAD_ID.
    let asking_thread = std::env::var("CODEX_HANDOFF_THREAD").is_ok_and(|v| v.eq_ignore_ascii_case(&thread.state.uuid));
    let asking_session = match (&thread.state.transcript.codex_session, std::env::var("CODEX_THREAD_ID")) {
        (Some(session), Ok(id)) => session.eq_ignore_ascii_case(&id),
        _ => false,
    };
    if asking_thread || asking_session {
        return Err(Error::refused("self_handoff", "a thread cannot hand itself off")
            .with_help("ask from another thread or a terminal"));
    }
    let _lock = threads::lock_thread(repo, &thread.state.uuid)?;
    let thread = reload(repo, &thread)?;
    let owned_here = thread.state.owner_machine == me;
    match host {
        None if owned_here => finish_release_or_stay(repo, &thread, &me, ui),
        None => {
            let host = owner_host(&thread, &me)?;
            to_local(repo, thread, &host, request, ui)
        }
        Some(host) if owned_here => to_host(repo, thread, &host, request, ui),
        Some(host) => {
            let current = owner_host(&thread, &me)?;
            if current.name == host.name {
                return already_on_host(&thread, &host, ui);
            }
            // Host to host goes through this computer.
            if request.dry_run {
                ui.progress(&format!(
                    "{} is on {}: it would come back here first, then go to {}",
                    label(&thread),
                    current.name,
                    host.name
                ));
            }
            let back = to_local(repo, thread, &current, &Request { branch: None, ..clone_request(request) }, ui)?;
            if request.dry_run {
                return Ok(back);
            }
            let thread = store::load(repo, &back.uuid)?.ok_or_else(|| lost(&back.uuid))?;
            to_host(repo, thread, &host, request, ui)
        }
    }
}

fn clone_request(r: &Request) -> Request {
    Request {
        thread: r.thread.clone(),
        destination: r.destination.clone(),
        branch: r.branch.clone(),
        dry_run: r.dry_run,
        no_interrupt: r.no_interrupt,
        interrupt_timeout: r.interrupt_timeout,
        interactive: r.interactive,
    }
}

fn label(thread: &Thread) -> String {
    format!("thread #{}", thread.state.number)
}

fn lost(uuid: &str) -> Error {
    Error::failed("thread_lost", format!("thread {uuid} is missing from the store after the handoff"))
}

fn reload(repo: &Repo, thread: &Thread) -> Result<Thread> {
    store::load(repo, &thread.state.uuid)?.ok_or_else(|| lost(&thread.state.uuid))
}

fn check_branch_name(repo: &Repo, branch: &str) -> Result<()> {
    if branch.starts_with('-') || repo.git().run(["check-ref-format", &format!("refs/heads/{branch}")]).is_err() {
        return Err(Error::usage("bad_branch", format!("{branch:?} is not a valid branch name"))
            .with_help("see `git help check-ref-format`"));
    }
    Ok(())
}

/// The configured host a thread owned elsewhere is on.
fn owner_host(thread: &Thread, me: &str) -> Result<Host> {
    let name = thread
        .state
        .handoff
        .as_ref()
        .filter(|h| h.initiator == me && h.to_machine == thread.state.owner_machine)
        .map(|h| h.to.clone());
    let Some(name) = name else {
        return Err(Error::not_found(
            "owner_unknown",
            format!(
                "{} is on machine {}, which this computer did not send it to",
                label(thread),
                thread.state.owner_machine
            ),
        )
        .with_help("bring it back from the computer that handed it off"));
    };
    config::find_host(&name)
}

// ---------------------------------------------------------------- to a host

fn to_host(repo: &Repo, thread: Thread, host: &Host, request: &Request, ui: &mut dyn Interaction) -> Result<Outcome> {
    let worktree = threads::thread_worktree(repo, &thread)?;
    let running = crate::running::current(repo, &thread.state.uuid)?;
    if running.is_some() && request.no_interrupt {
        crate::running::stop_for_handoff(repo, &thread.state.uuid, true, request.interrupt_timeout)?;
    }
    // Refuse what cannot be carried before connecting anywhere.
    let index = worktree.gix.index_or_empty()?;
    snapshot::check_capturable(&worktree, &index)?;
    let fingerprint = fingerprint::of(repo)?;
    // A thread at rest, handed off without a question, is captured while the
    // connection is made; a running one only after it has been interrupted.
    let early = if running.is_none() && !request.interactive && !request.dry_run {
        let handle = threads::thread_worktree(repo, &thread)?;
        Some(std::thread::spawn(move || snapshot::capture_counted(&handle)))
    } else {
        None
    };
    ui.progress(&format!("connecting to {} ({})", host.name, host.ssh));
    let mut conn = Connection::open(host)?;
    let (captured, changes) = match early {
        Some(handle) => {
            let (state, changes) = handle
                .join()
                .map_err(|_| Error::failed("snapshot_failed", "taking the snapshot failed unexpectedly"))??;
            (Some(state), changes)
        }
        None => (None, snapshot::count_changes(&worktree)?),
    };
    let project: ProjectMatch =
        conn.call("find_project", json!({ "fingerprint": fingerprint, "subdirectory": thread.state.subdirectory }))?;
    let (head, current_branch) = match &captured {
        Some(state) => (state.head, state.branch.clone()),
        None => snapshot::head_of(&worktree)?,
    };
    let branch = request.branch.clone().or(current_branch);
    let answer: PlanAnswer = conn.call(
        "plan",
        json!({ "repo": project.repo, "uuid": thread.state.uuid, "number": thread.state.number,
                "branch": branch, "head": head.map(|h| h.to_string()) }),
    )?;
    let branch_action = branch_action(repo, host, branch.as_deref(), head, &answer)?;
    let plan = Plan {
        thread: thread.state.number,
        uuid: thread.state.uuid.clone(),
        title: thread.state.title.clone(),
        from: "local".into(),
        to: host.name.clone(),
        worktree: answer.worktree.clone(),
        reuse_worktree: answer.reuse,
        branch: branch.clone(),
        branch_action,
        changes,
        transcript_bytes: crate::transcript::current_size(repo, &thread.state).unwrap_or(thread.state.transcript.size),
        running: running.is_some(),
    };
    if let Some(stop) = present(&plan, &thread, request, ui)? {
        return Ok(stop);
    }

    let begun: BeginAnswer = conn.call("begin", json!({ "repo": project.repo, "uuid": thread.state.uuid }))?;
    if let Some(remote) = &begun.thread {
        if remote.epoch > thread.state.epoch {
            if remote.owner_machine == conn.hello.machine {
                // An earlier run finished on the host; only this computer's record is behind.
                let outcome = adopt_remote(repo, &mut conn, &project, &thread, host, remote, ui);
                conn.close()?;
                return outcome;
            }
            return Err(Error::refused(
                "newer_elsewhere",
                format!(
                    "{} has a newer state of {} (epoch {}) than this computer (epoch {})",
                    host.name,
                    label(&thread),
                    remote.epoch,
                    thread.state.epoch
                ),
            )
            .with_help("bring the thread back from where it is first"));
        }
    }

    let captured =
        if crate::running::stop_for_handoff(repo, &thread.state.uuid, request.no_interrupt, request.interrupt_timeout)?
        {
            ui.progress("interrupted the running command");
            None
        } else {
            captured
        };
    ui.progress("taking a snapshot");
    let departing = departure(
        repo,
        &worktree,
        &thread,
        Departure {
            to_machine: conn.hello.machine.clone(),
            initiator: crate::repo::machine_name(Some(repo)),
            from: "local".into(),
            to: host.name.clone(),
            branch: request.branch.clone(),
        },
        captured,
    )?;
    let uuid = thread.state.uuid.clone();
    ui.progress(&format!("pushing to {}", host.name));
    let mut refspecs = vec![
        format!("+{}:{}", departing.snapshot, store::incoming_ref(&uuid, "snapshot")),
        format!("+{}:{}", store::staged_notes_ref(&uuid), store::incoming_ref(&uuid, "notes")),
    ];
    if let Some(head) = &departing.state.head {
        refspecs.push(format!("+{head}:{}", store::incoming_ref(&uuid, "head")));
    }
    let sent = push(repo, &conn, &project.repo, &refspecs).and_then(|()| {
        ui.progress(&format!("restoring on {}", host.name));
        conn.call::<ArrivalAnswer>(
            "receive",
            json!({ "repo": project.repo, "uuid": uuid, "snapshot": departing.snapshot.to_string() }),
        )
    });
    let arrived = match sent {
        Ok(arrived) => arrived,
        Err(e) => {
            // The host did not take it: this computer stays exactly as it was.
            let _ = store::set_ref(repo, &store::staged_notes_ref(&uuid), None, None, "codex-handoff: not sent");
            return Err(e);
        }
    };
    // Only now does this computer record the new owner.
    store::publish_staged_notes(repo, &uuid)?;
    store::move_thread_ref(repo, &uuid, Some(thread.snapshot), departing.snapshot)?;
    conn.close()?;
    Ok(Outcome {
        thread: thread.state.number,
        uuid,
        host: host.name.clone(),
        worktree: arrived.worktree,
        branch: arrived.branch,
        epoch: departing.state.epoch,
        snapshot: departing.snapshot.to_string(),
        already_there: false,
        dry_run: false,
    })
}

/// What the host's branch will do, refusing early (before anything changes)
/// when it has diverged or is checked out in another worktree there.
fn branch_action(
    repo: &Repo,
    host: &Host,
    branch: Option<&str>,
    head: Option<ObjectId>,
    answer: &PlanAnswer,
) -> Result<String> {
    let Some(branch) = branch else { return Ok("detached HEAD".into()) };
    if let Some(other) = &answer.branch_checked_out {
        return Err(Error::refused(
            "branch_checked_out",
            format!("branch {branch} is checked out in another worktree on {}: {other}", host.name),
        )
        .with_help("hand the thread off onto a new branch with `--branch NEW`, or switch that worktree away"));
    }
    let Some(tip) = &answer.branch_tip else { return Ok("create".into()) };
    let tip = store::parse_hex(tip)?;
    let diverged = || {
        Error::refused("branch_diverged", format!("branch {branch} on {} has diverged from the thread's", host.name))
            .with_help("hand the thread off onto a new branch with `--branch NEW`")
    };
    let Some(head) = head else { return Err(diverged()) };
    if tip == head {
        return Ok("up to date".into());
    }
    // A tip this computer does not have cannot be an ancestor of the thread's HEAD.
    if repo.gix.find_commit(tip).is_ok() && repo.is_ancestor(tip, head)? {
        return Ok("fast-forward".into());
    }
    Err(diverged())
}

/// The host owns the thread at a newer epoch than this computer knows of:
/// take over its record (the snapshot was made here, or is fetched).
fn adopt_remote(
    repo: &Repo,
    conn: &mut Connection,
    project: &ProjectMatch,
    thread: &Thread,
    host: &Host,
    remote: &RemoteThread,
    ui: &mut dyn Interaction,
) -> Result<Outcome> {
    let snapshot = store::parse_hex(&remote.snapshot)?;
    // A run that stopped before publishing left the snapshot's note staged here.
    store::publish_staged_notes(repo, &thread.state.uuid)?;
    if repo.gix.find_commit(snapshot).is_err() || store::read_note(repo, snapshot).is_err() {
        let _: serde_json::Value = conn.call("expose", json!({ "repo": project.repo, "uuid": thread.state.uuid }))?;
        fetch(repo, conn, &project.repo, &thread.state.uuid)?;
        merge_incoming_notes(repo, &thread.state.uuid)?;
        store::delete_refs_under(repo, &format!("refs/codex-handoff/incoming/{}/", thread.state.uuid))?;
    }
    ui.progress(&format!("an earlier handoff to {} had finished there; recording it here", host.name));
    store::move_thread_ref(repo, &thread.state.uuid, Some(thread.snapshot), snapshot)?;
    let state = store::read_note(repo, snapshot)?;
    Ok(Outcome {
        thread: state.number,
        uuid: state.uuid,
        host: host.name.clone(),
        worktree: remote.worktree.clone().unwrap_or_default(),
        branch: state.branch,
        epoch: state.epoch,
        snapshot: remote.snapshot.clone(),
        already_there: true,
        dry_run: false,
    })
}

/// `git codex-handoff 42 devbox` when this computer has recorded 42 on
/// devbox: that record is written only after devbox confirmed, so there is
/// nothing left to do.
fn already_on_host(thread: &Thread, host: &Host, ui: &mut dyn Interaction) -> Result<Outcome> {
    ui.progress(&format!("{} is already on {}", label(thread), host.name));
    Ok(Outcome {
        thread: thread.state.number,
        uuid: thread.state.uuid.clone(),
        host: host.name.clone(),
        worktree: String::new(),
        branch: thread.state.branch.clone(),
        epoch: thread.state.epoch,
        snapshot: thread.snapshot.to_string(),
        already_there: true,
        dry_run: false,
    })
}

/// Show the plan and ask; `Some` ends the handoff here (a dry run).
fn present(plan: &Plan, thread: &Thread, request: &Request, ui: &mut dyn Interaction) -> Result<Option<Outcome>> {
    if !ui.confirm(plan) {
        return Err(Error::failed("cancelled", "handoff cancelled; nothing was changed"));
    }
    Ok(request.dry_run.then(|| outcome_of_plan(plan, thread)))
}

fn outcome_of_plan(plan: &Plan, thread: &Thread) -> Outcome {
    Outcome {
        thread: plan.thread,
        uuid: plan.uuid.clone(),
        host: plan.to.clone(),
        worktree: plan.worktree.clone(),
        branch: plan.branch.clone(),
        epoch: thread.state.epoch + 1,
        snapshot: thread.snapshot.to_string(),
        already_there: false,
        dry_run: true,
    }
}

// ------------------------------------------------------------ back to local

fn to_local(repo: &Repo, thread: Thread, host: &Host, request: &Request, ui: &mut dyn Interaction) -> Result<Outcome> {
    let me = crate::repo::machine_name(Some(repo));
    let fingerprint = fingerprint::of(repo)?;
    ui.progress(&format!("connecting to {} ({})", host.name, host.ssh));
    let mut conn = Connection::open(host)?;
    let project: ProjectMatch =
        conn.call("find_project", json!({ "fingerprint": fingerprint, "subdirectory": thread.state.subdirectory }))?;
    let status: StatusAnswer = conn.call("status", json!({ "repo": project.repo, "uuid": thread.state.uuid }))?;
    let destination =
        arrival_worktree(repo, &thread.state.uuid, thread.state.number, Some(&thread), ForeignChanges::NewWorktree)?;
    let branch = request.branch.clone().or(status.branch.clone());
    // Refuse before anything changes: the new worktree could not check the branch out.
    if let Some(branch) = &branch {
        let elsewhere = restore::checked_out_in(repo, &format!("refs/heads/{branch}"))?
            .filter(|wt| !(destination.reuse && restore::same_path(wt, &destination.path)));
        if let Some(wt) = elsewhere {
            return Err(Error::refused(
                "branch_checked_out",
                format!("branch {branch} is checked out in {}, which has changes since the thread left", wt.display()),
            )
            .with_help(
                "bring the thread back onto a new branch with `--branch NEW`, or commit or stash those changes first",
            ));
        }
    }
    let plan = Plan {
        thread: thread.state.number,
        uuid: thread.state.uuid.clone(),
        title: thread.state.title.clone(),
        from: host.name.clone(),
        to: "local".into(),
        worktree: destination.path.to_string_lossy().into_owned(),
        reuse_worktree: destination.reuse,
        branch: branch.clone(),
        branch_action: "restore".into(),
        changes: status.changes.clone(),
        transcript_bytes: status.transcript_bytes.unwrap_or(thread.state.transcript.size),
        running: status.running,
    };
    if let Some(stop) = present(&plan, &thread, request, ui)? {
        return Ok(stop);
    }
    let begun: BeginAnswer = conn.call("begin", json!({ "repo": project.repo, "uuid": thread.state.uuid }))?;
    match &begun.thread {
        Some(remote) if remote.owner_machine == conn.hello.machine && remote.epoch == thread.state.epoch => {}
        Some(remote) => {
            return Err(Error::refused(
                "owner_mismatch",
                format!(
                    "{} says {} is at epoch {} owned by {}, but this computer expected epoch {} on {}",
                    host.name,
                    label(&thread),
                    remote.epoch,
                    remote.owner_machine,
                    thread.state.epoch,
                    thread.state.owner_machine
                ),
            )
            .with_help("run `git codex-handoff thread log` here and on the host to see what happened"))
        }
        None => {
            return Err(Error::not_found(
                "thread_not_on_host",
                format!("{} does not know {}", host.name, label(&thread)),
            )
            .with_help("check the host's saved project with `git codex-handoff project list --host ...`"))
        }
    }
    let uuid = thread.state.uuid.clone();
    ui.progress(&format!("taking a snapshot on {}", host.name));
    let departed: DepartAnswer = conn.call(
        "depart",
        json!({ "repo": project.repo, "uuid": uuid, "epoch": thread.state.epoch + 1, "to_machine": me,
                "from": host.name, "to": "local", "initiator": me, "branch": request.branch,
                "no_interrupt": request.no_interrupt, "interrupt_timeout_ms": request.interrupt_timeout.as_millis() as u64 }),
    )?;
    ui.progress(&format!("fetching from {}", host.name));
    store::delete_refs_under(repo, &format!("refs/codex-handoff/incoming/{uuid}/"))?;
    fetch(repo, &conn, &project.repo, &uuid)?;
    let snapshot = store::parse_hex(&departed.snapshot)?;
    if store::ref_target(repo, &store::incoming_ref(&uuid, "snapshot"))? != Some(snapshot) {
        return Err(Error::failed(
            "fetch_mismatch",
            format!("the snapshot fetched from {} is not the one it made", host.name),
        ));
    }
    check_incoming(repo, &uuid, snapshot)?;
    merge_incoming_notes(repo, &uuid)?;
    set_marker(repo, "release", &uuid, &json!({ "host": host.name, "snapshot": departed.snapshot }))?;
    ui.progress("restoring here");
    let arrived = arrival(repo, snapshot, &me, ForeignChanges::NewWorktree).inspect_err(|_| {
        // The host still owns the thread: nothing to release.
        let _ = clear_marker(repo, "release", &uuid);
    })?;
    store::delete_refs_under(repo, &format!("refs/codex-handoff/incoming/{uuid}/"))?;
    let _: serde_json::Value =
        conn.call("release", json!({ "repo": project.repo, "uuid": uuid, "snapshot": departed.snapshot }))?;
    clear_marker(repo, "release", &uuid)?;
    conn.close()?;
    Ok(Outcome {
        thread: thread.state.number,
        uuid,
        host: "local".into(),
        worktree: arrived.worktree,
        branch: arrived.branch,
        epoch: arrived.epoch,
        snapshot: departed.snapshot,
        already_there: false,
        dry_run: false,
    })
}

/// `42 local` for a thread already here: tell the host to let go if an
/// earlier hand-back stopped before that, else nothing to do.
fn finish_release_or_stay(repo: &Repo, thread: &Thread, me: &str, ui: &mut dyn Interaction) -> Result<Outcome> {
    let worktree = threads::worktree_record(repo, &thread.state.uuid)?.map(|p| p.to_string_lossy().into_owned());
    if let Some(marker) = read_marker(repo, "release", &thread.state.uuid)? {
        let host_name = marker["host"].as_str().unwrap_or_default().to_owned();
        let snapshot = marker["snapshot"].as_str().unwrap_or_default().to_owned();
        let host = config::find_host(&host_name)?;
        ui.progress(&format!("finishing the earlier hand-back: telling {} to let go of {}", host.name, label(thread)));
        let mut conn = Connection::open(&host)?;
        let project: ProjectMatch = conn.call(
            "find_project",
            json!({ "fingerprint": fingerprint::of(repo)?, "subdirectory": thread.state.subdirectory }),
        )?;
        let _: BeginAnswer = conn.call("begin", json!({ "repo": project.repo, "uuid": thread.state.uuid }))?;
        let _: serde_json::Value =
            conn.call("release", json!({ "repo": project.repo, "uuid": thread.state.uuid, "snapshot": snapshot }))?;
        clear_marker(repo, "release", &thread.state.uuid)?;
        conn.close()?;
    } else {
        ui.progress(&format!("{} is already on this computer ({me})", label(thread)));
    }
    Ok(Outcome {
        thread: thread.state.number,
        uuid: thread.state.uuid.clone(),
        host: "local".into(),
        worktree: worktree.unwrap_or_default(),
        branch: thread.state.branch.clone(),
        epoch: thread.state.epoch,
        snapshot: thread.snapshot.to_string(),
        already_there: true,
        dry_run: false,
    })
}

// ------------------------------------------------------- the two halves

pub struct Departure {
    pub to_machine: String,
    /// The machine running the handoff command.
    pub initiator: String,
    pub from: String,
    pub to: String,
    pub branch: Option<String>,
}

/// Snapshot the thread's worktree at the next epoch, owned by the
/// destination, and note it — without moving the thread's ref: until the
/// destination confirms, this machine still owns the thread.
/// `captured` is the worktree's state if it was just taken, else it is taken now.
pub fn departure(
    repo: &Repo,
    worktree: &Repo,
    thread: &Thread,
    to: Departure,
    captured: Option<snapshot::WorktreeState>,
) -> Result<Thread> {
    let me = crate::repo::machine_name(Some(repo));
    let captured = match captured {
        Some(state) => state,
        None => snapshot::capture(worktree)?,
    };
    let mut state = thread.state.clone();
    state.branch = to.branch.or_else(|| captured.branch.clone());
    state.epoch = thread.state.epoch + 1;
    state.owner_machine = to.to_machine.clone();
    state.worktree = Some(worktree.workdir()?.to_string_lossy().into_owned());
    state.updated_at = now_rfc3339();
    state.handoff = Some(Handoff {
        from_machine: me.clone(),
        to_machine: to.to_machine,
        initiator: to.initiator,
        from: to.from,
        to: to.to,
        at: state.updated_at.clone(),
    });
    let transcript = crate::transcript::capture(repo, &thread.state)?;
    store::reset_staged_notes(repo, &thread.state.uuid)?;
    let notes = store::staged_notes_ref(&thread.state.uuid);
    store::write_snapshot(repo, &captured, state, Some(thread), transcript, &notes)
}

/// What to do when the thread's old worktree here has changes it did not make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForeignChanges {
    Refuse,
    NewWorktree,
}

#[derive(Debug, Clone)]
pub struct ArrivalWorktree {
    pub path: PathBuf,
    pub reuse: bool,
}

/// Where a thread arriving here goes: its old worktree if that holds exactly
/// what the thread left there (or what an interrupted arrival put there),
/// else a new one under the worktree root.
pub fn arrival_worktree(
    repo: &Repo,
    uuid: &str,
    number: u64,
    known: Option<&Thread>,
    foreign: ForeignChanges,
) -> Result<ArrivalWorktree> {
    let new_path = || -> Result<PathBuf> {
        let repo_name = repo
            .workdir()
            .ok()
            .or_else(|| repo.common_dir().parent().map(Path::to_path_buf))
            .and_then(|p| p.file_name().map(|n| sanitize(&n.to_string_lossy())))
            .unwrap_or_else(|| "repo".into());
        let base = config::worktree_root()?.join(repo_name);
        let mut path = base.join(format!("{number}-{}", &uuid[..8.min(uuid.len())]));
        let mut n = 2;
        while path.exists() && !is_pending_arrival(repo, uuid, &path)? {
            path = base.join(format!("{number}-{}-{n}", &uuid[..8.min(uuid.len())]));
            n += 1;
        }
        Ok(path)
    };
    let old = threads::worktree_record(repo, uuid)?.filter(|p| p.exists());
    let (Some(old), Some(thread)) = (old, known) else {
        return Ok(ArrivalWorktree { path: new_path()?, reuse: false });
    };
    if is_pending_arrival(repo, uuid, &old)? || untouched(repo, thread, &old)? {
        return Ok(ArrivalWorktree { path: old, reuse: true });
    }
    match foreign {
        ForeignChanges::NewWorktree => Ok(ArrivalWorktree { path: new_path()?, reuse: false }),
        ForeignChanges::Refuse => Err(Error::refused(
            "worktree_changed",
            format!("the thread's worktree {} has changes the thread did not make", old.display()),
        )
        .with_help("commit, stash or discard them there (or remove that worktree), then hand the thread off again")),
    }
}

fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '-' })
        .collect();
    let cleaned = cleaned.trim_matches(|c| c == '-' || c == '.').to_owned();
    if cleaned.is_empty() {
        "repo".into()
    } else {
        cleaned
    }
}

/// Does the worktree at `path` hold exactly the state of the last snapshot
/// this machine took there?
fn untouched(repo: &Repo, thread: &Thread, path: &Path) -> Result<bool> {
    let me = crate::repo::machine_name(Some(repo));
    let path_text = path.to_string_lossy();
    let last_taken_here = threads::history(repo, thread)?.into_iter().find(|(_, s)| {
        s.source_machine.as_deref() == Some(me.as_str()) && s.worktree.as_deref() == Some(path_text.as_ref())
    });
    let Some((snapshot, state)) = last_taken_here else { return Ok(false) };
    let expected = Expected::of(repo, &Thread { snapshot, state })?;
    let worktree = Repo::open(path)?;
    let index = worktree.gix.index_or_empty()?;
    if snapshot::check_capturable(&worktree, &index).is_err() {
        return Ok(false);
    }
    let mut now = snapshot::capture(&worktree)?;
    let mut then = expected.state;
    now.intent_to_add.sort();
    then.intent_to_add.sort();
    Ok(now == then)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Arrival {
    pub worktree: String,
    pub branch: Option<String>,
    pub epoch: u64,
    pub snapshot: String,
}

/// Make the snapshot `snapshot` (present here with its note) the thread's
/// state on this machine: restore and verify it in a worktree, then record
/// this machine as the owner. Running it again after an interruption
/// finishes the job.
pub fn arrival(repo: &Repo, snapshot: ObjectId, me: &str, foreign: ForeignChanges) -> Result<Arrival> {
    let state = store::read_note(repo, snapshot)?;
    let uuid = state.uuid.clone();
    let current = store::load(repo, &uuid)?;
    if let Some(current) = &current {
        if current.snapshot == snapshot {
            let worktree = threads::worktree_record(repo, &uuid)?.unwrap_or_default();
            return Ok(Arrival {
                worktree: worktree.to_string_lossy().into_owned(),
                branch: state.branch,
                epoch: state.epoch,
                snapshot: snapshot.to_string(),
            });
        }
        if current.state.epoch >= state.epoch {
            return Err(Error::refused(
                "stale_handoff",
                format!(
                    "this machine has thread {} at epoch {}, newer than the incoming epoch {}",
                    uuid, current.state.epoch, state.epoch
                ),
            )
            .with_help("the handoff was overtaken by another; check `git codex-handoff thread log`"));
        }
    }
    if state.owner_machine != me {
        return Err(Error::refused(
            "not_for_this_machine",
            format!("the incoming snapshot hands the thread to {}, not to {me}", state.owner_machine),
        )
        .with_help("check codex-handoff.machine on both machines"));
    }
    let incoming = Thread { snapshot, state };
    let expected = Expected::of(repo, &incoming)?;
    let transcript = store::transcript_blob(repo, store::parse_hex(&incoming.state.data_commit)?)?;
    crate::transcript::check_incoming(repo, &incoming.state, transcript)?;
    let target = arrival_worktree(repo, &uuid, incoming.state.number, current.as_ref(), foreign)?;
    set_marker(repo, "arrival", &uuid, &json!({ "worktree": target.path }))?;
    let restored = if target.reuse {
        restore::into_existing_worktree(repo, &expected, &target.path, false)?
    } else {
        if target.path.exists() {
            // What an interrupted arrival left: it never held anything else.
            let _ = Git::new(repo.common_dir(), None).run([
                std::ffi::OsStr::new("worktree"),
                "remove".as_ref(),
                "--force".as_ref(),
                target.path.as_os_str(),
            ]);
            let _ = std::fs::remove_dir_all(&target.path);
        }
        if let Some(parent) = target.path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        restore::into_new_worktree(repo, &expected, &target.path, false)?
    };
    crate::transcript::install(repo, &incoming.state, transcript, &restored.worktree)?;
    store::move_thread_ref(repo, &uuid, current.map(|c| c.snapshot), snapshot)?;
    threads::set_worktree_record(repo, &uuid, &restored.worktree)?;
    clear_marker(repo, "arrival", &uuid)?;
    Ok(Arrival {
        worktree: restored.worktree.to_string_lossy().into_owned(),
        branch: restored.branch,
        epoch: incoming.state.epoch,
        snapshot: snapshot.to_string(),
    })
}

/// Refusals that need the incoming snapshot, checked before anything here
/// changes (notes are merged only afterwards); the incoming refs are removed
/// on refusal.
pub fn check_incoming(repo: &Repo, uuid: &str, snapshot: ObjectId) -> Result<()> {
    let checked = (|| {
        let state = store::read_note_in(repo, snapshot, &store::incoming_ref(uuid, "notes"))?;
        let transcript = store::transcript_blob(repo, store::parse_hex(&state.data_commit)?)?;
        crate::transcript::check_incoming(repo, &state, transcript)
    })();
    if checked.is_err() {
        let _ = store::delete_refs_under(repo, &format!("refs/codex-handoff/incoming/{uuid}/"));
    }
    checked
}

pub fn merge_incoming_notes(repo: &Repo, uuid: &str) -> Result<()> {
    if let Some(notes) = store::ref_target(repo, &store::incoming_ref(uuid, "notes"))? {
        store::merge_notes(repo, notes)?;
    }
    Ok(())
}

// ------------------------------------------------------------- markers

/// A marker says an interrupted step must be finished by the next run.
fn marker_path(repo: &Repo, kind: &str, uuid: &str) -> Result<PathBuf> {
    let dir = repo.private_dir()?.join("pending");
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(format!("{kind}-{uuid}.json")))
}

fn set_marker(repo: &Repo, kind: &str, uuid: &str, value: &serde_json::Value) -> Result<()> {
    let path = marker_path(repo, kind, uuid)?;
    std::fs::write(&path, serde_json::to_vec(value).expect("marker serializes"))?;
    Ok(())
}

fn read_marker(repo: &Repo, kind: &str, uuid: &str) -> Result<Option<serde_json::Value>> {
    match std::fs::read(marker_path(repo, kind, uuid)?) {
        Ok(data) => Ok(serde_json::from_slice(&data).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn clear_marker(repo: &Repo, kind: &str, uuid: &str) -> Result<()> {
    let _ = std::fs::remove_file(marker_path(repo, kind, uuid)?);
    Ok(())
}

fn is_pending_arrival(repo: &Repo, uuid: &str, path: &Path) -> Result<bool> {
    Ok(read_marker(repo, "arrival", uuid)?
        .and_then(|m| m["worktree"].as_str().map(PathBuf::from))
        .is_some_and(|p| p == path))
}

// ----------------------------------------------------------------- git

fn push(repo: &Repo, conn: &Connection, remote_repo: &str, refspecs: &[String]) -> Result<()> {
    let mut cmd =
        Git::new(repo.common_dir(), None).command(["push", "--atomic", "--porcelain", "--no-verify", "--quiet"]);
    cmd.arg(conn.git_url(remote_repo)).args(refspecs);
    for (k, v) in conn.git_env() {
        cmd.env(k, v);
    }
    crate::git::run_command(&mut cmd, None)
        .map(|_| ())
        .map_err(|e| Error::failed("push_failed", format!("could not push to {}: {}", conn.host.name, e.message)))
}

fn fetch(repo: &Repo, conn: &Connection, remote_repo: &str, uuid: &str) -> Result<()> {
    let mut cmd = Git::new(repo.common_dir(), None).command(["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"]);
    cmd.arg(conn.git_url(remote_repo));
    cmd.arg(format!("+{}:{}", store::outgoing_ref(uuid), store::incoming_ref(uuid, "snapshot")));
    cmd.arg(format!("+{}:{}", store::staged_notes_ref(uuid), store::incoming_ref(uuid, "notes")));
    for (k, v) in conn.git_env() {
        cmd.env(k, v);
    }
    crate::git::run_command(&mut cmd, None)
        .map(|_| ())
        .map_err(|e| Error::failed("fetch_failed", format!("could not fetch from {}: {}", conn.host.name, e.message)))
}

// ------------------------------------------------------ protocol answers

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectMatch {
    /// The repository's common git dir on the host (what git pushes to).
    pub repo: String,
    /// The saved project directory.
    pub project: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanAnswer {
    pub worktree: String,
    pub reuse: bool,
    /// Where the branch points on the host now, if it exists there.
    pub branch_tip: Option<String>,
    /// Another worktree on the host that has the branch checked out.
    pub branch_checked_out: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteThread {
    pub epoch: u64,
    pub owner_machine: String,
    pub snapshot: String,
    #[serde(default)]
    pub worktree: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BeginAnswer {
    pub thread: Option<RemoteThread>,
}

pub type ArrivalAnswer = Arrival;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DepartAnswer {
    pub snapshot: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusAnswer {
    pub branch: Option<String>,
    pub changes: Changes,
    #[serde(default)]
    pub running: bool,
    #[serde(default)]
    pub transcript_bytes: Option<u64>,
}
