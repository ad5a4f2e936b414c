//! Who this machine is. Ownership rests on the machine id: a random id made
//! on first use and kept in the user's state directory
//! (`$XDG_STATE_HOME/git-codex-handoff/machine-id`, default
//! `~/.local/state/...`). Not in `~/.gitconfig`, which people sync between
//! machines; `codex-handoff.machineId` in git config overrides it only when
//! set on purpose. The display name (`codex-handoff.machine`, default the
//! hostname) is for people: hostnames repeat, so nothing is decided by it.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::repo::Repo;

/// The git config key that overrides the machine id.
pub const MACHINE_ID_KEY: &str = "codex-handoff.machineId";

/// This machine as the thread store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub id: String,
    /// The display name.
    pub name: String,
}

impl Machine {
    /// This machine: its id, and its display name as `repo` sees it (so a
    /// repository may name the machine differently; the id never varies).
    pub fn this(repo: Option<&Repo>) -> Result<Machine> {
        let name = match repo {
            Some(repo) => crate::repo::machine_name(Some(repo)),
            None => crate::config::machine_name(),
        };
        Ok(Machine { id: this_id()?, name })
    }

    /// Is the machine recorded as (`id`, `name`) this one? Records made
    /// before machine ids existed carry only the name.
    pub fn is(&self, id: Option<&str>, name: &str) -> bool {
        match id {
            Some(id) => id == self.id,
            None => name == self.name,
        }
    }
}

/// This machine's id (read once per process).
pub fn this_id() -> Result<String> {
    static ID: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    let found = ID.get_or_init(|| find_or_make_id().map_err(|e| e.full_message()));
    found.clone().map_err(|message| {
        Error::failed("machine_id", message).with_help(format!(
            "remove {} to make a new id (threads this machine owns then look owned elsewhere), or set {MACHINE_ID_KEY}",
            id_file().map(|p| p.display().to_string()).unwrap_or_else(|_| "the machine-id file".into())
        ))
    })
}

/// This machine's id if it has one yet (never makes one: for showing).
pub fn known_id() -> Option<String> {
    if let Ok(Some(id)) = crate::config::global_value(MACHINE_ID_KEY) {
        return Some(id.trim().to_owned());
    }
    std::fs::read_to_string(id_file().ok()?).ok().map(|t| t.trim().to_owned())
}

fn find_or_make_id() -> Result<String> {
    if let Some(id) = crate::config::global_value(MACHINE_ID_KEY)? {
        let id = id.trim().to_owned();
        check_id(&id).map_err(|why| Error::failed("machine_id", format!("{MACHINE_ID_KEY} {why}")))?;
        return Ok(id);
    }
    let file = id_file()?;
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let id = text.trim().to_owned();
            check_id(&id)
                .map_err(|why| Error::failed("machine_id", format!("the machine id in {} {why}", file.display())))?;
            Ok(id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => make_id(&file),
        Err(e) => Err(Error::failed("machine_id", format!("could not read {}", file.display())).with_source(e)),
    }
}

/// Write a new id where none is; two processes starting at once agree on one.
fn make_id(file: &std::path::Path) -> Result<String> {
    let dir = file.parent().ok_or_else(|| Error::failed("machine_id", "the state directory has no parent"))?;
    std::fs::create_dir_all(dir)?;
    let id = uuid::Uuid::new_v4().to_string();
    let tmp = dir.join(format!(".machine-id.{}", std::process::id()));
    std::fs::write(&tmp, format!("{id}\n"))?;
    // A hard link never replaces an existing file: whoever links first wins.
    let linked = std::fs::hard_link(&tmp, file);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(id),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(file)?;
            let id = text.trim().to_owned();
            check_id(&id)
                .map_err(|why| Error::failed("machine_id", format!("the machine id in {} {why}", file.display())))?;
            Ok(id)
        }
        Err(e) => Err(Error::failed("machine_id", format!("could not write {}", file.display())).with_source(e)),
    }
}

/// `$XDG_STATE_HOME/git-codex-handoff/machine-id`, default `~/.local/state/...`.
pub fn id_file() -> Result<PathBuf> {
    Ok(state_dir()?.join("machine-id"))
}

/// This tool's per-user state on this machine: `$XDG_STATE_HOME/git-codex-handoff`, default `~/.local/state/...`.
pub fn state_dir() -> Result<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        // The XDG rules ignore a relative path.
        .filter(|p| p.is_absolute());
    let base = match state {
        Some(dir) => dir,
        None => crate::config::home()?.join(".local").join("state"),
    };
    Ok(base.join("git-codex-handoff"))
}

/// Ids are short printable words: they travel in notes and on the wire.
pub fn check_id(id: &str) -> std::result::Result<(), &'static str> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err("is not a machine id (1 to 128 letters, digits, `-`, `_`, `.` or `:`)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_ids_decide_and_names_only_for_old_records() {
        let me = Machine { id: "id-1".into(), name: "box".into() };
        assert!(me.is(Some("id-1"), "other-name"));
        assert!(!me.is(Some("id-2"), "box"), "a machine with the same name is another machine");
        assert!(me.is(None, "box"));
        assert!(!me.is(None, "other"));
        assert!(check_id("0b5c6f0e-3c1e-4a57-9a7e-4f3f1f8a9b10").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("has space").is_err());
    }
}
