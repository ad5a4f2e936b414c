//! Host to host (`42 devbox2` while devbox owns the thread), driven from
//! this computer: devbox departs towards devbox2, the snapshot, its notes
//! and transcript come into this computer's object store (never into a
//! worktree here), go on to devbox2, which restores and owns the thread,
//! then this computer records that and devbox lets go.
//!
//! From before the snapshot can reach devbox2 until devbox has let go, a
//! `relay` marker here says so; the next run for the thread settles it
//! first ([`settle`]): it asks devbox2 whether the thread arrived (then
//! records it here and has devbox let go) or not (then it is still on
//! devbox), so that exactly one machine owns the thread whatever step died.

use gix::ObjectId;
use serde_json::json;

use super::carry;
use super::locate::{find_project, thread_heads};
use super::markers::{clear_marker, read_marker, set_marker, RelayMarker, RELAY};
use super::request::{label, owner_there, present, Interaction, Outcome, Plan, Request};
use super::to_host::{detached_there, record_remote};
use super::to_local::release;
use super::transfer::{fetch_departed, send_to_host, Beside};
use super::wire::{ArrivalAnswer, BeginAnswer, DepartAnswer, DescendsAnswer, PlanAnswer, ProjectMatch, StatusAnswer};

use crate::config::{self, Host};
use crate::error::{Error, Result};
use crate::fault::{self, Step};
use crate::fingerprint::Identity;
use crate::machine::Machine;
use crate::remote::transport::Connection;
use crate::repo::Repo;
use crate::thread;
use crate::thread::state::DetachedOn;
use crate::thread::store::{self, Thread};

/// One end of the relay: the connection and the thread's project there.
struct End {
    conn: Connection,
    project: ProjectMatch,
}

impl End {
    fn open(repo: &Repo, host: &Host, thread: &Thread, ui: &mut dyn Interaction) -> Result<End> {
        ui.progress(&format!("connecting to {} ({})", host.name, host.ssh));
        let mut conn = super::request::connect(host, ui)?;
        let identity = Identity::of_this_clone(repo)?;
        let head = thread.state.head.as_deref().map(store::parse_hex).transpose()?;
        let heads = thread_heads(repo, head, thread.snapshot);
        let project = find_project(&mut conn, repo, &identity, &thread.state.subdirectory, &heads)?;
        Ok(End { conn, project })
    }

    fn begin(&mut self, uuid: &str, recover: bool, ui: &mut dyn Interaction) -> Result<BeginAnswer> {
        let begun: BeginAnswer =
            self.conn.call("begin", json!({ "repo": self.project.repo, "uuid": uuid, "recover": recover }))?;
        for repair in &begun.repairs {
            ui.progress(&format!("{}: {repair}", self.conn.host.name));
        }
        Ok(begun)
    }
}

