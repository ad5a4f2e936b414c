//! `git codex-handoff <THREAD> <HOST>`: the handoff itself.

use crate::cli::HandoffArgs;
use crate::error::{Error, Result};
use crate::output::Ui;

pub fn run(args: HandoffArgs, _ui: &mut Ui) -> Result<()> {
    match (&args.thread, &args.host) {
        (Some(_), Some(_)) => Err(Error::not_yet_available("handing a thread off")),
        (Some(_), None) => Err(Error::usage("missing_host", "which host should the thread go to?")
            .with_help("usage: git codex-handoff <THREAD> <HOST>; `local` brings a thread back to this computer")),
        _ => Err(Error::usage("missing_command", "no thread or command given")
            .with_help("usage: git codex-handoff <THREAD> <HOST>, or a subcommand; see `git codex-handoff --help`")),
    }
}
