//! Bringing a thread back from a host: the host snapshots, this computer
//! fetches and restores it, then the host lets go.

use std::cell::Cell;

use super::arrival::{
    arrival, arrival_worktree, check_incoming, merge_incoming_notes, pending_arrival_worktree, ArrivalWorktree,
    ForeignChanges,
};
use super::locate::{find_project, thread_heads};
use super::markers::{clear_marker, read_marker, set_marker, ReleaseMarker, RELEASE};
use super::request::{label, owner_there, present, Interaction, Outcome, Plan, Request};
use super::stopped::At;
use super::transfer::fetch_departed;
use super::wire::{BeginAnswer, DepartAnswer, DescendsAnswer, ProjectMatch, StatusAnswer};
use super::{carry, space};
use serde_json::json;

use crate::config::{self, Host};
use crate::error::{Error, Result};
use crate::fault::{self, Step};
use crate::fingerprint::Identity;
use crate::machine::Machine;
use crate::promisor;
use crate::remote::transport::Connection;
use crate::repo::Repo;
use crate::thread;
use crate::thread::store::{self, Thread};
use crate::worktree::restore;

pub(super) fn run(
    repo: &Repo,
    thread: Thread,
    host: &Host,
    request: &Request,
    ui: &mut dyn Interaction,
) -> Result<Outcome> {
    let (mut conn, at) = (None, Cell::new(At::Start { here: false }));
    steps(repo, thread, host, request, ui, &mut conn, &at)
        .map_err(|e| super::stopped::told(e, conn.as_mut(), &host.name, at.get()))
}

