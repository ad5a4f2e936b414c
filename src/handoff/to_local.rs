//! Bringing a thread back from a host: the host snapshots, this computer
//! fetches and restores it, then the host lets go.

use super::markers::{clear_marker, read_marker, set_marker};
use super::transfer::fetch;
use super::wire::{BeginAnswer, DepartAnswer, StatusAnswer};
use super::{
    arrival, arrival_worktree, check_incoming, find_project, label, merge_incoming_notes, present, thread_heads,
    ForeignChanges, Interaction, Outcome, Plan, Request,
};
use serde_json::json;

use crate::config::{self, Host};
use crate::error::{Error, Result};
use crate::fingerprint::Identity;
use crate::promisor;
use crate::remote::transport::Connection;
use crate::repo::Repo;
use crate::thread;
use crate::thread::restore;
use crate::thread::store::{self, Thread};

pub(super) fn run(
    repo: &Repo,
    thread: Thread,
    host: &Host,
    request: &Request,
    ui: &mut dyn Interaction,
) -> Result<Outcome> {
    let me = crate::repo::machine_name(Some(repo));
    let identity = Identity::of_this_clone(repo)?;
    // The thread's HEAD as this computer last knew it: the host's history grows from there.
    let head = thread.state.head.as_deref().map(store::parse_hex).transpose()?;
    if let Some(tree) = head.and_then(|h| repo.gix.find_commit(h).ok()).and_then(|c| c.tree_id().ok()) {
        // A partial clone here fetches what the new worktree lacks from its promisor.
        promisor::check_available(repo, &[tree.detach()], "this computer")?;
    }
    ui.progress(&format!("connecting to {} ({})", host.name, host.ssh));
    let mut conn = Connection::open(host)?;
    let heads = thread_heads(repo, head, thread.snapshot);
    let project = find_project(&mut conn, repo, &identity, &thread.state.subdirectory, &heads)?;
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
        codex: match &thread.state.transcript.codex_session {
            Some(id) => {
                Some(super::codex_plan(id, crate::thread::transcript::codex_created(repo, &thread.state).as_deref())?)
            }
            None => None,
        },
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
    check_incoming(repo, &uuid, snapshot, "this computer")?;
    merge_incoming_notes(repo, &uuid)?;
    set_marker(repo, "release", &uuid, &json!({ "host": host.name, "snapshot": departed.snapshot }))?;
    ui.progress("restoring here");
    let arrived = arrival(repo, &uuid, snapshot, &me, ForeignChanges::NewWorktree).inspect_err(|_| {
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
pub(super) fn finish_release_or_stay(
    repo: &Repo,
    thread: &Thread,
    me: &str,
    ui: &mut dyn Interaction,
) -> Result<Outcome> {
    let worktree = thread::worktree_record(repo, &thread.state.uuid)?.map(|p| p.to_string_lossy().into_owned());
    if let Some(marker) = read_marker(repo, "release", &thread.state.uuid)? {
        let host_name = marker["host"].as_str().unwrap_or_default().to_owned();
        let snapshot = marker["snapshot"].as_str().unwrap_or_default().to_owned();
        let host = config::find_host(&host_name)?;
        ui.progress(&format!("finishing the earlier hand-back: telling {} to let go of {}", host.name, label(thread)));
        let mut conn = Connection::open(&host)?;
        let identity = Identity::of_this_clone(repo)?;
        let project = find_project(&mut conn, repo, &identity, &thread.state.subdirectory, &[])?;
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