pub(super) fn run(
    repo: &Repo,
    thread: Thread,
    from: &Host,
    to: &Host,
    request: &Request,
    ui: &mut dyn Interaction,
) -> Result<Outcome> {
    let me = Machine::this(Some(repo))?;
    let uuid = thread.state.uuid.clone();
    let mut source = End::open(repo, from, &thread, ui)?;
    let mut destination = End::open(repo, to, &thread, ui)?;
    if destination.conn.hello.machine_id == source.conn.hello.machine_id {
        // Two names for one machine: the thread is there already.
        return super::to_host::already_on_host(repo, &thread, to, ui);
    }
    // What an interrupted handoff left on either host first.
    let source_begun = source.begin(&uuid, !request.dry_run, ui)?;
    let destination_begun = destination.begin(&uuid, !request.dry_run, ui)?;
    owner_there(&from.name, &source.conn.hello, source_begun.thread.as_ref(), &thread, "here and on both hosts")?;
    if let Some(remote) = destination_begun.thread.as_ref().filter(|r| r.epoch > thread.state.epoch) {
        return Err(Error::refused(
            "newer_elsewhere",
            format!(
                "{} has a newer state of {} (epoch {}) than this computer (epoch {})",
                to.name,
                label(&thread),
                remote.epoch,
                thread.state.epoch
            ),
        )
        .with_help("run `git codex-handoff thread log` here and on both hosts to see what happened"));
    }

    // Without a question to ask, the host the thread leaves captures its state now, for its departure.
    let keep = !request.interactive && !request.dry_run;
    let status: StatusAnswer =
        source.conn.call("status", json!({ "repo": source.project.repo, "uuid": uuid, "keep": keep }))?;
    carry::check_relay_modules(repo, &status.needs, from, to)?;
    let branch = request.branch.clone().or(status.branch.clone());
    let answer: PlanAnswer = destination.conn.call(
        "plan",
        json!({ "repo": destination.project.repo, "uuid": uuid, "number": thread.state.number,
                "branch": branch, "head": status.head, "host": to.name,
                "codex_thread": thread.state.transcript.codex_session,
                "codex_created": crate::thread::transcript::codex_created(repo, &thread.state),
                "needs": status.needs }),
    )?;
    let there = Machine { id: destination.conn.hello.machine_id.clone(), name: destination.conn.hello.machine.clone() };
    let detached = detached_there(branch.as_deref(), request.detach, &answer, &there);
    let branch_action = branch_there(repo, &mut source, &thread, to, branch.as_deref(), &status, &answer, &detached)?;
    let plan = Plan {
        thread: thread.state.number,
        uuid: uuid.clone(),
        title: thread.state.title.clone(),
        from: from.name.clone(),
        to: to.name.clone(),
        through_here: true,
        worktree: answer.worktree.clone(),
        reuse_worktree: answer.reuse,
        branch: branch.clone(),
        branch_action,
        detached: detached.is_some(),
        branch_checked_out_in: detached.as_ref().and_then(|d| d.checked_out_in.clone()),
        changes: status.changes.clone(),
        transcript_bytes: status.transcript_bytes.unwrap_or(thread.state.transcript.size),
        codex: answer.codex.clone(),
        running: status.running,
    };
    if let Some(stop) = present(&plan, &thread, request, ui)? {
        return Ok(stop);
    }
    fault::point(Step::RelayBegun);

    ui.progress(&format!("taking a snapshot on {}", from.name));
    let epoch = thread.state.epoch + 1;
    let departed: DepartAnswer = source.conn.call(
        "depart",
        json!({ "repo": source.project.repo, "uuid": uuid, "epoch": epoch,
                "to_machine": there.name, "to_machine_id": there.id,
                "from": from.name, "to": to.name, "initiator": me.name, "initiator_id": me.id,
                "branch": request.branch, "detached": detached.is_some(),
                "checked_out_in": detached.as_ref().and_then(|d| d.checked_out_in.clone()),
                "no_interrupt": request.no_interrupt,
                "interrupt_timeout_ms": request.interrupt_timeout.as_millis() as u64, "kept": keep,
                "to_worktree": answer.worktree }),
    )?;
    fault::point(Step::RelayDeparted);
    let snapshot = store::parse_hex(&departed.snapshot)?;
    ui.progress(&format!("fetching from {} (into this computer's object store only)", from.name));
    let incoming = format!("refs/codex-handoff/incoming/{uuid}/");
    store::delete_refs_under(repo, &incoming)?;
    let fetched = take_in(repo, &mut source, &mut destination, &thread, &departed, snapshot, &there);
    let (notes, lfs) = match fetched {
        Ok(fetched) => fetched,
        Err(e) => {
            crate::thread::carried::clean_incoming(repo, &uuid);
            return Err(e);
        }
    };
    // From here the destination may get the thread: the relay is recorded first.
    let marker =
        RelayMarker { from: from.name.clone(), to: to.name.clone(), snapshot: departed.snapshot.clone(), epoch };
    set_marker(repo, RELAY, &uuid, &marker)?;
    fault::point(Step::RelayFetched);

    ui.progress(&format!("pushing to {}", to.name));
    let arrived = send_on(repo, &mut destination, &uuid, (snapshot, notes, lfs), &answer, request);
    let arrived = match arrived {
        Ok(arrived) => arrived,
        Err(e) => return Err(not_taken(repo, &mut destination, &thread, &marker, e)),
    };
    fault::point(Step::RelayReceived);
    // Only now does this computer record the new owner.
    super::arrival::merge_incoming_notes(repo, &uuid)?;
    store::move_thread_ref(repo, &uuid, Some(thread.snapshot), snapshot)?;
    crate::thread::carried::clean_incoming(repo, &uuid);
    fault::point(Step::RelayRecorded);
    release(&mut source.conn, &source.project, &uuid, &departed.snapshot, from, ui).map_err(|e| {
        let mut told = Error::new(
            e.kind,
            e.code,
            format!("{} is on {} now, but {} has not let go of it: {}", label(&thread), to.name, from.name, e.message),
        );
        told.help = Some(format!(
            "run `git codex-handoff {} {}` again: it tells {} to let go",
            thread.state.number, to.name, from.name
        ));
        told
    })?;
    fault::point(Step::RelayReleased);
    clear_marker(repo, RELAY, &uuid)?;
    let moved = (destination.conn.moved.sent, source.conn.moved.received);
    source.conn.close()?;
    let kept = if request.attach {
        Some(super::request::Kept { conn: destination.conn, repo: destination.project.repo.clone() })
    } else {
        destination.conn.close()?;
        None
    };
    let (worktree, owner_worktree) =
        super::request::placed(&to.name, Some(&arrived.worktree), &thread.state.subdirectory);
    Ok(Outcome {
        thread: thread.state.number,
        uuid,
        host: to.name.clone(),
        worktree,
        owner_worktree,
        branch: arrived.branch,
        detached: arrived.detached,
        epoch: arrived.epoch,
        snapshot: departed.snapshot,
        already_there: false,
        dry_run: false,
        sent_bytes: moved.0,
        received_bytes: moved.1,
        kept,
    })
}

