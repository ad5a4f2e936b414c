//! The command line: clap definitions (`args`), one module per subcommand
//! (`commands`: its args and one function), the one place that writes to
//! stdout and stderr (`output`, with the meters of long steps in `progress`), and what is generated from the definitions
//! (man page, completions, the settings table).
//!
//! May use every other layer; nothing below it may use it.

pub mod args;
pub mod commands;
pub mod completion;
pub mod manual;
mod manual_attach;
pub mod output;
pub mod progress;
pub mod settings;

pub use args::*;

use std::process::ExitCode;

use clap::Parser;

/// Parse the command line, run the command, report errors; returns the exit code.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // git runs this binary as its ssh for the `ssh2` transport: no clap, no repository, a fast start.
    if args.get(1).is_some_and(|a| a == crate::remote::transport::SHIM_COMMAND) {
        let rest: Vec<String> = args.iter().skip(2).map(|a| a.to_string_lossy().into_owned()).collect();
        let code = crate::remote::transport::run_git_shim(&rest, &mut std::io::stderr());
        return ExitCode::from(u8::try_from(code).unwrap_or(255));
    }
    // git runs this binary as its ssh for a fetch whose input has a ceiling.
    if args.get(1).is_some_and(|a| a == crate::remote::transport::CAPPED_COMMAND) {
        let rest: Vec<String> = args.iter().skip(2).map(|a| a.to_string_lossy().into_owned()).collect();
        let code = crate::remote::transport::run_capped(&rest, &mut std::io::stderr());
        return ExitCode::from(u8::try_from(code).unwrap_or(255));
    }
    let wants_json = args.iter().any(|a| a == "--json");
    let cli = match Cli::try_parse_from(&args) {
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
            ui.error(
                &crate::error::Error::usage("usage", first.to_owned()).with_help("see `git codex-handoff --help`"),
            );
            return ExitCode::from(2);
        }
    };
    crate::config::prefetch();
    let mut ui = output::Ui::new(cli.json);
    ui.force_progress = cli.progress;
    progress::install(cli.json, cli.progress);
    match commands::run(cli, &mut ui) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            ui.error(&err);
            ExitCode::from(err.exit_code())
        }
    }
}
