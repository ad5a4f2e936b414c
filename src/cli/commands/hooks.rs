//! `git codex-handoff install-hooks` and `git codex-handoff hook <NAME>`.

use serde_json::json;

use crate::cli::args::{HookArgs, InstallHooksArgs};
use crate::cli::output::Ui;
use crate::error::Result;
use crate::hooks::{self, Action};
use crate::repo::Repo;

pub fn install(args: InstallHooksArgs, ui: &mut Ui) -> Result<()> {
    let repo = Repo::discover()?;
    let dir = hooks::hooks_dir(&repo)?;
    let reports = if args.uninstall { hooks::uninstall(&dir)? } else { hooks::install(&dir)? };
    ui.json(&json!({ "hooks_dir": dir.to_string_lossy(), "hooks": reports }));
    for r in &reports {
        let what = match r.action {
            Action::Created => "installed",
            Action::Added => "added to the existing hook",
            Action::Updated => "updated",
            Action::Unchanged => "already installed",
            Action::Removed => "removed (the rest of the hook is kept)",
            Action::Deleted => "removed (the hook file held nothing else and was deleted)",
            Action::Absent => "was not installed",
        };
        ui.say(format!("{:<12} {what}: {}", r.name, r.path.display()));
    }
    Ok(())
}

/// Run a hook. Anything that goes wrong short of a refusal lets git go on:
/// a hook must never stop work because this tool has a problem of its own.
pub fn run(args: HookArgs, ui: &mut Ui) -> Result<()> {
    match args.name.as_str() {
        "pre-commit" => {
            let Ok(repo) = Repo::discover() else { return Ok(()) };
            match crate::thread::guard::pre_commit_refusal(&repo) {
                Ok(None) => Ok(()),
                Ok(Some(refusal)) => Err(refusal),
                Err(err) => {
                    ui.note(format!("git-codex-handoff: pre-commit check skipped: {}", err.full_message()));
                    Ok(())
                }
            }
        }
        other => {
            // A hook installed by a newer version: let git go on.
            ui.note(format!("git-codex-handoff: no hook named {other:?} in this version; ignored"));
            Ok(())
        }
    }
}