/// What the destination's branch will do, refusing early (before anything
/// changes) when it has diverged there from the thread's HEAD on the host
/// it leaves (asked there when this computer lacks that HEAD).
#[allow(clippy::too_many_arguments)]
fn branch_there(
    repo: &Repo,
    source: &mut End,
    thread: &Thread,
    to: &Host,
    branch: Option<&str>,
    status: &StatusAnswer,
    answer: &PlanAnswer,
    detached: &Option<DetachedOn>,
) -> Result<String> {
    let head = status.head.as_deref().map(store::parse_hex).transpose()?;
    let Some(branch) = branch else { return Ok("detached HEAD".into()) };
    if detached.is_some() || answer.branch_tip.is_none() {
        // Detached, or a branch new there: what the host check makes of it is all there is.
        return super::to_host::branch_action(repo, to, Some(branch), head, answer, detached.is_some());
    }
    let tip = store::parse_hex(answer.branch_tip.as_deref().unwrap_or_default())?;
    let diverged = || {
        Err(Error::refused("branch_diverged", format!("branch {branch} on {} has diverged from the thread's", to.name))
            .with_help("hand the thread off onto a new branch with `--branch NEW`"))
    };
    let Some(head) = head else { return diverged() };
    if tip == head {
        return Ok("up to date".into());
    }
    if repo.gix.find_commit(head).is_ok() {
        return if repo.gix.find_commit(tip).is_ok() && repo.is_ancestor(tip, head)? {
            Ok("fast-forward".into())
        } else {
            diverged()
        };
    }
    // The host the thread leaves made commits this computer has not seen: it knows where they grow from.
    let asked: DescendsAnswer = source.conn.call(
        "descends",
        json!({ "repo": source.project.repo, "uuid": thread.state.uuid, "commit": tip.to_string() }),
    )?;
    match asked.descends {
        Some(true) => Ok("fast-forward".into()),
        _ => diverged(),
    }
}

