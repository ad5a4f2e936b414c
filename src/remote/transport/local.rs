//! The `local` transport: the helper runs as a child process of this one,
//! with the host's "ssh" value as its HOME; git reaches the repository over
//! the file system. For tests, demos and two clones on one machine.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::explain::install_help;
use super::link::{helper_args, Link};
use super::process::ProcessLink;
use crate::config::Host;
use crate::error::{Error, Kind, Result};

pub struct LocalLink {
    process: ProcessLink,
    host: Host,
}

pub fn start(host: &Host) -> Result<LocalLink> {
    let mut cmd = helper_command(host, &host.helper)?;
    cmd.args(helper_args());
    let process = ProcessLink::spawn(cmd).map_err(|e| {
        Error::new(
            Kind::Helper,
            "helper_missing",
            format!("the helper is not installed on {}: {}", host.name, host.helper),
        )
        .with_help(install_help(host))
        .with_source(e)
    })?;
    Ok(LocalLink { process, host: host.clone() })
}

/// The helper `program` as the host runs it: its own HOME, nothing of this repository's or this user's.
fn helper_command(host: &Host, program: &str) -> Result<Command> {
    let helper =
        if program == crate::config::DEFAULT_HELPER { std::env::current_exe()? } else { PathBuf::from(program) };
    let mut cmd = Command::new(helper);
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_COMMON_DIR",
        "GIT_PREFIX",
        "GIT_CONFIG_GLOBAL",
        "CODEX_HOME",
        // The helper plays another machine: its own state, config and machine id under its HOME.
        "XDG_STATE_HOME",
        "XDG_CONFIG_HOME",
        // A thread's command here names it; over there it is another process.
        "CODEX_HANDOFF_THREAD",
        "CODEX_HANDOFF_TRANSCRIPT",
        crate::fault::ENV,
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", &host.ssh);
    Ok(cmd)
}

impl Link for LocalLink {
    fn input(&mut self) -> Option<&mut dyn Write> {
        self.process.input()
    }
    fn output(&mut self) -> &mut dyn BufRead {
        self.process.output()
    }
    fn output_ready(&mut self, timeout: Duration) -> bool {
        self.process.output_ready(timeout)
    }
    fn input_ready(&mut self, timeout: Duration) -> bool {
        self.process.input_ready(timeout)
    }
    fn heard(&self) -> Option<std::time::Instant> {
        Some(self.process.heard())
    }
    fn close_input(&mut self) {
        self.process.close_input()
    }
    fn wait_exit(&mut self, timeout: Duration) -> Option<Option<i32>> {
        self.process.wait_exit(timeout)
    }
    fn kill(&mut self) {
        self.process.kill()
    }
    fn interactive(&mut self, program: &str, args: &[&str]) -> Option<Result<i32>> {
        let run = helper_command(&self.host, program).and_then(|mut cmd| {
            cmd.args(args);
            super::process::run_in_terminal(cmd)
        });
        Some(run)
    }
    fn stderr_text(&self) -> String {
        self.process.stderr_text()
    }
    fn connection_failed(&self, _exit_code: Option<i32>) -> bool {
        false
    }
    fn connection_lost(&self, _stderr: &str) -> bool {
        false
    }
    fn git_url(&self, path: &str) -> String {
        path.to_owned()
    }
    fn git_env(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}
