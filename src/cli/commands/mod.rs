//! One module per subcommand: each has its clap args (in `cli`) and one `run`.

pub mod config;
pub mod destinations;
pub mod generate;
pub mod handoff;
pub mod hooks;
pub mod host;
mod picker;
pub mod project;
pub mod remote;
pub mod skill;
pub mod thread;
pub mod thread_view;

use crate::cli::args::{Cli, Command, RemoteCommand};
use crate::cli::output::Ui;
use crate::error::Result;

pub fn run(cli: Cli, ui: &mut Ui) -> Result<()> {
    match cli.command {
        Some(Command::Thread(command)) => thread::run(command, ui),
        Some(Command::Destinations(args)) => destinations::run(args, ui),
        Some(Command::Host(command)) => host::run(command, ui),
        Some(Command::Project(command)) => project::run(command, ui),
        Some(Command::InstallHooks(args)) => hooks::install(args, ui),
        Some(Command::Config) => config::run(ui),
        Some(Command::Hook(args)) => hooks::run(args, ui),
        Some(Command::Generate(command)) => generate::generate(command, ui),
        Some(Command::Complete(args)) => generate::complete(args, ui),
        Some(Command::Remote(RemoteCommand::Serve(args))) => remote::run(args),
        Some(Command::Remote(RemoteCommand::Attach(args))) => remote::attach(args),
        Some(Command::InstallSkill(args)) => skill::run(args, ui),
        None => handoff::run(cli.handoff, ui),
    }
}
