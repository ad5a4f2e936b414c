//! The `openssh` transport: the system `ssh` opens one ControlMaster
//! connection (socket in a private 0700 temp directory, named after this
//! process so a later run can remove it if this one is killed) running the helper;
//! git reaches the host through the same connection via `GIT_SSH_COMMAND`.
//! `~/.ssh/config`, ProxyJump, agents and certificates apply as for git.

use std::io::{BufRead, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process::ProcessLink;
use super::{helper_args, Link};
use crate::config::Host;
use crate::error::{Error, Kind, Result};

pub struct OpensshLink {
    process: ProcessLink,
    destination: String,
    /// Holds the ControlMaster socket; removed when the link is dropped.
    _dir: tempfile::TempDir,
    /// The ssh command that reuses the connection (for `GIT_SSH_COMMAND`).
    reuse_command: String,
}

/// The name of a socket directory starts with this, then the owner's pid and `-`.
const SOCKET_DIR_PREFIX: &str = "cxh-";

pub fn start(host: &Host, connect_timeout: Duration) -> Result<OpensshLink> {
    crate::config::check_destination(&host.ssh)?;
    crate::config::check_helper(&host.helper)?;
    // Unix socket paths are short: keep the directory near the root.
    let base = if std::env::temp_dir().as_os_str().len() > 60 { PathBuf::from("/tmp") } else { std::env::temp_dir() };
    remove_stale_socket_dirs(&base);
    // Only this user may reach the socket: the directory is made 0700, whatever the umask.
    let dir = tempfile::Builder::new()
        .prefix(&format!("{SOCKET_DIR_PREFIX}{}-", std::process::id()))
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(base)?;
    let socket = dir.path().join("cm");
    let base_cmd = base_ssh_command();
    let socket_text = socket.to_string_lossy().into_owned();
    let mut cmd = Command::new("sh");
    // Like git, run the ssh command through the shell so GIT_SSH_COMMAND may carry options.
    cmd.arg("-c").arg(format!("{base_cmd} \"$@\"")).arg("ssh");
    cmd.args(["-o", "ControlMaster=yes", "-o"]);
    cmd.arg(format!("ControlPath={socket_text}"));
    cmd.arg("-o").arg(format!("ConnectTimeout={}", connect_timeout.as_secs().max(1)));
    cmd.args(["-o", "ControlPersist=no", "--", &host.ssh, &host.helper]);
    cmd.args(helper_args());
    let reuse_command = format!("{base_cmd} -o ControlMaster=no -o ControlPath={}", shell_quote(&socket_text));
    let process = ProcessLink::spawn(cmd).map_err(|e| {
        Error::new(Kind::Unreachable, "spawn_failed", format!("could not start the connection to {}", host.name))
            .with_help("is `ssh` installed and on PATH?")
            .with_source(e)
    })?;
    Ok(OpensshLink { process, destination: host.ssh.clone(), _dir: dir, reuse_command })
}

/// Remove the socket directories of our earlier runs that were killed
/// before they could clean up: ours (same user), real directories, whose
/// owner process is gone.
fn remove_stale_socket_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SOCKET_DIR_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(meta) = entry.path().symlink_metadata() else { continue };
        if meta.is_dir() && meta.uid() == me && !crate::process::alive(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The user's ssh command as git would use it: GIT_SSH_COMMAND, core.sshCommand, or `ssh`.
fn base_ssh_command() -> String {
    if let Some(cmd) = std::env::var_os("GIT_SSH_COMMAND").filter(|c| !c.is_empty()) {
        return cmd.to_string_lossy().into_owned();
    }
    let out = Command::new("git").args(["config", "--get", "core.sshCommand"]).output();
    if let Ok(out) = out {
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !text.is_empty() {
            return text;
        }
    }
    "ssh".to_owned()
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

impl Link for OpensshLink {
    fn input(&mut self) -> Option<&mut dyn Write> {
        self.process.input()
    }
    fn output(&mut self) -> &mut dyn BufRead {
        self.process.output()
    }
    fn output_ready(&mut self, timeout: Duration) -> bool {
        self.process.output_ready(timeout)
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
    fn stderr_text(&self) -> String {
        self.process.stderr_text()
    }
    /// ssh exits 255 when it could not connect or authenticate.
    fn connection_failed(&self, exit_code: Option<i32>) -> bool {
        exit_code == Some(255)
    }
    /// ssh's own words when the connection drops (the helper's death says none of these).
    fn connection_lost(&self, stderr: &str) -> bool {
        ["closed by remote host", "Broken pipe", "Connection reset", "Timeout, server", "client_loop:"]
            .iter()
            .any(|s| stderr.contains(s))
    }
    fn git_url(&self, path: &str) -> String {
        if self.destination.starts_with("ssh://") {
            format!("{}{}", self.destination.trim_end_matches('/'), path)
        } else {
            format!("{}:{}", self.destination, path)
        }
    }
    fn git_env(&self) -> Vec<(String, String)> {
        vec![
            ("GIT_SSH_COMMAND".to_owned(), self.reuse_command.clone()),
            ("GIT_SSH_VARIANT".to_owned(), "ssh".to_owned()),
        ]
    }
}
