//! Skills in `$CODEX_HOME/skills/<name>/SKILL.md`: a folder the Codex CLI
//! loads skills from with no configuration. Only a file that carries
//! `marker` (one this tool wrote) is ever replaced or removed.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// What installing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Installed,
    Updated,
    Unchanged,
    Removed,
    Absent,
}

/// `$CODEX_HOME/skills/<name>/SKILL.md`.
pub fn skill_file(name: &str) -> Result<PathBuf> {
    Ok(super::codex_home()?.join("skills").join(name).join("SKILL.md"))
}

/// Write the skill `name` with `content` (which holds `marker`), unless the same is there.
pub fn install(name: &str, content: &str, marker: &str) -> Result<(PathBuf, Change)> {
    let file = skill_file(name)?;
    let change = match std::fs::read_to_string(&file) {
        Ok(current) if current == content => return Ok((file, Change::Unchanged)),
        Ok(current) if current.contains(marker) => Change::Updated,
        Ok(_) => return Err(foreign(&file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Change::Installed,
        Err(e) => {
            return Err(Error::failed("skill_unreadable", format!("cannot read {}", file.display())).with_source(e))
        }
    };
    let dir = file.parent().expect("a skill file is in a folder");
    std::fs::create_dir_all(dir)?;
    // Codex may read the folder at any moment: the file appears whole.
    let tmp = dir.join(".SKILL.md.tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, &file)?;
    Ok((file, change))
}

/// Remove the skill `name` (and its folder, once empty) if this tool wrote it.
pub fn uninstall(name: &str, marker: &str) -> Result<(PathBuf, Change)> {
    let file = skill_file(name)?;
    match std::fs::read_to_string(&file) {
        Ok(current) if current.contains(marker) => {
            std::fs::remove_file(&file)?;
            if let Some(dir) = file.parent() {
                // Left where the user keeps files of their own beside it.
                let _ = std::fs::remove_dir(dir);
            }
            Ok((file, Change::Removed))
        }
        Ok(_) => Err(foreign(&file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((file, Change::Absent)),
        Err(e) => Err(Error::failed("skill_unreadable", format!("cannot read {}", file.display())).with_source(e)),
    }
}

fn foreign(file: &std::path::Path) -> Error {
    Error::refused("skill_foreign", format!("{} was not written by git-codex-handoff", file.display()))
        .with_help("move it away (or set CODEX_HOME elsewhere) and run the command again")
}
