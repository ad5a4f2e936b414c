//! Every git config key the tool reads, with its scope and default: one list
//! for `git codex-handoff config` and the man page's CONFIGURATION section.

use std::process::Command;

use crate::error::{Error, Result};

/// Where a key is normally set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The user's global config (`git config --global`): per machine and user.
    Global,
    /// The repository's config, or the global one for every repository.
    Repository,
    /// One key per configured host (`[codex-handoff "<name>"]` in the global config).
    Host,
}

#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The key as documented; `<host>` stands for a host name.
    pub key: &'static str,
    pub scope: Scope,
    /// The default, as text for people.
    pub default: &'static str,
    pub multi: bool,
    pub description: &'static str,
}

/// How long a handoff waits for a running thread to stop.
pub const INTERRUPT_TIMEOUT: &str = "codex-handoff.interruptTimeout";

/// The allow-commits override of the pre-commit hook.
pub const ALLOW_COMMITS_ELSEWHERE: &str = "codex-handoff.allowCommitsElsewhere";

pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "codex-handoff.machine",
        scope: Scope::Global,
        default: "the hostname",
        multi: false,
        description: "This machine's name: what other machines record as a thread's owner_machine.",
    },
    Setting {
        key: "codex-handoff.worktreeRoot",
        scope: Scope::Global,
        default: "~/.codex/worktrees",
        multi: false,
        description: "Where threads that arrive on this machine get their new worktrees.",
    },
    Setting {
        key: "codex-handoff.project",
        scope: Scope::Global,
        default: "none",
        multi: true,
        description: "A saved project directory, a handoff target (`project save` adds one; multi-valued).",
    },
    Setting {
        key: "codex-handoff.<host>.ssh",
        scope: Scope::Host,
        default: "none (required)",
        multi: false,
        description: "How to reach the host: anything `ssh` accepts; for the local transport, the helper's HOME.",
    },
    Setting {
        key: "codex-handoff.<host>.transport",
        scope: Scope::Host,
        default: "openssh",
        multi: false,
        description: "openssh (the system ssh), ssh2 (libssh2 in-process) or local (a child process).",
    },
    Setting {
        key: "codex-handoff.<host>.helper",
        scope: Scope::Host,
        default: "git-codex-handoff",
        multi: false,
        description: "The helper's path on the host; give an absolute path when its PATH lacks it.",
    },
    Setting {
        key: INTERRUPT_TIMEOUT,
        scope: Scope::Repository,
        default: "10",
        multi: false,
        description: "Seconds a handoff waits after SIGINT (and again after SIGTERM) for a running thread to stop; --interrupt-timeout overrides it.",
    },
    Setting {
        key: ALLOW_COMMITS_ELSEWHERE,
        scope: Scope::Repository,
        default: "false",
        multi: false,
        description: "When true, the pre-commit hook allows commits in a worktree whose thread is on another machine.",
    },
    Setting {
        key: "codex-handoff.fingerprint",
        scope: Scope::Repository,
        default: "computed",
        multi: false,
        description: "A cache of the repository's fingerprint, written by the tool; remove it to recompute.",
    },
];

/// One value found in git's config.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Found {
    /// The key as git spells it (lower case except the host name).
    pub key: String,
    pub value: String,
    /// git's scope name: `global`, `local`, `worktree`, `system` or `command`.
    pub origin: String,
}

/// Every `codex-handoff.*` value git sees from the current directory
/// (all scopes, in git's order: later wins).
pub fn found() -> Result<Vec<Found>> {
    let mut cmd = Command::new("git");
    cmd.args(["config", "--show-scope", "-z", "--get-regexp", r"^codex-handoff\."]);
    let out = cmd.output().map_err(|e| Error::failed("git_missing", "could not run git config").with_source(e))?;
    // Exit 1 means "no such keys".
    if !out.status.success() && out.status.code() != Some(1) {
        return Err(Error::failed(
            "config",
            format!("git config failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        ));
    }
    Ok(parse_show_scope(&out.stdout))
}

/// `git config --show-scope -z --get-regexp` prints `scope NUL key LF value NUL` per entry.
pub fn parse_show_scope(bytes: &[u8]) -> Vec<Found> {
    let fields: Vec<String> = bytes.split(|b| *b == 0).map(|f| String::from_utf8_lossy(f).into_owned()).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < fields.len() {
        let origin = fields[i].clone();
        let (key, value) = match fields[i + 1].split_once('\n') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (fields[i + 1].clone(), String::new()),
        };
        if !key.is_empty() {
            out.push(Found { key, value, origin });
        }
        i += 2;
    }
    out
}

/// Which documented setting a key found in config is, and for host keys the host's name.
pub fn classify(key: &str) -> Option<(&'static Setting, Option<String>)> {
    let lower = key.to_ascii_lowercase();
    if let Some(setting) = SETTINGS.iter().find(|s| s.scope != Scope::Host && s.key.to_ascii_lowercase() == lower) {
        return Some((setting, None));
    }
    let rest = key.strip_prefix("codex-handoff.").or_else(|| key.strip_prefix("Codex-Handoff."))?;
    let (host, field) = rest.rsplit_once('.')?;
    let field = field.to_ascii_lowercase();
    SETTINGS
        .iter()
        .find(|s| s.scope == Scope::Host && s.key.rsplit('.').next() == Some(field.as_str()))
        .map(|s| (s, Some(host.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_scope_output_is_parsed() {
        let raw = b"global\0codex-handoff.machine\nlaptop\0local\0codex-handoff.devbox.ssh\nme@devbox\0";
        let found = parse_show_scope(raw);
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].origin.as_str(), found[0].key.as_str(), found[0].value.as_str()),
            ("global", "codex-handoff.machine", "laptop")
        );
        assert_eq!(found[1].key, "codex-handoff.devbox.ssh");
    }

    #[test]
    fn keys_are_classified() {
        assert_eq!(classify("codex-handoff.machine").unwrap().0.key, "codex-handoff.machine");
        assert_eq!(classify("codex-handoff.worktreeroot").unwrap().0.key, "codex-handoff.worktreeRoot");
        let (s, host) = classify("codex-handoff.my.box.transport").unwrap();
        assert_eq!((s.key, host.as_deref()), ("codex-handoff.<host>.transport", Some("my.box")));
        assert!(classify("codex-handoff.testfault").is_none());
    }
}