/// The hand-back, step by step: `slot` holds the connection once made, `at` where the thread is.
fn steps(
    repo: &Repo,
    thread: Thread,
    host: &Host,
    request: &Request,
    ui: &mut dyn Interaction,
    slot: &mut Option<Connection>,
    at: &Cell<At>,
) -> Result<Outcome> {
    let me = Machine::this(Some(repo))?;
    let identity = Identity::of_this_clone(repo)?;
    // The thread's HEAD as this computer last knew it: the host's history grows from there.
    let head = thread.state.head.as_deref().map(store::parse_hex).transpose()?;
    if let Some(tree) = head.and_then(|h| repo.gix.find_commit(h).ok()).and_then(|c| c.tree_id().ok()) {
        // A partial clone here fetches what the new worktree lacks from its promisor.
        promisor::check_available(repo, &[tree.detach()], "this computer")?;
    }
    ui.progress(&format!("connecting to {} ({})", host.name, host.ssh));
    let conn = slot.insert(super::request::connect(host, ui)?);
    let heads = thread_heads(repo, head, thread.snapshot);
    let project = find_project(conn, repo, &identity, &thread.state.subdirectory, &heads)?;
    let begun: BeginAnswer =
        conn.call("begin", json!({ "repo": project.repo, "uuid": thread.state.uuid, "recover": !request.dry_run }))?;
    for repair in &begun.repairs {
        ui.progress(&format!("{}: {repair}", host.name));
    }
    owner_there(&host.name, &conn.hello, begun.thread.as_ref(), &thread, "here and on the host")?;
    // Without a question to ask, the host captures the thread's state now, for its departure.
    let keep = !request.interactive && !request.dry_run;
    // Where names that differ only in case are one file here, the host says which of the thread's files do.
    let fold_here = case_insensitive_here(repo, &thread.state.uuid)?;
    // Where the thread goes here is worked out while the host answers.
    let mut destination = None;
    let asked = json!({ "repo": project.repo, "uuid": thread.state.uuid, "keep": keep, "case_fold": fold_here });
    let status: StatusAnswer = conn.call_then("status", asked, || {
        destination = Some(arrival_worktree(
            repo,
            &thread.state.uuid,
            thread.state.number,
            Some(&thread),
            ForeignChanges::NewWorktree,
        ));
    })?;
    // Refuse before anything changes: what the host's snapshot needs must be here.
    crate::thread::carried::check_needs(repo, &status.needs, "this computer")?;
    if fold_here {
        let groups = status.case_collisions.clone().unwrap_or_default();
        crate::thread::case_fold::refuse(&groups, &label(&thread), "this computer")?;
    }
    let destination = destination.ok_or_else(|| Error::failed("status", "the status request was not sent"))??;
    let branch = request.branch.clone().or(status.branch.clone());
    let coming = match branch.as_deref() {
        None => BranchHere { action: "detached HEAD".into(), detached: false, checked_out_in: None },
        Some(branch) => match detached_here(repo, &thread, branch, &destination, request.detach, &status)? {
            Some(detached) => detached,
            None => fast_forward_here(repo, conn, &project, &thread, branch, &status)?,
        },
    };
    let plan = Plan {
        thread: thread.state.number,
        uuid: thread.state.uuid.clone(),
        title: thread.state.title.clone(),
        from: host.name.clone(),
        to: "local".into(),
        through_here: false,
        worktree: destination.path.to_string_lossy().into_owned(),
        reuse_worktree: destination.reuse,
        branch: branch.clone(),
        branch_action: coming.action,
        detached: coming.detached,
        branch_checked_out_in: coming.checked_out_in.clone(),
        changes: status.changes.clone(),
        transcript_bytes: status.transcript_bytes.unwrap_or(thread.state.transcript.size),
        codex: match &thread.state.transcript.codex_session {
            Some(id) => Some(super::request::codex_plan(
                id,
                crate::thread::transcript::codex_created(repo, &thread.state).as_deref(),
            )?),
            None => None,
        },
        running: status.running,
    };
    if let Some(stop) = present(&plan, &thread, request, ui)? {
        return Ok(stop);
    }
    fault::point(Step::ToLocalBegun);
    at.set(At::StillThere);
    let uuid = thread.state.uuid.clone();
    ui.progress(&format!("taking a snapshot on {}", host.name));
    let departed: DepartAnswer = conn.call(
        "depart",
        json!({ "repo": project.repo, "uuid": uuid, "epoch": thread.state.epoch + 1,
                "to_machine": me.name, "to_machine_id": me.id,
                "from": host.name, "to": "local", "initiator": me.name, "initiator_id": me.id,
                "branch": request.branch, "detached": coming.detached, "checked_out_in": coming.checked_out_in,
                "no_interrupt": request.no_interrupt,
                "interrupt_timeout_ms": request.interrupt_timeout.as_millis() as u64, "kept": keep,
                "to_worktree": destination.path.to_string_lossy() }),
    )?;
    fault::point(Step::ToLocalDeparted);
    ui.progress(&format!("fetching from {}", host.name));
    store::delete_refs_under(repo, &format!("refs/codex-handoff/incoming/{uuid}/"))?;
    carry::transcript_from_host(repo, conn, &project.repo, &uuid)?;
    let haves: Vec<gix::ObjectId> =
        [Some(thread.snapshot), head, store::ref_target(repo, store::NOTES_REF)?].into_iter().flatten().collect();
    fetch_departed(repo, conn, &project.repo, &uuid, &haves)
        .map_err(|e| super::space::explain(e, Some("this computer"), &[repo.common_dir()], 0))?;
    let snapshot = store::parse_hex(&departed.snapshot)?;
    if store::ref_target(repo, &store::incoming_ref(&uuid, "snapshot"))? != Some(snapshot) {
        return Err(Error::failed(
            "fetch_mismatch",
            format!("the snapshot fetched from {} is not the one it made", host.name),
        ));
    }
    check_incoming(repo, &uuid, snapshot, "this computer")?;
    let noted = store::read_note_in(repo, snapshot, &store::incoming_ref(&uuid, "notes"))?;
    if fold_here && status.case_collisions.is_none() {
        // An older helper did not say which files collide: the snapshot that came does.
        let groups = crate::thread::case_fold::in_commits(repo, &[snapshot, store::parse_hex(&noted.index_commit)?])?;
        if !groups.is_empty() {
            store::delete_refs_under(repo, &format!("refs/codex-handoff/incoming/{uuid}/"))?;
            crate::thread::case_fold::refuse(&groups, &label(&thread), "this computer")?;
        }
    }
    if noted.detached_on(&me) != coming.detached {
        store::delete_refs_under(repo, &format!("refs/codex-handoff/incoming/{uuid}/"))?;
        return Err(Error::new(
            crate::error::Kind::Helper,
            "helper_incompatible",
            format!("the helper on {} does not know how to hand the thread back on a detached HEAD", host.name),
        )
        .with_help(format!("upgrade git-codex-handoff on {}", host.name)));
    }
    carry::fetch_submodules(repo, conn, &project.repo, &uuid, &departed.modules)?;
    let lfs_objects =
        carry::fetch_lfs(repo, conn, &project.repo, &uuid, snapshot, &store::incoming_ref(&uuid, "notes"))?;
    if lfs_objects > 0 {
        ui.progress(&format!("fetched {lfs_objects} Git LFS objects from {}", host.name));
    }
    let notes_before = store::ref_target(repo, store::NOTES_REF)?;
    merge_incoming_notes(repo, &uuid)?;
    set_marker(repo, RELEASE, &uuid, &ReleaseMarker { host: host.name.clone(), snapshot: departed.snapshot.clone() })?;
    fault::point(Step::ToLocalFetched);
    ui.progress("restoring here");
    // Where the plan found it goes stands when no question was asked since (this run holds the lock).
    let planned = (!request.interactive).then(|| destination.clone());
    let arrived = arrival(repo, &uuid, snapshot, &me, ForeignChanges::NewWorktree, planned).map_err(|e| {
        // The host still owns the thread: nothing to release, nothing of it kept here.
        let e = space::arrival_failed(e, repo, snapshot, Some("this computer"));
        let _ = clear_marker(repo, RELEASE, &uuid);
        carry::undo_incoming(repo, &uuid, notes_before);
        e
    })?;
    at.set(At::NowHere);
    fault::point(Step::ToLocalArrived);
    store::delete_refs_under(repo, &format!("refs/codex-handoff/incoming/{uuid}/"))?;
    release(conn, &project, &uuid, &departed.snapshot, host, ui).map_err(|e| {
        let mut told =
            Error::new(e.kind, e.code, format!("{} is on this computer now, but {}", label(&thread), e.message));
        told.help = Some(format!(
            "run `git codex-handoff {} local` again: it tells {} to let go of it",
            thread.state.number, host.name
        ));
        told
    })?;
    fault::point(Step::ToLocalReleased);
    clear_marker(repo, RELEASE, &uuid)?;
    let moved = slot.as_ref().map(|c| c.moved).unwrap_or_default();
    slot.take().map(Connection::close).transpose()?;
    let (worktree, owner_worktree) =
        super::request::placed("local", Some(&arrived.worktree), &thread.state.subdirectory);
    Ok(Outcome {
        thread: thread.state.number,
        uuid,
        host: "local".into(),
        worktree,
        owner_worktree,
        branch: arrived.branch,
        detached: arrived.detached,
        epoch: arrived.epoch,
        snapshot: departed.snapshot,
        already_there: false,
        dry_run: false,
        sent_bytes: moved.sent,
        received_bytes: moved.received,
        kept: None,
    })
}

