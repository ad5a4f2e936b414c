//! git-codex-handoff: move a coding-agent thread, with the exact Git state it
//! works in, between machines.
//!
//! `cli` and `commands` know about clap and the terminal; everything else
//! returns values and never prints.

pub mod cli;
pub mod codex;
pub mod commands;
pub mod completion;
pub mod config;
pub mod error;
pub mod fingerprint;
pub mod git;
pub mod handoff;
pub mod helper;
pub mod hooks;
pub mod lock;
pub mod manual;
pub mod output;
pub mod protocol;
pub mod repo;
pub mod restore;
pub mod restricted;
pub mod running;
pub mod settings;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod threads;
pub mod transcript;
pub mod transport;

use std::process::ExitCode;

use clap::Parser;

/// Parse the command line, run the command, report errors; returns the exit code.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let wants_json = args.iter().any(|a| a == "--json");
    let cli = match cli::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) || !wants_json {
                let _ = err.print();
                return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
            }
            let mut ui = output::Ui::new(true);
            let message = err.render().to_string();
            let first = message.lines().next().unwrap_or("invalid command line").trim_start_matches("error: ");
            ui.error(&error::Error::usage("usage", first.to_owned()).with_help("see `git codex-handoff --help`"));
            return ExitCode::from(2);
        }
    };
    let mut ui = output::Ui::new(cli.json);
    ui.force_progress = cli.progress;
    match commands::run(cli, &mut ui) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            ui.error(&err);
            ExitCode::from(err.exit_code())
        }
    }
}
