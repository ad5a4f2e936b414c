//! Connections to a host's helper. Whatever the transport, one connection
//! carries the helper session and git's push/fetch. Each transport is a
//! `Link`: the helper's input and output, its exit, and how git reaches the
//! same host.
//!
//! - `openssh`: the system `ssh` opens one ControlMaster connection running
//!   the helper; git reaches the host through it via `GIT_SSH_COMMAND`.
//! - `ssh2` (cargo feature `ssh2`): libssh2 in-process; the helper runs on
//!   one channel of the session, git reaches the same session through a
//!   shim it runs as its ssh.
//! - `local`: the helper is a child process (HOME = the host's "ssh" value),
//!   git goes over the file system.
//!
//! When the helper is not on a host's plain PATH, `locate` asks the login
//! shell there, on the same connection, and starts the helper it finds.

mod capped;
mod explain;
mod kinds;
mod liveness;
mod local;
mod locate;
mod openssh;
mod payload;
mod process;
mod socket_dir;
#[cfg(feature = "ssh2")]
mod ssh2;

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::protocol::{self, Hello, Request, Response, PROTOCOL_MACHINE_IDS, PROTOCOL_MAX};
use crate::config::{Host, TransportKind};
use crate::error::{Error, Kind, Result};
pub use capped::{run_capped, CAPPED_COMMAND};
pub use explain::install_help;
use explain::{incompatible, same_machine};
#[cfg(not(feature = "ssh2"))]
use kinds::ssh2_not_built;
pub use kinds::{check_settings, handshake, run_git_shim, ssh2_built, SHIM_COMMAND};
pub use liveness::Lost;
pub use locate::Located;

/// What a transport provides once the helper runs on the other side.
pub trait Link {
    /// The helper's standard input; `None` once closed.
    fn input(&mut self) -> Option<&mut dyn Write>;
    /// The helper's standard output.
    fn output(&mut self) -> &mut dyn BufRead;
    /// Wait at most `timeout` until `output` can be read without blocking
    /// (data, or its end); false if nothing came.
    fn output_ready(&mut self, timeout: Duration) -> bool;
    /// Wait at most `timeout` until `input` takes a chunk of bytes without
    /// blocking (or would fail at once); false if it had no room.
    fn input_ready(&mut self, timeout: Duration) -> bool;
    /// When something last came from the other side besides `output` (the helper's stderr).
    fn heard(&self) -> Option<Instant> {
        None
    }
    /// Close the helper's input (it then ends its session).
    fn close_input(&mut self);
    /// Wait at most `timeout` for the helper (or the connection) to end:
    /// `None` while it still runs, else its exit code (`None` after a signal).
    fn wait_exit(&mut self, timeout: Duration) -> Option<Option<i32>>;
    /// Stop it now.
    fn kill(&mut self);
    /// What the helper and the transport wrote to stderr so far.
    fn stderr_text(&self) -> String;
    /// Did connecting itself fail (rather than the helper)?
    fn connection_failed(&self, exit_code: Option<i32>) -> bool;
    /// After the session started: does what the transport said mean the connection dropped?
    fn connection_lost(&self, stderr: &str) -> bool;
    /// The URL git uses to reach the repository at `path` on the host.
    fn git_url(&self, path: &str) -> String;
    /// Environment for git commands that talk to the host over this connection.
    fn git_env(&self) -> Vec<(String, String)>;
    /// Start the user's login shell on the same connection, as a login starts
    /// it (no command, no terminal), feed it `input`, and return its output
    /// up to the end of its answer. `None`: this transport cannot.
    fn ask_login_shell(&mut self, _input: &[u8]) -> Option<Result<Vec<u8>>> {
        None
    }
    /// Start the helper at `path` on the same connection, in place of the
    /// first start, which found no helper.
    fn restart_helper(&mut self, _path: &str) -> Result<()> {
        Err(Error::failed("unsupported", "this transport cannot start the helper again"))
    }
    /// What connecting learned about the host, as far as this transport knows.
    fn reached(&self) -> Reached {
        Reached::default()
    }
    /// Run the helper at `program` with `args` on the same connection as an
    /// interactive session: with a terminal of its own on the other side,
    /// this process's terminal as its input and output. Returns its exit
    /// code. `None`: this transport cannot.
    fn interactive(&mut self, _program: &str, _args: &[&str]) -> Option<Result<i32>> {
        None
    }
}

