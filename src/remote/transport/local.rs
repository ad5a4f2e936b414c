//! The `local` transport: the helper runs as a child process of this one,
//! with the host's "ssh" value as its HOME; git reaches the repository over
//! the file system. For tests, demos and two clones on one machine.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::process::ProcessLink;
use super::{helper_args, install_help, Link};
use crate::config::Host;
use crate::error::{Error, Kind, Result};

pub struct LocalLink(ProcessLink);

pub fn start(host: &Host) -> Result<LocalLink> {
    let helper = if host.helper == crate::config::DEFAULT_HELPER {
        std::env::current_exe()?
    } else {
        PathBuf::from(&host.helper)
    };
    let mut cmd = Command::new(helper);
    cmd.args(helper_args());
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
        crate::fault::ENV,
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", &host.ssh);
    let link = ProcessLink::spawn(cmd).map_err(|e| {
        Error::new(
            Kind::Helper,
            "helper_missing",
            format!("the helper is not installed on {}: {}", host.name, host.helper),
        )
        .with_help(install_help(host))
        .with_source(e)
    })?;
    Ok(LocalLink(link))
}

impl Link for LocalLink {
    fn input(&mut self) -> Option<&mut dyn Write> {
        self.0.input()
    }
    fn output(&mut self) -> &mut dyn BufRead {
        self.0.output()
    }
    fn output_ready(&mut self, timeout: Duration) -> bool {
        self.0.output_ready(timeout)
    }
    fn close_input(&mut self) {
        self.0.close_input()
    }
    fn wait_exit(&mut self, timeout: Duration) -> Option<Option<i32>> {
        self.0.wait_exit(timeout)
    }
    fn kill(&mut self) {
        self.0.kill()
    }
    fn stderr_text(&self) -> String {
        self.0.stderr_text()
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
