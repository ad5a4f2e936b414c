//! One module per subcommand: each has its clap args (in `cli`) and one `run`.

pub mod handoff;
pub mod thread;

use serde_json::{json, Value};

use crate::cli::{Cli, Command, HostCommand, ProjectCommand, RemoteCommand};
use crate::error::{Error, Result};
use crate::output::Ui;
use crate::store::Thread;

pub fn run(cli: Cli, ui: &mut Ui) -> Result<()> {
    match cli.command {
        Some(Command::Thread(command)) => thread::run(command, ui),
        Some(Command::Destinations(_)) => Err(Error::not_yet_available("destinations")),
        Some(Command::Host(command)) => Err(Error::not_yet_available(match command {
            HostCommand::Add(_) => "host add",
            HostCommand::List(_) => "host list",
            HostCommand::Remove(_) => "host remove",
            HostCommand::Check(_) => "host check",
        })),
        Some(Command::Project(command)) => Err(Error::not_yet_available(match command {
            ProjectCommand::Save(_) => "project save",
            ProjectCommand::List(_) => "project list",
            ProjectCommand::Forget(_) => "project forget",
        })),
        Some(Command::InstallHooks(_)) => Err(Error::not_yet_available("install-hooks")),
        Some(Command::Remote(RemoteCommand::Serve(_))) => Err(Error::not_yet_available("remote serve")),
        None => handoff::run(cli.handoff, ui),
    }
}

/// A thread as editors see it (`--json`): DESIGN §3 field names.
pub fn thread_view(thread: &Thread, this_machine: &str) -> Value {
    let s = &thread.state;
    json!({
        "schema": s.schema,
        "number": s.number,
        "uuid": s.uuid,
        "title": s.title,
        "branch": s.branch,
        "owner": owner_name(thread, this_machine),
        "owner_machine": s.owner_machine,
        "status": s.status,
        "epoch": s.epoch,
        "snapshot": thread.snapshot.to_string(),
        "head": s.head,
        "worktree": s.worktree,
        "subdirectory": s.subdirectory,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    })
}

/// Where the thread is, as this computer names it.
pub fn owner_name(thread: &Thread, this_machine: &str) -> String {
    if thread.state.owner_machine == this_machine {
        "local".to_owned()
    } else {
        thread.state.handoff.as_ref().map(|h| h.to.clone()).unwrap_or_else(|| thread.state.owner_machine.clone())
    }
}