/// How a connection reached its host: the transport, and (where the
/// transport knows them) the negotiated host key algorithm, the host key's
/// fingerprint and how this computer authenticated.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Reached {
    pub transport: &'static str,
    pub host_key_algorithm: Option<String>,
    pub host_key_fingerprint: Option<String>,
    pub auth: Option<String>,
}

/// What a connection may do while it is made.
#[derive(Debug, Clone, Copy)]
pub struct Opening {
    /// How long connecting, up to the helper's first answer, may take.
    pub connect_timeout: Duration,
    /// Never ask for a password or passphrase (a probe of many hosts at once).
    pub batch: bool,
    /// How long the connection may carry nothing while this side waits for
    /// the other (keepalives probe it meanwhile).
    pub io_timeout: Duration,
}

impl Opening {
    /// The limits a command's own connection has: `codex-handoff.connectTimeout` and `ioTimeout`.
    pub fn configured() -> Result<Opening> {
        Ok(Opening {
            connect_timeout: crate::config::connect_timeout()?,
            batch: false,
            io_timeout: crate::config::io_timeout()?,
        })
    }
}

pub struct Connection {
    pub host: Host,
    pub hello: Hello,
    /// Round-trip time of the hello exchange, including connecting.
    pub connect_time: Duration,
    /// Where the helper was found this time, when the host's plain PATH lacked it.
    pub located: Option<Located>,
    link: Box<dyn Link>,
    /// How long a wait for the other side may see nothing come.
    io_timeout: Duration,
    /// Set when the link stopped carrying a request: silent too long, or closed.
    lost: Option<Lost>,
    /// The last request sent, for messages.
    op: String,
}

impl Connection {
    /// Connect to `host`, start its helper (looking for it through the login
    /// shell when the plain PATH lacks it) and negotiate the protocol, the
    /// helper answering within `codex-handoff.connectTimeout`: a host that
    /// accepts the connection but never answers must not hang the command.
    pub fn open(host: &Host) -> Result<Connection> {
        Connection::open_with(host, Opening::configured()?)
    }

    /// [`Connection::open`] with the given limits.
    pub fn open_with(host: &Host, opening: Opening) -> Result<Connection> {
        let timeout = opening.connect_timeout;
        let started = Instant::now();
        let link: Box<dyn Link> = match host.transport {
            TransportKind::Local => Box::new(local::start(host)?),
            TransportKind::Openssh => Box::new(openssh::start(host, opening)?),
            #[cfg(feature = "ssh2")]
            TransportKind::Ssh2 => Box::new(ssh2::start(host, opening)?),
            #[cfg(not(feature = "ssh2"))]
            TransportKind::Ssh2 => return Err(ssh2_not_built(host)),
        };
        let placeholder = Hello {
            protocol: 0,
            version: String::new(),
            machine: String::new(),
            machine_id: String::new(),
            worktree_root: None,
            executable: None,
            heartbeat: false,
        };
        let mut conn = Connection {
            host: host.clone(),
            hello: placeholder,
            connect_time: Duration::ZERO,
            located: None,
            link,
            io_timeout: opening.io_timeout,
            lost: None,
            op: String::new(),
        };
        let hello = match conn.hello(timeout) {
            Err(mut err) if err.code == "helper_missing" => {
                let located = locate::helper(&mut *conn.link).map_err(|why| {
                    err.message = format!("{}; {why}", err.message);
                    err
                })?;
                conn.link.restart_helper(&located.path)?;
                conn.located = Some(located);
                conn.hello(timeout)?
            }
            other => other?,
        };
        if hello.protocol < PROTOCOL_MACHINE_IDS || hello.protocol > PROTOCOL_MAX {
            return Err(incompatible(host, &hello, conn.located.as_ref()));
        }
        if crate::machine::check_id(&hello.machine_id).is_err() {
            return Err(Error::new(
                Kind::Helper,
                "helper_incompatible",
                format!("the helper on {} (version {}) does not say which machine it is", host.name, hello.version),
            )
            .with_help(install_help(host)));
        }
        if hello.machine_id == crate::machine::this_id()? {
            return Err(same_machine(host, &hello.machine_id));
        }
        // The helper works; failing to write the setting only costs a lookup next time.
        if let Some(located) = &mut conn.located {
            located.not_remembered =
                crate::config::set_helper(&host.name, &located.path).err().map(|e| e.full_message());
        }
        conn.hello = hello;
        conn.connect_time = started.elapsed();
        Ok(conn)
    }

