//! `git codex-handoff install-skill [--uninstall]`: the Codex skill that
//! tells Codex when and how to hand off another named thread.

use serde_json::json;

use crate::cli::args::InstallSkillArgs;
use crate::cli::output::Ui;
use crate::codex::skills::{self, Change};
use crate::error::Result;

/// The skill's name: its folder under `$CODEX_HOME/skills`, and what Codex lists it as.
pub const NAME: &str = "git-codex-handoff";

/// The skill file, as Codex loads it (front matter with `name` and `description`, then instructions).
pub const CONTENT: &str = include_str!("../skill.md");

/// The line that marks the file as this tool's.
const MARKER: &str = "<!-- Installed by `git codex-handoff install-skill`";

pub fn run(args: InstallSkillArgs, ui: &mut Ui) -> Result<()> {
    let (file, change) =
        if args.uninstall { skills::uninstall(NAME, MARKER)? } else { skills::install(NAME, CONTENT, MARKER)? };
    ui.json(&json!({ "skill": NAME, "path": file, "change": change }));
    let path = file.display();
    ui.say(match change {
        Change::Installed => format!("Installed the Codex skill {NAME}: {path}"),
        Change::Updated => format!("Updated the Codex skill {NAME}: {path}"),
        Change::Unchanged => format!("The Codex skill {NAME} is up to date: {path}"),
        Change::Removed => format!("Removed the Codex skill {NAME}: {path}"),
        Change::Absent => format!("The Codex skill {NAME} is not installed ({path})"),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codex needs the front matter first, with a one-line description it shows the model.
    #[test]
    fn the_skill_file_is_what_codex_loads() {
        let front = CONTENT.strip_prefix("---\n").expect("front matter first");
        let (front, body) = front.split_once("\n---\n").expect("front matter closed");
        assert!(front.lines().any(|l| l == format!("name: {NAME}")));
        let description = front.lines().find_map(|l| l.strip_prefix("description: ")).expect("a description");
        assert!(description.len() < 500, "{}", description.len());
        assert!(body.contains(MARKER));
        for needle in ["--yes --json", "destinations --json", "self_handoff", "\"error\"", "local"] {
            assert!(body.contains(needle), "{needle}");
        }
    }
}
