//! `--attach`: once a thread has arrived, it goes on there in this terminal.
//!
//! On a host the helper works out what to run (`thread::attach`: the
//! command, its directory and environment) and leaves it in a ticket, a
//! file only its user can read, used once and valid for a minute. The
//! client then ends the helper's session (which holds the thread's lock)
//! and starts `remote attach <ticket>` on the same connection with a
//! terminal of its own there (`ssh -t`): nothing of the thread's reaches
//! the remote command line but the ticket's random hex name. The attached
//! command runs as the thread's agent (`thread::running`), so handing the
//! thread on from elsewhere interrupts it first. On this computer the
//! command simply runs here.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::projects::{project_repo, saved_projects};
use super::request::{Interaction, Outcome};
use crate::config;
use crate::error::{Error, Kind, Result};
use crate::login_shell::{self, Question};
use crate::machine::Machine;

use crate::repo::Repo;
use crate::thread::attach::{launch, Launch};
use crate::thread::store::{self, Thread};

/// A ticket is used within this long of being made.
const TICKET_LIFE: Duration = Duration::from_secs(60);

/// What the helper answers to `attach`.
#[derive(Debug, Deserialize)]
struct Prepared {
    ticket: String,
    shown: String,
    dir: String,
}

/// Go on with the thread where the handoff left it, in this terminal: the
/// attached command's exit code. `template` is `codex-handoff.attachCommand`.
pub fn attach(repo: &Repo, mut outcome: Outcome, template: Option<&str>, ui: &mut dyn Interaction) -> Result<i32> {
    if outcome.host == "local" {
        return attach_here(repo, &outcome.uuid, template, ui);
    }
    let host = config::find_host(&outcome.host)?;
    let (mut conn, repo_there) = match outcome.kept.take() {
        Some(kept) => (kept.conn, Some(kept.repo)),
        None => (super::request::connect(&host, ui)?, None),
    };
    let prepared: Prepared = conn
        .call("attach", json!({ "uuid": outcome.uuid, "repo": repo_there, "command": template }))
        .map_err(|err| match err.code.as_ref() {
            "unknown_op" => Error::new(
                Kind::Helper,
                "helper_incompatible",
                format!("the helper on {} (version {}) cannot attach a terminal", host.name, conn.hello.version),
            )
            .with_help(crate::remote::transport::install_help(&host)),
            _ => err,
        })?;
    ui.notice(&format!(
        "Attaching to thread #{} on {} (in {}): {}",
        outcome.thread,
        host.name,
        shown(&prepared.dir),
        shown(&prepared.shown)
    ));
    conn.attach(&prepared.ticket)
}

/// The thread is on this computer: run its command here.
fn attach_here(repo: &Repo, uuid: &str, template: Option<&str>, ui: &mut dyn Interaction) -> Result<i32> {
    let me = Machine::this(Some(repo))?;
    let thread = owned_thread(repo, uuid, &me)?;
    let launch = launch(repo, &thread, template, &|| None)?;
    ui.notice(&format!(
        "Attaching to thread #{} (in {}): {}",
        thread.state.number,
        launch.dir.display(),
        shown(&launch.shown)
    ));
    run(repo, uuid, &launch)
}

fn run(repo: &Repo, uuid: &str, launch: &Launch) -> Result<i32> {
    crate::thread::running::run(repo, uuid, &launch.dir, &launch.argv, &launch.env)
}

fn owned_thread(repo: &Repo, uuid: &str, me: &Machine) -> Result<Thread> {
    let thread = store::load(repo, uuid)?
        .ok_or_else(|| Error::not_found("thread_not_found", format!("no thread {uuid} here")))?;
    if !thread.state.owned_by(me) {
        return Err(Error::refused(
            "not_owner",
            format!("thread #{} is on {}, not on this machine", thread.state.number, thread.state.owner_machine),
        )
        .with_help("attach where the thread is"));
    }
    Ok(thread)
}