    /// The hello exchange, given up after `timeout`.
    fn hello(&mut self, timeout: Duration) -> Result<Hello> {
        self.call_by(
            "hello",
            json!({ "protocol": PROTOCOL_MAX, "min_protocol": PROTOCOL_MACHINE_IDS, "version": env!("CARGO_PKG_VERSION"),
                    "io_timeout_ms": u64::try_from(self.io_timeout.as_millis()).unwrap_or(u64::MAX) }),
            || {},
            Some((Instant::now() + timeout, timeout)),
        )
    }

    /// What to tell the person about how the helper was found, once.
    pub fn notice(&self) -> Option<String> {
        self.located.as_ref().map(|l| l.notice(&self.host.name))
    }

    /// Send one request and wait for its answer.
    pub fn call<T: DeserializeOwned>(&mut self, op: &str, params: Value) -> Result<T> {
        self.call_then(op, params, || {})
    }

    /// [`Connection::call`], running `sent` once the request is on its way
    /// (while the helper works on it).
    pub fn call_then<T: DeserializeOwned>(&mut self, op: &str, params: Value, sent: impl FnOnce()) -> Result<T> {
        self.call_by(op, params, sent, None)
    }

    /// `call_then`, giving up at `deadline` (the instant, and the limit it came from).
    fn call_by<T: DeserializeOwned>(
        &mut self,
        op: &str,
        params: Value,
        sent: impl FnOnce(),
        deadline: Option<(Instant, Duration)>,
    ) -> Result<T> {
        let request = Request { op: op.to_owned(), params };
        self.op = op.to_owned();
        let sent = protocol::write_json(&mut self.input_timed(), &request).map(|()| sent());
        self.answer(op, sent, deadline)
    }

