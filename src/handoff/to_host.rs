//! Handing a thread from this computer to a host: plan, snapshot, push,
//! the host restores, then this computer records the new owner.

use std::cell::Cell;

use super::arrival::merge_incoming_notes;
use super::carry;
use super::departure::{departure, Departure};
use super::locate::{find_project, thread_heads};
use super::request::{label, present, Interaction, Outcome, Plan, Request};
use super::stopped::At;
use super::transfer::{fetch_record, send_to_host, Beside};
use super::wire::{ArrivalAnswer, BeginAnswer, PlanAnswer, ProjectMatch, RemoteThread};
use gix::ObjectId;
use serde_json::json;

use crate::config::Host;
use crate::error::{Error, Result};
use crate::fault::{self, Step};
use crate::fingerprint::Identity;
use crate::machine::Machine;
use crate::remote::transport::Connection;
use crate::repo::Repo;
use crate::thread;
use crate::thread::carried;
use crate::thread::case_fold;
use crate::thread::state::{DetachedOn, ThreadState};
use crate::thread::store::{self, Thread};
use crate::worktree::capture;

pub(super) fn run(
    repo: &Repo,
    thread: Thread,
    host: &Host,
    request: &Request,
    ui: &mut dyn Interaction,
) -> Result<Outcome> {
    let (mut conn, at) = (None, Cell::new(At::Start { here: true }));
    steps(repo, thread, host, request, ui, &mut conn, &at)
        .map_err(|e| super::stopped::told(e, conn.as_mut(), &host.name, at.get()))
}