/// Text from the other machine, for the terminal: without control characters.
fn shown(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// The helper's side of `attach`: what to run, left in a ticket.
#[derive(Debug, Deserialize)]
pub struct AttachParams {
    uuid: String,
    /// The thread's repository here, when the client knows it.
    #[serde(default)]
    repo: Option<String>,
    /// The client's `codex-handoff.attachCommand`.
    #[serde(default)]
    command: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Ticket {
    repo: String,
    uuid: String,
    launch: Launch,
    /// Seconds since the epoch when it was made.
    made: u64,
}

pub fn prepare(p: AttachParams, me: &Machine, restricted: bool) -> Result<Value> {
    if restricted {
        return Err(Error::refused("restricted", "this host's key allows handoffs only, not a terminal session")
            .with_help("attach with a key that may log in, or hand off without --attach"));
    }
    if !crate::thread::state::is_thread_uuid(&p.uuid) {
        return Err(Error::usage("bad_thread", format!("{:?} is not a thread UUID", p.uuid)));
    }
    let repo = match &p.repo {
        Some(path) => project_repo(path)?,
        None => repo_owning(&p.uuid, me)?,
    };
    let thread = owned_thread(&repo, &p.uuid, me)?;
    // Codex from a login's PATH, as Codex here is normally started.
    let find_codex =
        || login_shell::answer_here(Question::Locate).and_then(|a| a.codex).map(|found| PathBuf::from(found.path));
    let launch = launch(&repo, &thread, p.command.as_deref(), &find_codex)?;
    let ticket = Ticket {
        repo: repo.common_dir().to_string_lossy().into_owned(),
        uuid: p.uuid,
        launch: launch.clone(),
        made: now(),
    };
    let name = write_ticket(&ticket)?;
    Ok(json!({ "ticket": name, "shown": launch.shown, "dir": launch.dir }))
}

/// The saved project whose repository has thread `uuid`, owned here.
fn repo_owning(uuid: &str, me: &Machine) -> Result<Repo> {
    for project in saved_projects()? {
        if let Some(repo) = project.repo {
            if store::load(&repo, uuid).ok().flatten().is_some_and(|t| t.state.owned_by(me)) {
                return Ok(repo);
            }
        }
    }
    Err(Error::not_found("thread_not_here", format!("no saved project here has thread {uuid}")))
}

/// `remote attach <ticket>`: run what the ticket says, once. Its exit code.
pub fn run_ticket(name: &str) -> Result<i32> {
    let expired = || {
        Error::refused("ticket_expired", "that attach ticket is unknown, used or expired")
            .with_help("attach again: `git codex-handoff <THREAD> <HOST> --attach`")
    };
    if !is_ticket_name(name) {
        return Err(expired());
    }
    let path = tickets_dir()?.join(name);
    let data = std::fs::read(&path).map_err(|_| expired())?;
    // Used once, whatever follows.
    std::fs::remove_file(&path)?;
    let ticket: Ticket = serde_json::from_slice(&data).map_err(|_| expired())?;
    if now().saturating_sub(ticket.made) > TICKET_LIFE.as_secs() {
        return Err(expired());
    }
    let repo = project_repo(&ticket.repo)?;
    let me = Machine::this(Some(&repo))?;
    // The thread may have left since the ticket was made.
    owned_thread(&repo, &ticket.uuid, &me)?;
    run(&repo, &ticket.uuid, &ticket.launch)
}

fn tickets_dir() -> Result<PathBuf> {
    Ok(crate::machine::state_dir()?.join("attach"))
}

fn is_ticket_name(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Write a ticket readable by this user only; tickets nobody used go.
fn write_ticket(ticket: &Ticket) -> Result<String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = tickets_dir()?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
    for entry in std::fs::read_dir(&dir)?.flatten() {
        let old = entry.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
        if old.is_some_and(|age| age > TICKET_LIFE * 10) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let name = uuid::Uuid::new_v4().simple().to_string();
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(dir.join(&name))?;
    file.write_all(&serde_json::to_vec(ticket).expect("a ticket serializes"))?;
    Ok(name)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
