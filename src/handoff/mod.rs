//! Handoffs: a thread's Git state leaves one machine and arrives on another.
//!
//! `departure` and `arrival` are the two halves; each runs on its own
//! machine (this computer or the helper on a host). `to_host` and `to_local`
//! drive a whole handoff from this computer. Ownership changes hands only
//! after the destination has restored and verified the state, and the highest
//! epoch always says who owns the thread.

mod arrival;
pub mod attach;
mod big_send;
mod carry;
mod departure;
pub mod helper;
mod helper_held;
mod helper_queries;
mod locate;
mod markers;
pub mod projects;
mod pulse;
mod recovery;
mod relay;
mod request;
mod space;
mod stopped;
mod to_host;
mod to_local;
mod transfer;
pub mod wire;

pub use arrival::{
    arrival, arrival_worktree, check_incoming, merge_incoming_notes, pending_arrival_worktree, recover_arrival,
    Arrival, ArrivalWorktree, ForeignChanges,
};
pub use carry::{
    clean_outgoing, expose_lfs, expose_submodules, lfs_missing_here, offer_transcript, send_transcript,
    take_transcript, undo_incoming,
};
pub use departure::{departure, Departure};
pub use locate::{find_project, thread_heads};
pub use recovery::repair_here;
use request::label;
pub use request::{codex_plan, is_local, Interaction, Kept, Outcome, Plan, Request};
pub use transfer::{offer_pack, take_pushed};
pub use wire::*;

use crate::config::{self, Host};
use crate::error::{Error, Result};
use crate::machine::Machine;
use crate::repo::Repo;
use crate::thread;
use crate::thread::resolve::Target;
use crate::thread::store::{self, Thread};

/// Run one handoff from this computer.
pub fn run(repo: &Repo, request: &Request, ui: &mut dyn Interaction) -> Result<Outcome> {
    let destination = request.destination.as_str();
    if destination == "cloud" || destination.starts_with("cloud:") {
        return Err(Error::refused("unsupported_destination", "handoff to a Codex cloud environment isn't supported")
            .with_help("hand the thread to a host reachable over SSH (`git codex-handoff destinations`)"));
    }
    if let Some(branch) = &request.branch {
        crate::repo::check_branch_name(branch)?;
    }
    let host = if is_local(destination) {
        None
    } else {
        config::check_host_name(destination)?;
        Some(config::find_host(destination)?)
    };
    let me = Machine::this(Some(repo))?;
    let target = thread::resolve::resolve_target(repo, &request.thread)?;
    refuse_self_handoff(&target)?;
    let (thread, lock) = match target {
        Target::Thread(thread) => {
            let lock = thread::lock_thread(repo, &thread.state.uuid)?;
            (*thread, Some(lock))
        }
        Target::Codex(codex) if host.is_none() => {
            return Err(Error::not_found(
                "codex_thread_not_linked",
                format!("Codex thread {} is on this computer and no thread links it yet", codex.id),
            )
            .with_help(format!("hand it to a host with `git codex-handoff {} <HOST>`", codex.id)));
        }
        Target::Codex(codex) if request.dry_run => {
            let preview = thread::preview_codex(repo, &me, &codex)?;
            ui.notice(&format!("Codex thread {} would become thread #{} here", codex.id, preview.state.number));
            (preview, None)
        }
        Target::Codex(codex) => {
            let adopted = thread::adopt_codex(repo, &me, &codex)?;
            ui.notice(&format!("Codex thread {} is now thread #{}", codex.id, adopted.state.number));
            let lock = thread::lock_thread(repo, &adopted.state.uuid)?;
            (adopted, Some(lock))
        }
    };
    // Under the lock: what an interrupted run left here first, then the thread as it is now.
    let thread = match &lock {
        Some(lock) => {
            if !request.dry_run {
                for repair in repair_here(repo, lock, &thread.state.uuid, &me)? {
                    ui.progress(&repair);
                }
            }
            reload(repo, &thread)?
        }
        None => thread,
    };
    // A move from one host to another that an earlier run left half-way is settled first.
    let thread = match !request.dry_run && relay::settle(repo, &thread, host.as_ref(), ui)? {
        true => reload(repo, &thread)?,
        false => thread,
    };
    let owned_here = thread.state.owned_by(&me);
    if owned_here && !request.dry_run {
        to_local::settle_release(repo, &thread, host.as_ref(), ui)?;
    }
    match host {
        None if owned_here => to_local::stay(repo, &thread, &me, ui),
        None => {
            let host = owner_host(&thread, &me)?;
            to_local::run(repo, thread, &host, request, ui)
        }
        Some(host) if owned_here => to_host::run(repo, thread, &host, request, ui),
        Some(host) => {
            let current = owner_host(&thread, &me)?;
            if current.name == host.name {
                return to_host::already_on_host(repo, &thread, &host, ui);
            }
            // Host to host: through this computer's object store, no file here changes.
            relay::run(repo, thread, &current, &host, request, ui)
        }
    }
}

/// `thread run` exports CODEX_HANDOFF_THREAD; the Codex CLI exports
/// CODEX_THREAD_ID to every command it runs. Either names the asking thread.
fn refuse_self_handoff(target: &Target) -> Result<()> {
    let (uuid, codex_id) = match target {
        Target::Thread(t) => (Some(t.state.uuid.as_str()), t.state.transcript.codex_session.as_deref()),
        Target::Codex(c) => (None, Some(c.id.as_str())),
    };
    let asking_thread =
        std::env::var("CODEX_HANDOFF_THREAD").is_ok_and(|v| uuid.is_some_and(|u| v.eq_ignore_ascii_case(u)));
    let asking_codex =
        std::env::var("CODEX_THREAD_ID").is_ok_and(|v| codex_id.is_some_and(|c| v.eq_ignore_ascii_case(c)));
    if asking_thread || asking_codex {
        return Err(Error::refused("self_handoff", "a thread cannot hand itself off")
            .with_help("ask from another thread or a terminal"));
    }
    Ok(())
}

fn lost(uuid: &str) -> Error {
    Error::failed("thread_lost", format!("thread {uuid} is missing from the store after the handoff"))
}

fn reload(repo: &Repo, thread: &Thread) -> Result<Thread> {
    store::load(repo, &thread.state.uuid)?.ok_or_else(|| lost(&thread.state.uuid))
}

/// The configured host a thread owned elsewhere is on: the one this
/// computer sent it to.
fn owner_host(thread: &Thread, me: &Machine) -> Result<Host> {
    let Some(name) = thread.state.sent_by(me) else {
        // Another computer handed it off: only that one may take it back (DESIGN §3: a refusal).
        return Err(Error::refused(
            "owner_unknown",
            format!(
                "{} is on machine {}, which this computer did not send it to",
                label(thread),
                thread.state.owner_machine
            ),
        )
        .with_help(format!(
            "`git codex-handoff thread show {}` says where it is and which computer sent it there; bring it back \
             from that computer",
            thread.state.number
        )));
    };
    config::find_host(name)
}
