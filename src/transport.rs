//! Connections to a host's helper. Whatever the transport, one connection
//! carries the helper session and git's push/fetch:
//!
//! - `openssh`: the system `ssh` opens one ControlMaster connection (socket in
//!   a private 0700 temp directory) running the helper; git reaches the host
//!   through the same connection via `GIT_SSH_COMMAND`.
//! - `local`: the helper is a child process (HOME = the host's "ssh" value),
//!   git goes over the file system.

use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::config::{Host, TransportKind};
use crate::error::{Error, Kind, Result};
use crate::protocol::{self, Hello, Request, Response, PROTOCOL_MAX, PROTOCOL_MIN};

pub struct Connection {
    pub host: Host,
    pub hello: Hello,
    /// Round-trip time of the hello exchange, including connecting.
    pub connect_time: Duration,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<Vec<u8>>>,
    ssh: Option<SshMux>,
}

/// The ControlMaster socket and the ssh command that reuses it.
struct SshMux {
    _dir: tempfile::TempDir,
    reuse_command: String,
}

impl Connection {
    /// Connect to `host`, start its helper and negotiate the protocol.
    pub fn open(host: &Host) -> Result<Connection> {
        let started = Instant::now();
        let (mut command, ssh) = match host.transport {
            TransportKind::Local => (local_command(host)?, None),
            TransportKind::Openssh => {
                let (command, mux) = openssh_command(host)?;
                (command, Some(mux))
            }
            TransportKind::Ssh2 => {
                return Err(Error::failed("transport_unavailable", "the ssh2 transport is not built into this version")
                    .with_help(format!(
                        "use the system ssh: `git codex-handoff host add {} {} --transport openssh`",
                        host.name, host.ssh
                    )))
            }
        };
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| match host.transport {
            TransportKind::Local => Error::new(
                Kind::Helper,
                "helper_missing",
                format!("the helper is not installed on {}: {}", host.name, host.helper),
            )
            .with_help(install_help(host))
            .with_source(e),
            _ => Error::new(
                Kind::Unreachable,
                "spawn_failed",
                format!("could not start the connection to {}", host.name),
            )
            .with_help("is `ssh` installed and on PATH?")
            .with_source(e),
        })?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout was piped"));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock().expect("stderr buffer").extend_from_slice(&buf[..n]);
                }
            });
        }
        let placeholder = Hello { protocol: 0, version: String::new(), machine: String::new(), worktree_root: None };
        let mut conn = Connection {
            host: host.clone(),
            hello: placeholder,
            connect_time: Duration::ZERO,
            child,
            stdin,
            stdout,
            stderr,
            ssh,
        };
        let hello: Hello = conn.call(
            "hello",
            json!({ "protocol": PROTOCOL_MAX, "min_protocol": PROTOCOL_MIN, "version": env!("CARGO_PKG_VERSION") }),
        )?;
        if hello.protocol < PROTOCOL_MIN || hello.protocol > PROTOCOL_MAX {
            return Err(Error::new(
                Kind::Helper,
                "helper_incompatible",
                format!(
                    "the helper on {} (version {}) speaks protocol {}, this version speaks {PROTOCOL_MIN}-{PROTOCOL_MAX}",
                    host.name, hello.version, hello.protocol
                ),
            )
            .with_help(install_help(host)));
        }
        conn.hello = hello;
        conn.connect_time = started.elapsed();
        Ok(conn)
    }

    /// Send one request and wait for its answer.
    pub fn call<T: DeserializeOwned>(&mut self, op: &str, params: Value) -> Result<T> {
        let request = Request { op: op.to_owned(), params };
        let sent = match self.stdin.as_mut() {
            Some(stdin) => protocol::write_json(stdin, &request),
            None => Err(Error::failed("closed", "the connection is closed")),
        };
        let line = match sent {
            Ok(()) => protocol::read_line(&mut self.stdout)?,
            Err(_) => None,
        };
        let Some(line) = line else { return Err(self.failure(op)) };
        let response: Response = serde_json::from_slice(&line).map_err(|e| self.garbled(op, e))?;
        if response.ok {
            let result = response.result.unwrap_or(Value::Null);
            serde_json::from_value(result).map_err(|e| self.garbled(op, e))
        } else {
            let error = response.error.unwrap_or(protocol::WireError {
                code: "helper_failed".into(),
                message: format!("{op} failed"),
                help: None,
                exit_code: 1,
            });
            Err(error.into_error(&self.host.name))
        }
    }

    /// An answer this client cannot read: most likely a helper of another version.
    fn garbled(&self, op: &str, source: serde_json::Error) -> Error {
        Error::new(
            Kind::Helper,
            "helper_garbled",
            format!("the helper on {} answered {op} unexpectedly", self.host.name),
        )
        .with_help(install_help(&self.host))
        .with_source(source)
    }

    /// Why the helper stopped answering: unreachable host, missing helper, or a crash.
    fn failure(&mut self, op: &str) -> Error {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => break None,
            }
        };
        std::thread::sleep(Duration::from_millis(50));
        let stderr = String::from_utf8_lossy(&self.stderr.lock().expect("stderr buffer")).trim().to_owned();
        let code = status.and_then(|s| s.code());
        let said = if stderr.is_empty() { String::new() } else { format!(": {stderr}") };
        let not_found = code == Some(127) || stderr.contains("not found") || stderr.contains("No such file");
        if self.host.transport == TransportKind::Openssh && code == Some(255) {
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
        Error::failed("helper_died", format!("the helper on {} stopped during {op}{said}", self.host.name))
            .with_help("run the same command again: it finishes or cleanly restarts the handoff")
    }

    /// The URL git uses to reach the repository at `path` on the host.
    pub fn git_url(&self, path: &str) -> String {
        match self.host.transport {
            TransportKind::Local | TransportKind::Ssh2 => path.to_owned(),
            TransportKind::Openssh => {
                if self.host.ssh.starts_with("ssh://") {
                    format!("{}{}", self.host.ssh.trim_end_matches('/'), path)
                } else {
                    format!("{}:{}", self.host.ssh, path)
                }
            }
        }
    }

    /// Environment for git commands that talk to the host over this connection.
    pub fn git_env(&self) -> Vec<(String, String)> {
        match &self.ssh {
            Some(mux) => vec![
                ("GIT_SSH_COMMAND".to_owned(), mux.reuse_command.clone()),
                ("GIT_SSH_VARIANT".to_owned(), "ssh".to_owned()),
            ],
            None => Vec::new(),
        }
    }

    /// End the session and wait for the connection to close.
    pub fn close(mut self) -> Result<()> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = protocol::write_json(&mut stdin, &Request { op: "bye".into(), params: Value::Null });
        }
        let _ = self.child.wait();
        Ok(())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn install_help(host: &Host) -> String {
    format!(
        "install git-codex-handoff on {0} (e.g. `cargo install --path .` there) and make sure a non-interactive \
         ssh session finds it, or give its absolute path: `git codex-handoff host add {0} {1} --helper /path/to/git-codex-handoff`",
        host.name, host.ssh
    )
}

