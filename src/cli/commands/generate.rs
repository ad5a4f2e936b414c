//! Hidden plumbing: `generate man|completions <SHELL>` (for `make man` and
//! `make install`) and `__complete threads|hosts` (for the shell completions).

use crate::cli::args::{CompleteArgs, CompleteWhat, GenerateCommand};
use crate::cli::output::Ui;
use crate::error::Result;

pub fn generate(command: GenerateCommand, ui: &mut Ui) -> Result<()> {
    let text = match command {
        GenerateCommand::Man => crate::cli::manual::man_page(),
        GenerateCommand::Completions(args) => crate::cli::completion::script(args.shell),
    };
    ui.raw(&text);
    Ok(())
}

/// Candidates, one per line. Quiet and successful when there are none (for
/// example outside a repository): a completion must never print an error.
pub fn complete(args: CompleteArgs, ui: &mut Ui) -> Result<()> {
    let lines: Vec<String> = match args.what {
        CompleteWhat::Threads => match crate::repo::Repo::discover() {
            Ok(repo) => crate::thread::listing::list(&repo)
                .map(|threads| threads.iter().map(|t| t.state.number.to_string()).collect())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        },
        CompleteWhat::Hosts => {
            crate::config::hosts().map(|hosts| hosts.into_iter().map(|h| h.name).collect()).unwrap_or_default()
        }
    };
    for line in lines {
        ui.raw(&format!("{line}\n"));
    }
    Ok(())
}