/// What the thread's branch here will do when it comes back.
struct BranchHere {
    action: String,
    /// The thread comes back on a detached HEAD; the branch here is left alone.
    detached: bool,
    /// Why: the worktree here that has the branch checked out (`None`: `--detach`).
    checked_out_in: Option<String>,
}

/// DESIGN §5: a branch checked out in another worktree here (or `--detach`)
/// brings the thread back on a detached HEAD, leaving that worktree and the
/// branch alone.
fn detached_here(
    repo: &Repo,
    thread: &Thread,
    branch: &str,
    destination: &ArrivalWorktree,
    detach: bool,
    status: &StatusAnswer,
) -> Result<Option<BranchHere>> {
    let pending = pending_arrival_worktree(repo, &thread.state.uuid)?;
    // Not another worktree: the one the thread comes back into, or one an interrupted arrival was writing.
    let elsewhere = restore::checked_out_in(repo, &format!("refs/heads/{branch}"))?
        .filter(|wt| !(destination.reuse && crate::repo::same_path(wt, &destination.path)))
        .filter(|wt| !pending.as_deref().is_some_and(|p| crate::repo::same_path(p, wt)));
    if elsewhere.is_none() && !detach {
        return Ok(None);
    }
    if status.head.is_none() && thread.state.head.is_none() {
        return Err(Error::refused(
            "branch_checked_out",
            format!("branch {branch} has no commits yet: there is no commit to work on detached here"),
        )
        .with_help("bring the thread back onto a new branch with `--branch NEW`"));
    }
    let checked_out_in = elsewhere.map(|wt| wt.to_string_lossy().into_owned());
    Ok(Some(BranchHere { action: "detached HEAD".into(), detached: true, checked_out_in }))
}

