//! The `openssh` transport: the system `ssh` opens one ControlMaster
//! connection (socket in a private 0700 temp directory, named after this
//! process so a later run can remove it if this one is killed) whose first session
//! runs the helper; git, and when the helper is not on the plain PATH the
//! login shell that finds it, reach the host through the same connection as
//! further sessions. `~/.ssh/config`, ProxyJump, agents and certificates
//! apply as for git.

use std::io::{BufRead, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::link::{helper_args, Link, Opening};
use super::process::ProcessLink;
use crate::config::Host;
use crate::error::{Error, Kind, Result};

/// How long the connection outlives its last session. The helper's session
/// lasts the whole handoff and the connection is closed on purpose at the
/// end; this only bounds what a killed process leaves behind, while giving
/// the moment between a missing helper and the lookup that follows.
const PERSIST: &str = "ControlPersist=30";

pub struct OpensshLink {
    process: ProcessLink,
    destination: String,
    /// The user's ssh command (shell syntax, as git takes it).
    base_command: String,
    socket: String,
    /// Holds the ControlMaster socket; removed when the link is dropped.
    _dir: tempfile::TempDir,
    /// The ssh command that reuses the connection (for `GIT_SSH_COMMAND`).
    reuse_command: String,
}

pub fn start(host: &Host, opening: Opening) -> Result<OpensshLink> {
    crate::config::check_destination(&host.ssh)?;
    crate::config::check_helper(&host.helper)?;
    let dir = super::socket_dir::create()?;
    let socket = dir.path().join("cm").to_string_lossy().into_owned();
    let base_command = base_ssh_command();
    // With ControlPersist the first ssh becomes a client of the connection
    // it opened, so the connection outlives the helper's session.
    let mut cmd = ssh(&base_command);
    cmd.args(["-o", "ControlMaster=yes", "-o", &format!("ControlPath={socket}"), "-o", PERSIST]);
    cmd.arg("-o").arg(format!("ConnectTimeout={}", opening.connect_timeout.as_secs().max(1)));
    if opening.batch {
        cmd.args(["-o", "BatchMode=yes"]);
    }
    for option in keepalive_options(&base_command, &host.ssh, opening.io_timeout) {
        cmd.arg("-o").arg(option);
    }
    cmd.args(["--", &host.ssh, &host.helper]);
    cmd.args(helper_args());
    let reuse_command = format!("{base_command} -o ControlMaster=no -o ControlPath={}", shell_quote(&socket));
    let process = ProcessLink::spawn(cmd).map_err(|e| {
        Error::new(Kind::Unreachable, "spawn_failed", format!("could not start the connection to {}", host.name))
            .with_help("is `ssh` installed and on PATH?")
            .with_source(e)
    })?;
    Ok(OpensshLink { process, destination: host.ssh.clone(), base_command, socket, _dir: dir, reuse_command })
}

/// Keepalives unanswered before ssh drops the connection (its ServerAliveCountMax).
const KEEPALIVE_COUNT: u64 = 3;

/// `ServerAliveInterval` and `ServerAliveCountMax` for a dead link to end
/// the connection after about `io_timeout`, unless the user's ssh
/// configuration for `destination` sets them (as `ssh -G` reports it).
fn keepalive_options(base_command: &str, destination: &str, io_timeout: Duration) -> Vec<String> {
    let mut cmd = ssh(base_command);
    cmd.args(["-G", "--", destination]).stdin(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let Ok(out) = cmd.output() else { return Vec::new() };
    let effective = String::from_utf8_lossy(&out.stdout);
    let value = |key: &str| {
        effective.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' '))).map(str::trim)
    };
    // ssh's own default: 0, or 300 in batch mode.
    let default = if value("batchmode") == Some("yes") { "300" } else { "0" };
    if !out.status.success() || value("serveraliveinterval").is_some_and(|v| v != default) {
        return Vec::new();
    }
    let interval = io_timeout.as_secs().div_ceil(KEEPALIVE_COUNT).max(1);
    let mut options = vec![format!("ServerAliveInterval={interval}")];
    if value("serveralivecountmax").is_none_or(|v| v == "3") {
        options.push(format!("ServerAliveCountMax={KEEPALIVE_COUNT}"));
    }
    options
}

/// Like git, run the ssh command through the shell so GIT_SSH_COMMAND may carry options.
fn ssh(base_command: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!("{base_command} \"$@\"")).arg("ssh");
    cmd
}

impl OpensshLink {
    /// A further session on the connection. Should the connection be gone,
    /// ssh would quietly open a new one; the proxy that cannot connect
    /// turns that into a failure instead.
    fn session(&self) -> Command {
        let mut cmd = ssh(&self.base_command);
        cmd.args(["-o", "ControlMaster=no", "-o", &format!("ControlPath={}", self.socket)]);
        cmd.args(["-o", "ProxyCommand=false"]);
        cmd
    }
}