/// The handoff, step by step: `conn` holds the connection once made, `at` where the thread is.
fn steps(
    repo: &Repo,
    thread: Thread,
    host: &Host,
    request: &Request,
    ui: &mut dyn Interaction,
    conn: &mut Option<Connection>,
    at: &Cell<At>,
) -> Result<Outcome> {
    let slot = conn;
    let me = Machine::this(Some(repo))?;
    let worktree = thread::thread_worktree(repo, &thread)?;
    let running = crate::thread::running::current(repo, &thread.state.uuid)?;
    if running.is_some() && request.no_interrupt {
        crate::thread::running::stop_for_handoff(repo, &thread.state.uuid, true, request.interrupt_timeout)?;
    }
    // Refuse what cannot be carried before connecting anywhere.
    let index = worktree.gix.index_or_empty()?;
    capture::check_capturable(&worktree, &index)?;
    // A branch whose name cannot travel is refused here, not after connecting.
    capture::head_of(&worktree)?;
    let needs = carried::needs(&worktree)?;
    if needs.lfs {
        crate::worktree::lfs::check_available(&worktree, "this computer")?;
    }
    let identity = Identity::of_this_clone(repo)?;
    // A thread at rest, handed off without a question, is captured while the
    // connection is made; a running one only after it has been interrupted.
    let early = if running.is_none() && !request.interactive && !request.dry_run {
        let handle = thread::thread_worktree(repo, &thread)?;
        Some(std::thread::spawn(move || capture::capture_counted(&handle)))
    } else {
        None
    };
    ui.progress(&format!("connecting to {} ({})", host.name, host.ssh));
    let conn = slot.insert(super::request::connect(host, ui)?);
    let (captured, changes) = match early {
        Some(handle) => {
            let (state, changes) = handle
                .join()
                .map_err(|_| Error::failed("snapshot_failed", "taking the snapshot failed unexpectedly"))??;
            (Some(state), changes)
        }
        None => (None, capture::count_changes(&worktree)?),
    };
    let (head, current_branch) = match &captured {
        Some(state) => (state.head, state.branch.clone()),
        None => capture::head_of(&worktree)?,
    };
    let heads = thread_heads(repo, head, thread.snapshot);
    let project = find_project(conn, repo, &identity, &thread.state.subdirectory, &heads)?;
    // First what an interrupted handoff left on the host: repaired there, or
    // (when it had finished there) recorded here.
    let begun: BeginAnswer =
        conn.call("begin", json!({ "repo": project.repo, "uuid": thread.state.uuid, "recover": !request.dry_run }))?;
    for repair in &begun.repairs {
        ui.progress(&format!("{}: {repair}", host.name));
    }
    if let Some(remote) = &begun.thread {
        if remote.epoch > thread.state.epoch {
            if remote.owned_by(&conn.hello) {
                if request.dry_run {
                    ui.progress(&format!(
                        "an earlier handoff of {} to {} had finished there; without --dry-run it is recorded here",
                        label(&thread),
                        host.name
                    ));
                    return Ok(already(&thread, host, remote, true));
                }
                // An earlier run finished on the host; only this computer's record is behind.
                at.set(At::NowThere);
                let outcome = adopt_remote(repo, conn, &project, &thread, host, remote, ui)?;
                close(slot)?;
                return Ok(outcome);
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
    // A worktree here that works detached (its branch checked out elsewhere here) still carries the branch.
    let (carried, _) = thread.state.branch_from_worktree(current_branch, &me);
    let branch = request.branch.clone().or(carried);
    let answer: PlanAnswer = conn.call(
        "plan",
        json!({ "repo": project.repo, "uuid": thread.state.uuid, "number": thread.state.number,
                "branch": branch, "head": head.map(|h| h.to_string()), "host": host.name,
                "codex_thread": thread.state.transcript.codex_session,
                "codex_created": crate::thread::transcript::codex_created(repo, &thread.state),
                "needs": needs }),
    )?;
    // Where names that differ only in case are one file, two such files of the thread cannot both arrive.
    if answer.case_insensitive {
        case_fold::refuse(&case_fold::in_worktree(&worktree)?, &label(&thread), &host.name)?;
    }
    let there = Machine { id: conn.hello.machine_id.clone(), name: conn.hello.machine.clone() };
    let detached = detached_there(branch.as_deref(), request.detach, &answer, &there);
    let branch_action = branch_action(repo, host, branch.as_deref(), head, &answer, detached.is_some())?;
    let plan = Plan {
        thread: thread.state.number,
        uuid: thread.state.uuid.clone(),
        title: thread.state.title.clone(),
        from: "local".into(),
        to: host.name.clone(),
        through_here: false,
        worktree: answer.worktree.clone(),
        reuse_worktree: answer.reuse,
        branch: branch.clone(),
        branch_action,
        detached: detached.is_some(),
        branch_checked_out_in: detached.as_ref().and_then(|d| d.checked_out_in.clone()),
        changes,
        transcript_bytes: crate::thread::transcript::current_size(repo, &thread.state)
            .unwrap_or(thread.state.transcript.size),
        codex: answer.codex.clone(),
        running: running.is_some(),
    };
    if let Some(stop) = present(&plan, &thread, request, ui)? {
        return Ok(stop);
    }
    fault::point(Step::ToHostBegun);
    at.set(At::StillHere);

    let captured = if crate::thread::running::stop_for_handoff(
        repo,
        &thread.state.uuid,
        request.no_interrupt,
        request.interrupt_timeout,
    )? {
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
            to_machine: there,
            initiator: me.clone(),
            from: "local".into(),
            to: host.name.clone(),
            branch: request.branch.clone(),
            detached,
            to_worktree: Some(answer.worktree.clone()),
        },
        captured,
    )?;
    fault::point(Step::ToHostDeparted);
    let uuid = thread.state.uuid.clone();
    ui.progress(&format!("pushing to {}", host.name));
    let sent = store::ref_target(repo, &store::staged_notes_ref(&uuid))
        .and_then(|notes| notes.ok_or_else(|| Error::failed("notes", "the departure left no staged note")))
        .and_then(|notes| {
            // The incoming refs on the host, by name, and what each gets.
            let mut refs = vec![("snapshot", departing.snapshot), ("notes", notes)];
            if let Some(head) = &departing.state.head {
                refs.push(("head", store::parse_hex(head)?));
            }
            let carried = carry::of_departure(repo, &worktree, &departing)?;
            // Submodule snapshots first: the snapshot that names them arrives last.
            carry::push_submodules(conn, &project.repo, &uuid, &carried.modules)?;
            if let Some(lfs) = carry::lfs_carrier_for_host(repo, conn, &project.repo, &uuid, &carried.lfs)? {
                refs.push(("lfs", lfs));
            }
            let beside = carry::transcript_to_host(repo, conn, &project.repo, &uuid, &departing)?;
            let big = crate::worktree::big_files::recorded(&worktree);
            send_to_host(
                repo,
                conn,
                &project.repo,
                &uuid,
                &refs,
                &answer.haves,
                Beside { transcript: beside, big: &big },
            )
        })
        .and_then(|()| {
            fault::point(Step::ToHostPushed);
            ui.progress(&format!("restoring on {}", host.name));
            conn.call_then::<ArrivalAnswer>(
                "receive",
                json!({ "repo": project.repo, "uuid": uuid, "snapshot": departing.snapshot.to_string(),
                        "host": host.name, "planned": !request.interactive }),
                || {
                    at.set(At::Arriving);
                    fault::point(Step::ToHostReceiving)
                },
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
    fault::point(Step::ToHostReceived);
    at.set(At::NowThere);
    // Only now does this computer record the new owner.
    store::publish_staged_notes(repo, &uuid)?;
    fault::point(Step::ToHostNotesPublished);
    store::move_thread_ref(repo, &uuid, Some(thread.snapshot), departing.snapshot)?;
    fault::point(Step::ToHostRecorded);
    let_go_here(repo, &uuid, &me, ui)?;
    let moved = slot.as_ref().map(|c| c.moved).unwrap_or_default();
    let kept = match slot.take() {
        Some(conn) if request.attach => Some(super::request::Kept { conn, repo: project.repo.clone() }),
        conn => {
            conn.map(Connection::close).transpose()?;
            None
        }
    };
    let (worktree, owner_worktree) =
        super::request::placed(&host.name, Some(&arrived.worktree), &thread.state.subdirectory);
    Ok(Outcome {
        thread: thread.state.number,
        uuid,
        host: host.name.clone(),
        worktree,
        owner_worktree,
        branch: arrived.branch,
        detached: arrived.detached,
        epoch: departing.state.epoch,
        snapshot: departing.snapshot.to_string(),
        already_there: false,
        dry_run: false,
        sent_bytes: moved.sent,
        received_bytes: moved.received,
        kept,
    })
}

/// End the session on the connection in `slot`, if one is open.
fn close(slot: &mut Option<Connection>) -> Result<()> {
    slot.take().map(Connection::close).transpose().map(|_| ())
}

/// DESIGN §5: a branch checked out in another worktree on the host (or
/// `--detach`) makes the thread work on a detached HEAD there, leaving that
/// worktree and the branch alone.
pub(super) fn detached_there(
    branch: Option<&str>,
    detach: bool,
    answer: &PlanAnswer,
    there: &Machine,
) -> Option<DetachedOn> {
    branch?;
    match &answer.branch_checked_out {
        Some(other) => Some(DetachedOn::on(there, Some(other.clone()))),
        None => detach.then(|| DetachedOn::on(there, None)),
    }
}

/// What the host's branch will do, refusing early (before anything changes)
/// when it has diverged there.
pub(super) fn branch_action(
    repo: &Repo,
    host: &Host,
    branch: Option<&str>,
    head: Option<ObjectId>,
    answer: &PlanAnswer,
    detached: bool,
) -> Result<String> {
    let Some(branch) = branch else { return Ok("detached HEAD".into()) };
    if detached {
        if head.is_none() {
            // An unborn branch has no commit to detach at.
            let other = answer.branch_checked_out.as_deref().unwrap_or("another worktree");
            return Err(Error::refused(
                "branch_checked_out",
                format!("branch {branch} has no commits yet and is checked out on {}: {other}", host.name),
            )
            .with_help("hand the thread off onto a new branch with `--branch NEW`, or switch that worktree away"));
        }
        return Ok("detached HEAD".into());
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
pub(super) fn adopt_remote(
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
    let state = record_remote(repo, conn, project, thread, remote)?;
    ui.progress(&format!("an earlier handoff to {} had finished there; recording it here", host.name));
    // Whatever changed here since that handoff stayed here, untouched: say so.
    if let Ok(worktree) = thread::thread_worktree(repo, thread) {
        let carried = Thread { snapshot, state: state.clone() };
        let modules = crate::worktree::submodules::ModuleSource::Worktree(worktree.workdir()?);
        let same = match (capture::capture(&worktree), carried.expected(repo, &modules)) {
            (Ok(now), Ok(then)) => {
                now.worktree_tree == then.state.worktree_tree && now.index_tree == then.state.index_tree
            }
            _ => true,
        };
        if !same {
            ui.progress(&format!(
                "{} changed after that handoff; those changes stayed there and are not part of the thread",
                worktree.workdir()?.display()
            ));
        }
    }
    let_go_here(repo, &thread.state.uuid, &Machine::this(Some(repo))?, ui)?;
    let mut outcome = already(thread, host, remote, false);
    outcome.epoch = state.epoch;
    outcome.detached = state.branch_detached_on.is_some() && state.branch.is_some();
    outcome.branch = state.branch;
    Ok(outcome)
}

/// Record here that the host owns `thread` at its newer snapshot
/// `remote.snapshot` (fetched from it unless this computer has it and its
/// note), checked before anything here takes it in. Returns its state.
pub(super) fn record_remote(
    repo: &Repo,
    conn: &mut Connection,
    project: &ProjectMatch,
    thread: &Thread,
    remote: &RemoteThread,
) -> Result<ThreadState> {
    let snapshot = store::parse_hex(&remote.snapshot)?;
    let uuid = &thread.state.uuid;
    let fetched = repo.gix.find_commit(snapshot).is_err() || store::read_note(repo, snapshot).is_err();
    if fetched {
        fetch_record(repo, conn, &project.repo, uuid)?;
    }
    // What the host says finished there is checked before anything here takes it in.
    let checked = check_adopted(repo, thread, snapshot, fetched);
    if fetched {
        if checked.is_ok() {
            merge_incoming_notes(repo, uuid)?;
        }
        store::delete_refs_under(repo, &format!("refs/codex-handoff/incoming/{uuid}/"))?;
    }
    let state = checked?;
    store::move_thread_ref(repo, uuid, Some(thread.snapshot), snapshot)?;
    Ok(state)
}

/// The state the host recorded for `thread` at `snapshot`: a note about
/// this thread (not another's), at a later epoch than this computer's.
fn check_adopted(repo: &Repo, thread: &Thread, snapshot: ObjectId, fetched: bool) -> Result<ThreadState> {
    let uuid = &thread.state.uuid;
    let state = if fetched {
        store::read_note_in(repo, snapshot, &store::incoming_ref(uuid, "notes"))?
    } else {
        store::read_note(repo, snapshot)?
    };
    state.check_arrived(uuid)?;
    if state.epoch <= thread.state.epoch {
        return Err(Error::refused(
            "bad_note",
            format!(
                "refused the host's record of thread {uuid}: snapshot {snapshot} (epoch {}) is not later than this \
                 computer's snapshot {} (epoch {})",
                state.epoch, thread.snapshot, thread.state.epoch
            ),
        )
        .with_help("it was not written by git-codex-handoff; nothing was changed here"));
    }
    Ok(state)
}

fn already(thread: &Thread, host: &Host, remote: &RemoteThread, dry_run: bool) -> Outcome {
    let (worktree, owner_worktree) =
        super::request::placed(&host.name, remote.worktree.as_deref(), &thread.state.subdirectory);
    Outcome {
        thread: thread.state.number,
        uuid: thread.state.uuid.clone(),
        host: host.name.clone(),
        worktree,
        owner_worktree,
        branch: thread.state.branch.clone(),
        detached: false,
        epoch: remote.epoch,
        snapshot: remote.snapshot.clone(),
        already_there: true,
        dry_run,
        sent_bytes: 0,
        received_bytes: 0,
        kept: None,
    }
}

/// The thread has left: a worktree a handoff made here lets go of its branch.
fn let_go_here(repo: &Repo, uuid: &str, me: &Machine, ui: &mut dyn Interaction) -> Result<()> {
    if let Some(thread) = store::load(repo, uuid)? {
        if let Some(done) = thread::let_go_of_branch(repo, &thread, me)? {
            ui.progress(&done);
        }
    }
    Ok(())
}

/// `git codex-handoff 42 devbox` when this computer has recorded 42 on
/// devbox: that record is written only after devbox confirmed, so there is
/// nothing left to do.
pub(super) fn already_on_host(repo: &Repo, thread: &Thread, host: &Host, ui: &mut dyn Interaction) -> Result<Outcome> {
    ui.progress(&format!("{} is already on {}", label(thread), host.name));
    let me = Machine::this(Some(repo))?;
    Ok(Outcome {
        thread: thread.state.number,
        uuid: thread.state.uuid.clone(),
        host: host.name.clone(),
        worktree: None,
        owner_worktree: thread::owner_worktree(repo, thread, &me).map(|p| p.to_string_lossy().into_owned()),
        branch: thread.state.branch.clone(),
        detached: thread.state.branch.is_some() && thread.state.branch_detached_on.is_some(),
        epoch: thread.state.epoch,
        snapshot: thread.snapshot.to_string(),
        already_there: true,
        dry_run: false,
        sent_bytes: 0,
        received_bytes: 0,
        kept: None,
    })
}
