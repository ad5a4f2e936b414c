//! What a failed or refused connection tells the user: which side to
//! upgrade, where the helper is looked for, which step was cut short.

use super::protocol::{Hello, PROTOCOL_MACHINE_IDS, PROTOCOL_MAX};
use super::Located;
use crate::config::Host;
use crate::error::{Error, Kind};

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
