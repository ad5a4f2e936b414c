//! Every git config key the tool reads, with its scope and default: one list
//! for `git codex-handoff config` and the man page's CONFIGURATION section.

use crate::config::{ALLOW_COMMITS_ELSEWHERE, ATTACH_COMMAND, CONNECT_TIMEOUT, INTERRUPT_TIMEOUT, IO_TIMEOUT};

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

pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "codex-handoff.machine",
        scope: Scope::Global,
        default: "the hostname",
        multi: false,
        description: "This machine's display name: what people see as a thread's owner_machine. Ownership is decided by the machine id, so two machines may share a name.",
    },
    Setting {
        key: crate::machine::MACHINE_ID_KEY,
        scope: Scope::Global,
        default: "a random id made on first use, kept in $XDG_STATE_HOME/git-codex-handoff/machine-id (~/.local/state/...)",
        multi: false,
        description: "Overrides this machine's id, which records a thread's owner. Set it only on purpose: two machines with one id cannot tell each other apart, and a host answering with this computer's id is refused.",
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
        default: "openssh where `ssh` is on PATH, else ssh2",
        multi: false,
        description: "openssh (the system ssh), ssh2 (libssh2 in-process) or local (a child process).",
    },
    Setting {
        key: "codex-handoff.<host>.helper",
        scope: Scope::Host,
        default: "git-codex-handoff",
        multi: false,
        description: "The helper's path on the host. When a command over ssh does not find it, the login shell there is asked (then ~/.cargo/bin, ~/.local/bin, /usr/local/bin, /opt/homebrew/bin) and the path found is stored here.",
    },
    Setting {
        key: CONNECT_TIMEOUT,
        scope: Scope::Global,
        default: "20",
        multi: false,
        description: "Seconds to wait for a host: connecting, logging in and the helper's first answer together (a passphrase typed at a prompt counts too); past it the command fails with exit status 5.",
    },
    Setting {
        key: IO_TIMEOUT,
        scope: Scope::Global,
        default: "45",
        multi: false,
        description: "Seconds a handoff waits on a connection that carries nothing: for the helper's next answer \
                      (a helper at work says so now and then) and for the next bytes of a transfer (every byte \
                      counts, so a slow but live transfer goes on). Past it the command fails with exit status 5, \
                      saying where the thread is; running it again finishes. SSH keepalives \
                      (ServerAliveInterval, ServerAliveCountMax, unless ~/.ssh/config sets them; libssh2's \
                      keepalive for ssh2) end a dead link after about as long.",
    },
    Setting {
        key: INTERRUPT_TIMEOUT,
        scope: Scope::Repository,
        default: "10",
        multi: false,
        description: "Seconds a handoff waits after SIGINT (and again after SIGTERM) for a running thread to stop; --interrupt-timeout overrides it.",
    },
    Setting {
        key: ATTACH_COMMAND,
        scope: Scope::Repository,
        default: "codex resume {codex_thread} for a Codex thread, else the login shell",
        multi: false,
        description: "What --attach runs in the thread's worktree where it arrived, in this terminal: a /bin/sh command \
                      line (run there, with its exit status returned) whose placeholders {thread} (UUID), {number}, \
                      {title}, {branch}, {codex_thread} and {worktree} are passed as arguments, never parsed as code.",
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
        description: "A cache of the clone's roots fingerprint (its default branch's root commits), written by the \
                      tool; remove it to recompute.",
    },
];

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
    fn keys_are_classified() {
        assert_eq!(classify("codex-handoff.machine").unwrap().0.key, "codex-handoff.machine");
        assert_eq!(classify("codex-handoff.worktreeroot").unwrap().0.key, "codex-handoff.worktreeRoot");
        let (s, host) = classify("codex-handoff.my.box.transport").unwrap();
        assert_eq!((s.key, host.as_deref()), ("codex-handoff.<host>.transport", Some("my.box")));
        assert!(classify("codex-handoff.testfault").is_none());
    }
}
