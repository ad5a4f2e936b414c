//! What a handoff driven from this computer is asked (`Request`), shows
//! (`Plan`) and answers (`Outcome`), the `Interaction` its caller sees
//! them through, and the few steps every direction shares: connecting,
//! presenting the plan, naming where the thread ends up.

use serde::Serialize;

use crate::config::Host;
use crate::error::{Error, Result};
use crate::remote::transport::Connection;
use crate::thread;
use crate::thread::store::Thread;
use crate::worktree::state::Changes;

use super::wire::{CodexPlan, RemoteThread};

/// What a handoff will do, shown before it starts.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub thread: u64,
    pub uuid: String,
    pub title: String,
    pub from: String,
    pub to: String,
    /// From one host to another through this computer: no file here changes.
    pub through_here: bool,
    pub worktree: String,
    pub reuse_worktree: bool,
    pub branch: Option<String>,
    pub branch_action: String,
    /// The thread will work on a detached HEAD at the destination, its branch left alone there.
    pub detached: bool,
    /// Why: the worktree there that has the branch checked out (`None`: asked for with `--detach`).
    pub branch_checked_out_in: Option<String>,
    pub changes: Changes,
    pub transcript_bytes: u64,
    /// Where the Codex thread's rollout goes on the destination.
    pub codex: Option<CodexPlan>,
    /// The thread's command is running and will be interrupted first.
    pub running: bool,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub thread: u64,
    pub uuid: String,
    pub host: String,
    /// Where the thread lives on this machine (with the project subdirectory);
    /// `None` when it lives elsewhere.
    pub worktree: Option<String>,
    /// Where it lives on its owner (with the project subdirectory), as last recorded.
    pub owner_worktree: Option<String>,
    /// The thread's branch.
    pub branch: Option<String>,
    /// The thread works on a detached HEAD there (its branch is checked out elsewhere there).
    pub detached: bool,
    pub epoch: u64,
    pub snapshot: String,
    /// Nothing had to move: an earlier run already finished, or the thread was there.
    pub already_there: bool,
    pub dry_run: bool,
    /// Bytes of the snapshot sent to a host beside protocol requests (its
    /// pack and a large transcript), and received from one.
    pub sent_bytes: u64,
    pub received_bytes: u64,
    /// The connection to the host, still open when the request asked to attach.
    #[serde(skip)]
    pub kept: Option<Kept>,
}

/// Lets the caller show the plan, ask for confirmation and report progress.
pub trait Interaction {
    /// Show the plan; return false to stop without changing anything.
    fn confirm(&mut self, plan: &Plan) -> bool;
    fn progress(&mut self, text: &str);
    /// Something the person should learn even when not watching the progress.
    fn notice(&mut self, text: &str) {
        self.progress(text);
    }
}

pub struct Request {
    pub thread: String,
    pub destination: String,
    pub branch: Option<String>,
    /// Work on a detached HEAD at the destination even where the branch is free.
    pub detach: bool,
    pub dry_run: bool,
    /// Refuse a running thread instead of interrupting it.
    pub no_interrupt: bool,
    /// How long to wait after SIGINT, and again after SIGTERM.
    pub interrupt_timeout: std::time::Duration,
    /// A person will be asked to confirm the plan (so the snapshot must wait for the answer).
    pub interactive: bool,
    /// Keep the connection open to attach to the thread where it arrives.
    pub attach: bool,
}

/// The two destinations that name this computer.
pub fn is_local(destination: &str) -> bool {
    destination == "local" || destination == "."
}

/// Connect to `host`, saying how its helper was found if it had to be looked for.
pub(super) fn connect(host: &Host, ui: &mut dyn Interaction) -> Result<Connection> {
    let conn = Connection::open(host)?;
    if let Some(text) = conn.notice() {
        ui.notice(&text);
    }
    Ok(conn)
}

/// Where Codex thread `id` goes on this machine, for the plan.
pub fn codex_plan(id: &str, created: Option<&str>) -> Result<CodexPlan> {
    let placement = thread::transcript::codex_placement_of(id, created)?;
    Ok(CodexPlan {
        rollout: placement.path.to_string_lossy().into_owned(),
        replaces: placement.current.is_some(),
        warning: placement.warning,
    })
}

pub(super) fn label(thread: &Thread) -> String {
    format!("thread #{}", thread.state.number)
}

/// Show the plan and ask; `Some` ends the handoff here (a dry run).
pub(super) fn present(
    plan: &Plan,
    thread: &Thread,
    request: &Request,
    ui: &mut dyn Interaction,
) -> Result<Option<Outcome>> {
    if !ui.confirm(plan) {
        return Err(Error::failed("cancelled", "handoff cancelled; nothing was changed"));
    }
    Ok(request.dry_run.then(|| outcome_of_plan(plan, thread)))
}

/// Where a thread that lives in the worktree `root` on `host` (`local`:
/// this computer) is, as an outcome says it: on this machine, and on its owner.
pub(super) fn placed(host: &str, root: Option<&str>, subdirectory: &str) -> (Option<String>, Option<String>) {
    let owner = root
        .filter(|r| !r.is_empty())
        .map(|r| thread::project_dir(std::path::Path::new(r), subdirectory).to_string_lossy().into_owned());
    (owner.clone().filter(|_| is_local(host)), owner)
}

fn outcome_of_plan(plan: &Plan, thread: &Thread) -> Outcome {
    let (worktree, owner_worktree) = placed(&plan.to, Some(&plan.worktree), &thread.state.subdirectory);
    Outcome {
        thread: plan.thread,
        uuid: plan.uuid.clone(),
        host: plan.to.clone(),
        worktree,
        owner_worktree,
        branch: plan.branch.clone(),
        detached: plan.detached,
        epoch: thread.state.epoch + 1,
        snapshot: thread.snapshot.to_string(),
        already_there: false,
        dry_run: true,
        sent_bytes: 0,
        received_bytes: 0,
        kept: None,
    }
}

/// A handoff's connection, kept open so the thread can be attached over it.
pub struct Kept {
    pub(super) conn: Connection,
    /// The host's repository of the thread (its common git dir).
    pub(super) repo: String,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept").field("host", &self.conn.host.name).field("repo", &self.repo).finish()
    }
}

/// The host `host` (which answered `hello`) must hold `thread` as its owner,
/// at the epoch this computer recorded, before it is asked to let it go.
/// `where_to_look`: where `thread log` tells what happened instead.
pub(super) fn owner_there(
    host: &str,
    hello: &crate::remote::protocol::Hello,
    remote: Option<&RemoteThread>,
    thread: &Thread,
    where_to_look: &str,
) -> Result<()> {
    match remote {
        Some(remote) if remote.owned_by(hello) && remote.epoch == thread.state.epoch => Ok(()),
        Some(remote) => Err(Error::refused(
            "owner_mismatch",
            format!(
                "{host} says {} is at epoch {} owned by {}, but this computer expected epoch {} on {}",
                label(thread),
                remote.epoch,
                remote.owner_machine,
                thread.state.epoch,
                thread.state.owner_machine
            ),
        )
        .with_help(format!("run `git codex-handoff thread log` {where_to_look} to see what happened"))),
        None => Err(Error::not_found("thread_not_on_host", format!("{host} does not know {}", label(thread)))
            .with_help("check the host's saved project with `git codex-handoff project list --host ...`")),
    }
}