/// The departed snapshot, its notes and transcript, submodule snapshots and
/// the LFS objects the destination lacks, into this computer's object store
/// (under the thread's incoming refs), checked. Returns the notes commit and
/// the LFS carrier to send on.
fn take_in(
    repo: &Repo,
    source: &mut End,
    destination: &mut End,
    thread: &Thread,
    departed: &DepartAnswer,
    snapshot: ObjectId,
    there: &Machine,
) -> Result<(ObjectId, Option<ObjectId>)> {
    let uuid = &thread.state.uuid;
    carry::transcript_from_host(repo, &mut source.conn, &source.project.repo, uuid)?;
    let head = thread.state.head.as_deref().map(store::parse_hex).transpose()?;
    let haves: Vec<ObjectId> =
        [Some(thread.snapshot), head, store::ref_target(repo, store::NOTES_REF)?].into_iter().flatten().collect();
    fetch_departed(repo, &mut source.conn, &source.project.repo, uuid, &haves)?;
    if store::ref_target(repo, &store::incoming_ref(uuid, "snapshot"))? != Some(snapshot) {
        return Err(Error::failed(
            "fetch_mismatch",
            format!("the snapshot fetched from {} is not the one it made", source.conn.host.name),
        ));
    }
    let notes_ref = store::incoming_ref(uuid, "notes");
    let notes =
        store::ref_target(repo, &notes_ref)?.ok_or_else(|| Error::failed("fetch_failed", "no notes came with it"))?;
    // Everything from the wire is checked before it goes on: the thread the request named, at the next epoch,
    // for the destination, and the records that name paths.
    let state = store::read_note_in(repo, snapshot, &notes_ref)?;
    state.check_arrived(uuid)?;
    if state.epoch != thread.state.epoch + 1 || !state.owned_by(there) {
        return Err(Error::refused(
            "bad_note",
            format!(
                "refused what {} sent for {}: it is not the handoff to {} at epoch {}",
                source.conn.host.name,
                label(thread),
                destination.conn.host.name,
                thread.state.epoch + 1
            ),
        )
        .with_help("it was not written by git-codex-handoff; nothing was changed"));
    }
    let data = repo.gix.find_commit(store::parse_hex(&state.data_commit)?)?.tree_id()?.detach();
    crate::worktree::record::read(repo, data)?;
    carry::relay_submodules(
        repo,
        (&source.conn, &source.project.repo),
        (&destination.conn, &destination.project.repo),
        uuid,
        &departed.modules,
    )?;
    let lfs = carry::relay_lfs(
        repo,
        (&mut source.conn, &source.project.repo),
        (&mut destination.conn, &destination.project.repo),
        uuid,
        snapshot,
        &notes_ref,
    )?;
    Ok((notes, lfs))
}

/// Send what came here on to the destination and have it restore the thread there.
fn send_on(
    repo: &Repo,
    destination: &mut End,
    uuid: &str,
    (snapshot, notes, lfs): (ObjectId, ObjectId, Option<ObjectId>),
    answer: &PlanAnswer,
    request: &Request,
) -> Result<ArrivalAnswer> {
    let state = store::read_note_in(repo, snapshot, &store::incoming_ref(uuid, "notes"))?;
    let mut refs = vec![("snapshot", snapshot), ("notes", notes)];
    if let Some(head) = &state.head {
        refs.push(("head", store::parse_hex(head)?));
    }
    if let Some(lfs) = lfs {
        refs.push(("lfs", lfs));
    }
    let departing = Thread { snapshot, state };
    let beside = carry::transcript_to_host(repo, &mut destination.conn, &destination.project.repo, uuid, &departing)?;
    send_to_host(
        repo,
        &mut destination.conn,
        &destination.project.repo,
        uuid,
        &refs,
        &answer.haves,
        Beside { transcript: beside, big: &[] },
    )?;
    fault::point(Step::RelayPushed);
    let to = destination.conn.host.name.clone();
    destination.conn.call_then::<ArrivalAnswer>(
        "receive",
        json!({ "repo": destination.project.repo, "uuid": uuid, "snapshot": snapshot.to_string(),
                "host": to, "planned": !request.interactive }),
        || fault::point(Step::RelayReceiving),
    )
}