    /// The helper's input, written with the limit on how long it may take nothing.
    fn input_timed(&mut self) -> liveness::TimedInput<'_> {
        liveness::TimedInput { link: &mut *self.link, limit: self.io_timeout, lost: &mut self.lost }
    }

    /// The helper's output, read with the limit on silence: always for bytes
    /// of a stream; for an answer, when the helper says it is alive while it
    /// works (older helpers work on a request silently, for as long as it takes).
    fn output_timed(&mut self, answer: bool) -> liveness::TimedOutput<'_> {
        let limit = (!answer || self.hello.heartbeat).then_some(self.io_timeout);
        liveness::TimedOutput { link: &mut *self.link, limit, lost: &mut self.lost }
    }

    /// How the link failed, if it did: silent past the limit, closed, or its
    /// transport (ssh) gone. A failed step then reads as a lost connection.
    pub fn lost(&mut self) -> Option<Lost> {
        if self.lost.is_none() && self.link.wait_exit(Duration::ZERO).is_some() {
            let stderr = self.link.stderr_text();
            if self.link.connection_lost(&stderr) {
                self.lost = Some(Lost::Closed);
            }
        }
        self.lost
    }

    /// The error for a request the link did not carry to its end, if that is why `e` happened.
    pub fn explain_lost(&mut self, e: Error) -> Error {
        if e.kind == Kind::Unreachable || self.lost().is_none() {
            return e;
        }
        let op = self.op.clone();
        self.failure(&op)
    }

    /// The answer to request `op`, once `sent` says it went out.
    fn answer<T: DeserializeOwned>(
        &mut self,
        op: &str,
        sent: Result<()>,
        deadline: Option<(Instant, Duration)>,
    ) -> Result<T> {
        let line = match (sent, deadline) {
            (Ok(()), None) => protocol::read_line(&mut self.output_timed(true)),
            (Ok(()), Some(deadline)) => self.read_line_by(deadline),
            (Err(_), _) => Ok(None),
        };
        let line = match line {
            Ok(Some(line)) => line,
            Ok(None) => return Err(self.failure(op)),
            Err(e) if self.lost.is_some() => return Err(self.failure(op).with_source(e)),
            Err(e) => return Err(e),
        };
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

    /// One answer line, as `protocol::read_line` reads it, unless the deadline passes first.
    fn read_line_by(&mut self, (deadline, limit): (Instant, Duration)) -> Result<Option<Vec<u8>>> {
        let mut line = Vec::new();
        loop {
            if !self.link.output_ready(deadline.saturating_duration_since(Instant::now())) {
                self.link.kill();
                return Err(Error::new(
                    Kind::Unreachable,
                    "connect_timeout",
                    format!("{} ({}) did not answer within {} s", self.host.name, self.host.ssh, limit.as_secs()),
                )
                .with_help(format!(
                    "check that the host is up and `ssh {}` works; codex-handoff.connectTimeout sets how many seconds to wait",
                    self.host.ssh
                )));
            }
            let output = self.link.output();
            let available = output.fill_buf()?;
            if available.is_empty() {
                return Ok((!line.is_empty()).then_some(line));
            }
            let (taken, done) = match available.iter().position(|b| *b == b'\n') {
                Some(end) => (end + 1, true),
                None => (available.len(), false),
            };
            line.extend_from_slice(available.get(..taken).unwrap_or_default());
            output.consume(taken);
            if line.len() > protocol::MAX_LINE {
                return Err(Error::failed("line_too_long", "the helper's answer is too long"));
            }
            if done {
                line.pop();
                return Ok(Some(line));
            }
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

    /// The URL git uses to reach the repository at `path` on the host.
    pub fn git_url(&self, path: &str) -> String {
        self.link.git_url(path)
    }

    /// How this connection reached its host.
    pub fn reached(&self) -> Reached {
        Reached { transport: self.host.transport.name(), ..self.link.reached() }
    }

    /// Environment for git commands that talk to the host over this connection.
    pub fn git_env(&self) -> Vec<(String, String)> {
        self.link.git_env()
    }

    /// End the helper's session, then run `remote attach <ticket>` on the
    /// same connection in this terminal. Returns the attached command's exit code.
    pub fn attach(mut self, ticket: &str) -> Result<i32> {
        if ticket.len() != 32 || !ticket.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::failed(
                "helper_garbled",
                format!("the helper on {} gave no usable ticket", self.host.name),
            ));
        }
        // The helper's session holds the thread's lock: it ends first, so that a handoff
        // from elsewhere can take the lock and interrupt the attached command.
        if let Some(input) = self.link.input() {
            let _ = protocol::write_json(input, &Request { op: "bye".into(), params: Value::Null });
        }
        self.link.close_input();
        self.link.wait_exit(Duration::from_secs(30));
        let program = self.located.as_ref().map_or(self.host.helper.as_str(), |l| l.path.as_str()).to_owned();
        match self.link.interactive(&program, &["remote", "attach", ticket]) {
            Some(code) => code,
            None => Err(Error::failed(
                "attach_unsupported",
                format!(
                    "the {} transport cannot open a terminal session on {}",
                    self.host.transport.name(),
                    self.host.name
                ),
            )
            .with_help(format!(
                "use the system ssh for it: `git codex-handoff host add {} {} --transport openssh`",
                self.host.name, self.host.ssh
            ))),
        }
    }

    /// End the session and wait for the connection to close.
    pub fn close(mut self) -> Result<()> {
        if let Some(input) = self.link.input() {
            let _ = protocol::write_json(input, &Request { op: "bye".into(), params: Value::Null });
        }
        self.link.close_input();
        // The helper ends its session at once; a link gone silent is not waited for long.
        if self.link.wait_exit(self.io_timeout).is_none() {
            self.link.kill();
        }
        Ok(())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.link.close_input();
        if self.link.wait_exit(Duration::from_secs(3)).is_none() {
            self.link.kill();
        }
    }
}

/// The helper's fixed command line after the program name.
fn helper_args() -> [&'static str; 2] {
    ["remote", "serve"]
}

#[cfg(test)]
mod tests {
    use super::*;

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