impl Drop for OpensshLink {
    /// Close the connection now rather than when ControlPersist runs out.
    fn drop(&mut self) {
        let _ = request_exit(Path::new(&self.socket));
    }
}

/// Does the connection's master still answer on its control socket (the
/// multiplexing hello, as `ssh -O check` begins)?
fn master_alive(socket: &Path) -> bool {
    const HELLO: u32 = 0x0000_0001;
    let answered = || -> std::io::Result<bool> {
        let mut stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.set_write_timeout(Some(Duration::from_secs(2)))?;
        let mut packet = 8u32.to_be_bytes().to_vec();
        packet.extend_from_slice(&HELLO.to_be_bytes());
        packet.extend_from_slice(&4u32.to_be_bytes());
        stream.write_all(&packet)?;
        Ok(first_word(&mut stream)? == HELLO)
    };
    answered().unwrap_or(false)
}

/// Ask the connection's master to exit over its control socket, as
/// `ssh -O exit` does but without starting a process: ssh's multiplexing
/// protocol (PROTOCOL.mux in OpenSSH), version 4: both sides say hello,
/// then `MUX_C_TERMINATE`, answered by `MUX_S_OK` or, as the master often
/// exits before its answer goes out, by the socket closing.
fn request_exit(socket: &Path) -> std::io::Result<bool> {
    const HELLO: u32 = 0x0000_0001;
    const TERMINATE: u32 = 0x1000_0005;
    const OK: u32 = 0x8000_0001;
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let packet = |words: &[u32]| -> Vec<u8> {
        let mut bytes = ((words.len() * 4) as u32).to_be_bytes().to_vec();
        words.iter().for_each(|w| bytes.extend_from_slice(&w.to_be_bytes()));
        bytes
    };
    stream.write_all(&packet(&[HELLO, 4]))?;
    if first_word(&mut stream)? != HELLO {
        return Ok(false);
    }
    stream.write_all(&packet(&[TERMINATE, 1]))?;
    match first_word(&mut stream) {
        Ok(answer) => Ok(answer == OK),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(true),
        Err(e) => Err(e),
    }
}

/// The type of the next mux packet (the rest of it is skipped).
fn first_word(stream: &mut UnixStream) -> std::io::Result<u32> {
    let mut word = [0u8; 4];
    stream.read_exact(&mut word)?;
    let length = u32::from_be_bytes(word);
    if !(4..=65536).contains(&length) {
        return Err(std::io::Error::other("not a multiplexing packet"));
    }
    let mut body = vec![0u8; length as usize];
    stream.read_exact(&mut body)?;
    Ok(u32::from_be_bytes([body[0], body[1], body[2], body[3]]))
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
    fn ask_login_shell(&mut self, input: &[u8]) -> Option<Result<Vec<u8>>> {
        // No command: sshd starts the login shell, as for a login (no terminal).
        let mut cmd = self.session();
        cmd.args(["-T", "-o", "RemoteCommand=none", "--", &self.destination]);
        Some(crate::login_shell::converse(cmd, input, crate::login_shell::TIMEOUT))
    }
    fn interactive(&mut self, program: &str, args: &[&str]) -> Option<Result<i32>> {
        if let Err(err) = crate::config::check_helper(program) {
            return Some(Err(err));
        }
        // `-t`: a terminal there; LogLevel: no "Shared connection closed" line after it.
        let mut cmd = self.session();
        cmd.args(["-t", "-o", "RemoteCommand=none", "-o", "LogLevel=ERROR", "--", &self.destination, program]);
        cmd.args(args);
        Some(super::process::run_in_terminal(cmd))
    }
    fn restart_helper(&mut self, path: &str) -> Result<()> {
        crate::config::check_helper(path)?;
        let mut cmd = self.session();
        cmd.args(["--", &self.destination, path]);
        cmd.args(helper_args());
        self.process = ProcessLink::spawn(cmd)?;
        Ok(())
    }
    fn stderr_text(&self) -> String {
        self.process.stderr_text()
    }
    /// ssh exits 255 when it could not connect or authenticate.
    fn connection_failed(&self, exit_code: Option<i32>) -> bool {
        exit_code == Some(255)
    }
    /// ssh's own words when the connection drops (the helper's death says none of these),
    /// or a master connection that no longer answers on its socket (a client of it says nothing).
    fn connection_lost(&self, stderr: &str) -> bool {
        ["closed by remote host", "Broken pipe", "Connection reset", "Timeout, server", "client_loop:"]
            .iter()
            .any(|s| stderr.contains(s))
            || !master_alive(Path::new(&self.socket))
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
