//! What a failed or refused connection tells the user: which side to
//! upgrade, where the helper is looked for, which step was cut short.

use std::time::Duration;

use super::protocol::{Hello, PROTOCOL_MACHINE_IDS, PROTOCOL_MAX};
use super::{Connection, Located, Lost};
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

impl Connection {
    /// Why the helper stopped answering: unreachable host, missing helper,
    /// a crash of the helper or a connection lost after it had started.
    pub(super) fn failure(&mut self, op: &str) -> Error {
        if let Some(Lost::Silent(limit)) = self.lost {
            // The other side may never answer again: stop waiting for it.
            self.link.kill();
            return Error::new(
                Kind::Unreachable,
                "connection_lost",
                format!(
                    "lost the connection to {} during {} (no answer for {})",
                    self.host.name,
                    step_of(op),
                    seconds(limit)
                ),
            )
            .with_help(RERUN_HELP);
        }
        self.link.close_input();
        let code = self.link.wait_exit(Duration::from_secs(5)).flatten();
        std::thread::sleep(Duration::from_millis(50));
        // The helper logs each request it serves; what it said besides is the news.
        let stderr: Vec<String> = self
            .link
            .stderr_text()
            .lines()
            .filter(|l| !l.starts_with(HELPER_LOG) || l.contains(" failed: "))
            .map(str::to_owned)
            .collect();
        // The other machine's words: shown as text, never as terminal controls.
        let stderr = crate::text::printable_lines(stderr.join("\n").trim());
        let said = if stderr.is_empty() { String::new() } else { format!(": {stderr}") };
        let not_found = code == Some(127) || stderr.contains("not found") || stderr.contains("No such file");
        // After the hello the connection was up: ssh's 255 then also means the
        // helper died of a signal, not that the host could not be reached.
        let started = self.hello.protocol != 0;
        if started {
            let step = step_of(op);
            if self.link.connection_lost(&stderr) {
                return Error::new(
                    Kind::Unreachable,
                    "connection_lost",
                    format!("lost the connection to {} during {step}{said}", self.host.name),
                )
                .with_help(RERUN_HELP);
            }
            return Error::failed(
                "helper_died",
                format!("the helper on {} stopped during {step}{said}", self.host.name),
            )
            .with_help(RERUN_HELP);
        }
        if self.link.connection_failed(code) {
            return Error::new(
                Kind::Unreachable,
                "host_unreachable",
                format!("could not connect to {} ({}){said}", self.host.name, self.host.ssh),
            )
            .with_help(format!(
                "check that `ssh {}` works from this computer (keys, known_hosts, network)",
                self.host.ssh
            ));
        }
        if not_found && op == "hello" {
            return Error::new(
                Kind::Helper,
                "helper_missing",
                format!("the helper is not installed on {}{said}", self.host.name),
            )
            .with_help(install_help(&self.host));
        }
        Error::failed("helper_died", format!("the helper on {} stopped during {}{said}", self.host.name, step_of(op)))
            .with_help(RERUN_HELP)
    }
}

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
    #[test]
    fn limits_read_as_seconds() {
        use std::time::Duration;
        assert_eq!(super::seconds(Duration::from_secs(45)), "45 s");
        assert_eq!(super::seconds(Duration::from_millis(1500)), "1.5 s");
    }
}