/// The branch here must be new or move forward to the thread's HEAD on the
/// host; one that has diverged is refused now, before anything changes on
/// either side.
fn fast_forward_here(
    repo: &Repo,
    conn: &mut Connection,
    project: &ProjectMatch,
    thread: &Thread,
    branch: &str,
    status: &StatusAnswer,
) -> Result<BranchHere> {
    let full = format!("refs/heads/{branch}");
    let host_head = status.head.as_deref().map(store::parse_hex).transpose()?;
    let last_head = thread.state.head.as_deref().map(store::parse_hex).transpose()?;
    let Some(tip) = store::ref_target(repo, &full)? else {
        return Ok(BranchHere { action: "create".into(), detached: false, checked_out_in: None });
    };
    let fast_forward = |action: &str| Ok(BranchHere { action: action.into(), detached: false, checked_out_in: None });
    let host = conn.host.name.clone();
    let diverged = || {
        Err(Error::refused("branch_diverged", format!("branch {branch} here has diverged from the thread's on {host}"))
            .with_help("bring the thread back onto a new branch with `--branch NEW`"))
    };
    let Some(head) = host_head else {
        // No HEAD from the host (an unborn branch, or a helper too old to say): the restore checks.
        return fast_forward("restore");
    };
    if tip == head {
        return fast_forward("up to date");
    }
    if repo.gix.find_commit(head).is_ok() {
        return if repo.is_ancestor(tip, head)? { fast_forward("fast-forward") } else { diverged() };
    }
    // The host made commits this computer has not seen: it knows whether they grow from the branch here.
    let asked: Result<DescendsAnswer> =
        conn.call("descends", json!({ "repo": project.repo, "uuid": thread.state.uuid, "commit": tip.to_string() }));
    match asked {
        Ok(DescendsAnswer { descends: Some(true) }) => fast_forward("fast-forward"),
        Ok(DescendsAnswer { descends: Some(false) }) => diverged(),
        // The host lacks the tip: its history can hold it only below a shallow cut, where the
        // thread's HEAD as it left here still leads to it.
        Ok(DescendsAnswer { descends: None }) => match last_head {
            Some(last) if repo.is_ancestor(tip, last)? => fast_forward("fast-forward"),
            _ => diverged(),
        },
        Err(e) if e.code == "unknown_op" => fast_forward("restore"),
        Err(e) => Err(e),
    }
}

/// Tell the host to let go of the thread it sent here as `snapshot`.
pub(super) fn release(
    conn: &mut Connection,
    project: &ProjectMatch,
    uuid: &str,
    snapshot: &str,
    host: &Host,
    ui: &mut dyn Interaction,
) -> Result<()> {
    let released: serde_json::Value =
        conn.call("release", json!({ "repo": project.repo, "uuid": uuid, "snapshot": snapshot }))?;
    if let Some(let_go) = released["let_go"].as_str() {
        ui.progress(&format!("{}: {let_go}", host.name));
    }
    Ok(())
}