/// The destination did not confirm the arrival. If it says it does not have
/// the thread, the relay is over (the thread stays where it was and nothing
/// of it stays here); if it cannot say, the marker stays for the next run.
fn not_taken(repo: &Repo, destination: &mut End, thread: &Thread, marker: &RelayMarker, e: Error) -> Error {
    let uuid = &thread.state.uuid;
    let asked: Result<BeginAnswer> =
        destination.conn.call("begin", json!({ "repo": destination.project.repo, "uuid": uuid, "recover": false }));
    if let Ok(begun) = asked {
        if begun.thread.is_none_or(|t| t.snapshot != marker.snapshot) {
            let _ = clear_marker(repo, RELAY, uuid);
            crate::thread::carried::clean_incoming(repo, uuid);
            return e;
        }
    }
    e.with_help(format!(
        "run `git codex-handoff {} {}` again: it finds out whether {} took {} and finishes or undoes the handoff",
        thread.state.number,
        marker.to,
        marker.to,
        label(thread)
    ))
}

/// A thread that an earlier run was moving from one host to another
/// through this computer: settle where it is before anything else. If the
/// destination has it, record that here; then have the host it left let
/// go. `going_to`: where this run takes the thread (`None`: here); it goes
/// on while that host cannot be told, unless it goes back to that host.
pub(super) fn settle(repo: &Repo, thread: &Thread, going_to: Option<&Host>, ui: &mut dyn Interaction) -> Result<bool> {
    let uuid = &thread.state.uuid;
    let Some(marker) = read_marker::<RelayMarker>(repo, RELAY, uuid)? else { return Ok(false) };
    let snapshot = store::parse_hex(&marker.snapshot)?;
    let recorded = thread::history(repo, thread)?.iter().any(|(id, _)| *id == snapshot);
    if !recorded {
        let to = config::find_host(&marker.to)?;
        ui.progress(&format!(
            "an earlier handoff of {} from {} to {} stopped half-way: asking {} whether it arrived",
            label(thread),
            marker.from,
            marker.to,
            marker.to
        ));
        let unknown = |e: Error| {
            let mut told = Error::new(
                e.kind,
                e.code.clone(),
                format!(
                    "an earlier handoff of {} from {} to {} stopped half-way, and {} cannot say whether it arrived: {}",
                    label(thread),
                    marker.from,
                    marker.to,
                    marker.to,
                    e.message
                ),
            );
            told.help = Some(format!(
                "run the command again when {} can be reached; until then nothing moves the thread",
                marker.to
            ));
            told
        };
        let mut destination = End::open(repo, &to, thread, ui).map_err(unknown)?;
        let begun = destination.begin(uuid, true, ui).map_err(unknown)?;
        let arrived = begun
            .thread
            .filter(|t| t.owned_by(&destination.conn.hello) && t.epoch > thread.state.epoch && t.epoch >= marker.epoch);
        match arrived {
            Some(remote) => {
                // A run that stopped before merging left what it fetched under the incoming refs: gone already.
                record_remote(repo, &mut destination.conn, &destination.project, thread, &remote)?;
                ui.progress(&format!(
                    "an earlier handoff from {} to {} had finished there; recording it here",
                    marker.from, marker.to
                ));
            }
            None => {
                clear_marker(repo, RELAY, uuid)?;
                ui.progress(&format!(
                    "an earlier handoff to {} had not arrived there; {} is still on {}",
                    marker.to,
                    label(thread),
                    marker.from
                ));
                destination.conn.close()?;
                return Ok(true);
            }
        }
        destination.conn.close()?;
    }
    // Recorded here: the host the thread left still has to let go.
    let from = config::find_host(&marker.from)?;
    ui.progress(&format!("finishing the earlier handoff: telling {} to let go of {}", from.name, label(thread)));
    let released = (|| {
        let mut source = End::open(repo, &from, thread, ui)?;
        source.begin(uuid, true, ui)?;
        release(&mut source.conn, &source.project, uuid, &marker.snapshot, &from, ui)?;
        source.conn.close()
    })();
    match released {
        Ok(()) => clear_marker(repo, RELAY, uuid)?,
        Err(e) if going_to.is_none_or(|h| h.name != from.name) => ui.progress(&format!(
            "{} has not let go of {} yet ({}); the next handoff of it tells it",
            from.name,
            label(thread),
            e.message
        )),
        Err(e) => return Err(e),
    }
    Ok(true)
}
