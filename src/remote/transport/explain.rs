//! What a failed or refused connection tells the user: which side to
//! upgrade, where the helper is looked for, which step was cut short.

use std::time::Duration;

use super::locate::Located;
use crate::config::Host;
use crate::error::{Error, Kind};
use crate::remote::protocol::{Hello, PROTOCOL_MACHINE_IDS, PROTOCOL_MAX};

/// A helper outside this computer's protocol range: which side to upgrade, and how.
pub(super) fn incompatible(host: &Host, hello: &Hello, located: Option<&Located>) -> Error {
    let at = located.map(|l| format!(" at {}", l.shown)).unwrap_or_default();
    let here = env!("CARGO_PKG_VERSION");
    let help = if hello.protocol < PROTOCOL_MACHINE_IDS {
        format!(
            "upgrade the helper on {} to version {here}: `cargo install --locked --path .` in a checkout of it there \
             (or `make install`, the way it was installed{at})",
            host.name
        )
    } else {
        format!(
            "upgrade git-codex-handoff on this computer to version {}: `cargo install --locked --path .` in a \
             checkout of it (or `make install`)",
            hello.version
        )
    };
    Error::new(
        Kind::Helper,
        "helper_incompatible",
        format!(
            "the helper on {}{at} is version {} and speaks protocol {}; this computer's git-codex-handoff {here} \
             speaks protocol {PROTOCOL_MACHINE_IDS}-{PROTOCOL_MAX}",
            host.name, hello.version, hello.protocol
        ),
    )
    .with_help(help)
}

/// How the helper's log lines on stderr begin.
pub(super) const HELPER_LOG: &str = "git-codex-handoff helper: ";

pub(super) const RERUN_HELP: &str = "run the same command again: it finishes or cleanly restarts the handoff";

/// A limit as people read it: `45 s`, `1.5 s`.
pub(super) fn seconds(limit: Duration) -> String {
    if limit.subsec_millis() == 0 {
        format!("{} s", limit.as_secs())
    } else {
        format!("{:.1} s", limit.as_secs_f64())
    }
}

/// A request as the step of a handoff it is, for messages.
pub(super) fn step_of(op: &str) -> String {
    match op {
        "hello" => "the start of the session".into(),
        "find_project" => "the search for the project".into(),
        "plan" => "planning".into(),
        "begin" => "the start of the handoff".into(),
        "status" => "reading the thread's state".into(),
        "receive" => "the restore".into(),
        "depart" => "the snapshot".into(),
        "release" => "letting go of the thread".into(),
        "pack_in" => "the push".into(),
        "pack_out" => "the fetch".into(),
        "transcript_in" | "transcript_out" => "the transcript's transfer".into(),
        "descends" => "the branch check".into(),
        other => format!("`{other}`"),
    }
}

/// Two machines with one id would both believe they own a thread.
pub(super) fn same_machine(host: &Host, id: &str) -> Error {
    let file =
        crate::machine::id_file().map(|p| p.display().to_string()).unwrap_or_else(|_| "the machine-id file".into());
    Error::refused(
        "same_machine_id",
        format!(
            "{} answered with this computer's own machine id ({id}): the two cannot tell each other apart",
            host.name
        ),
    )
    .with_help(format!(
        "a copied home directory or a synced `{}` setting gives two machines one id; on one of them (one that owns \
         no threads), remove {file} and unset {} so it makes a new id",
        crate::machine::MACHINE_ID_KEY,
        crate::machine::MACHINE_ID_KEY
    ))
}

pub fn install_help(host: &Host) -> String {
    format!(
        "install git-codex-handoff on {0} (e.g. `cargo install --path .` there): it is looked for on the PATH, \
         through the login shell and in {2}; or give its absolute path: \
         `git codex-handoff host add {0} {1} --helper /path/to/git-codex-handoff`",
        host.name,
        host.ssh,
        crate::login_shell::USUAL_FOLDERS.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TransportKind;

    #[test]
    fn limits_read_as_seconds() {
        use std::time::Duration;
        assert_eq!(super::seconds(Duration::from_secs(45)), "45 s");
        assert_eq!(super::seconds(Duration::from_millis(1500)), "1.5 s");
    }

    #[test]
    fn an_incompatible_helper_says_which_side_to_upgrade() {
        let host = Host { transport: TransportKind::Openssh, ..Host::new("devbox", "me@devbox") };
        let hello = |protocol, version: &str| Hello {
            protocol,
            version: version.into(),
            machine: "devbox".into(),
            machine_id: String::new(),
            worktree_root: None,
            executable: None,
            heartbeat: false,
        };
        let newer = incompatible(&host, &hello(PROTOCOL_MAX + 1, "9.0.0"), None);
        assert_eq!((newer.exit_code(), newer.code.as_ref()), (6, "helper_incompatible"));
        assert!(newer.message.contains("is version 9.0.0 and speaks protocol"), "{}", newer.message);
        assert!(newer.message.contains(env!("CARGO_PKG_VERSION")), "{}", newer.message);
        assert!(newer.help.unwrap().starts_with("upgrade git-codex-handoff on this computer to version 9.0.0"));
        let older = incompatible(&host, &hello(0, "0.0.1"), None);
        assert!(older.help.unwrap().starts_with("upgrade the helper on devbox to version"));
    }
}