fn helper_args() -> [&'static str; 2] {
    ["remote", "serve"]
}

fn local_command(host: &Host) -> Result<Command> {
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
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", &host.ssh);
    Ok(cmd)
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

fn openssh_command(host: &Host) -> Result<(Command, SshMux)> {
    crate::config::check_destination(&host.ssh)?;
    crate::config::check_helper(&host.helper)?;
    // Unix socket paths are short: keep the directory near the root.
    let base = if std::env::temp_dir().as_os_str().len() > 60 { PathBuf::from("/tmp") } else { std::env::temp_dir() };
    let dir = tempfile::Builder::new().prefix("cxh-").tempdir_in(base)?;
    // tempfile creates the directory 0700: only this user can reach the socket.
    let socket = dir.path().join("cm");
    let base_cmd = base_ssh_command();
    let socket_text = socket.to_string_lossy().into_owned();
    let mut cmd = Command::new("sh");
    // Like git, run the ssh command through the shell so GIT_SSH_COMMAND may carry options.
    cmd.arg("-c").arg(format!("{base_cmd} \"$@\"")).arg("ssh");
    cmd.args(["-o", "ControlMaster=yes", "-o"]);
    cmd.arg(format!("ControlPath={socket_text}"));
    cmd.args(["-o", "ControlPersist=no", "--", &host.ssh, &host.helper]);
    cmd.args(helper_args());
    let reuse_command = format!("{base_cmd} -o ControlMaster=no -o ControlPath={}", shell_quote(&socket_text));
    Ok((cmd, SshMux { _dir: dir, reuse_command }))
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}