/// A thread owned here whose hand-back stopped before its host let go:
/// finish that first. The host must let go before the thread goes there
/// again; a handoff elsewhere goes on if it cannot be reached now.
pub(super) fn settle_release(
    repo: &Repo,
    thread: &Thread,
    destination: Option<&Host>,
    ui: &mut dyn Interaction,
) -> Result<()> {
    let pending = read_marker::<ReleaseMarker>(repo, RELEASE, &thread.state.uuid)?
        .filter(|m| store::parse_hex(&m.snapshot).ok() == Some(thread.snapshot));
    let Some(pending) = pending else { return Ok(()) };
    match (finish_release(repo, thread, &pending, ui), destination) {
        (Err(e), Some(to)) if to.name != pending.host => {
            ui.progress(&format!(
                "{} has not let go of {} yet ({}); `git codex-handoff {} local` finishes that later",
                pending.host,
                label(thread),
                e.message,
                thread.state.number
            ));
            Ok(())
        }
        (finished, _) => finished,
    }
}

/// Finish a hand-back that stopped before its host let go.
fn finish_release(repo: &Repo, thread: &Thread, pending: &ReleaseMarker, ui: &mut dyn Interaction) -> Result<()> {
    let host = config::find_host(&pending.host)?;
    ui.progress(&format!("finishing the earlier hand-back: telling {} to let go of {}", host.name, label(thread)));
    let told = |e, conn: Option<&mut Connection>| super::stopped::told(e, conn, &host.name, At::NowHere);
    let mut conn = super::request::connect(&host, ui).map_err(|e| told(e, None))?;
    let released = (|| {
        let identity = Identity::of_this_clone(repo)?;
        let project = find_project(&mut conn, repo, &identity, &thread.state.subdirectory, &[])?;
        let begun: BeginAnswer =
            conn.call("begin", json!({ "repo": project.repo, "uuid": thread.state.uuid, "recover": true }))?;
        for repair in &begun.repairs {
            ui.progress(&format!("{}: {repair}", host.name));
        }
        release(&mut conn, &project, &thread.state.uuid, &pending.snapshot, &host, ui)
    })();
    match released {
        Ok(()) => {
            clear_marker(repo, RELEASE, &thread.state.uuid)?;
            conn.close()
        }
        Err(e) => Err(told(e, Some(&mut conn))),
    }
}

/// `42 local` for a thread that is here (an unfinished release is done before).
pub(super) fn stay(repo: &Repo, thread: &Thread, me: &Machine, ui: &mut dyn Interaction) -> Result<Outcome> {
    let worktree = thread::worktree_here(repo, thread, me).map(|p| p.to_string_lossy().into_owned());
    ui.progress(&format!("{} is on this computer ({})", label(thread), me.name));
    Ok(Outcome {
        thread: thread.state.number,
        uuid: thread.state.uuid.clone(),
        host: "local".into(),
        owner_worktree: worktree.clone(),
        worktree,
        branch: thread.state.branch.clone(),
        detached: thread.state.detached_on(me),
        epoch: thread.state.epoch,
        snapshot: thread.snapshot.to_string(),
        already_there: true,
        dry_run: false,
        sent_bytes: 0,
        received_bytes: 0,
        kept: None,
    })
}

/// Would the thread's worktree here (the one it had, or a new one under the
/// worktree root) not tell file names apart by case?
fn case_insensitive_here(repo: &Repo, uuid: &str) -> Result<bool> {
    let mut places = vec![config::worktree_root()?];
    places.extend(thread::worktree_record(repo, uuid)?);
    Ok(places.iter().any(|dir| crate::thread::case_fold::case_insensitive(dir)))
}
