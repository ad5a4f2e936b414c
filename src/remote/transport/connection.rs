//! A connection to a host's helper over any `Link`: made within
//! `connectTimeout`, the protocol negotiated, every request and answer
//! watched for `ioTimeout`, and what a lost connection tells the user.

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::explain::{incompatible, install_help, same_machine, seconds, step_of, HELPER_LOG, RERUN_HELP};
#[cfg(not(feature = "ssh2"))]
use super::kinds::ssh2_not_built;
use super::link::{Link, Opening, Reached};
use super::liveness::{self, Lost};
use super::locate::{self, Located};
#[cfg(feature = "ssh2")]
use super::ssh2;
use super::{local, openssh};
use crate::config::{Host, TransportKind};
use crate::error::{Error, Kind, Result};
use crate::remote::protocol::{self, Hello, Request, Response, PROTOCOL_MACHINE_IDS, PROTOCOL_MAX};

pub struct Connection {
    pub host: Host,
    pub hello: Hello,
    /// Round-trip time of the hello exchange, including connecting.
    pub connect_time: Duration,
    /// Where the helper was found this time, when the host's plain PATH lacked it.
    pub located: Option<Located>,
    pub(super) link: Box<dyn Link>,
    /// How long a wait for the other side may see nothing come.
    pub(super) io_timeout: Duration,
    /// Set when the link stopped carrying a request: silent too long, or closed.
    pub(super) lost: Option<Lost>,
    /// The last request sent, for messages.
    pub(super) op: String,
    /// Raw bytes that crossed beside requests and answers so far.
    pub moved: Moved,
    /// Bytes sent so far of several payloads shown as one send, and their total.
    pub(super) send_span: Option<(u64, u64)>,
}

/// Raw bytes that crossed a connection beside its requests and answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Moved {
    pub sent: u64,
    pub received: u64,
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
            moved: Moved::default(),
            send_span: None,
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
    pub(super) fn hello(&mut self, timeout: Duration) -> Result<Hello> {
        self.call_by(
            "hello",
            json!({ "protocol": PROTOCOL_MAX, "min_protocol": PROTOCOL_MACHINE_IDS, "version": env!("CARGO_PKG_VERSION"),
                    "io_timeout_ms": u64::try_from(self.io_timeout.as_millis()).unwrap_or(u64::MAX),
                    "progress": true }),
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
    pub(super) fn call_by<T: DeserializeOwned>(
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
    pub(super) fn input_timed(&mut self) -> liveness::TimedInput<'_> {
        liveness::TimedInput { link: &mut *self.link, limit: self.io_timeout, lost: &mut self.lost }
    }

    /// The helper's output, read with the limit on silence: always for bytes
    /// of a stream; for an answer, when the helper says it is alive while it
    /// works (older helpers work on a request silently, for as long as it takes).
    pub(super) fn output_timed(&mut self, answer: bool) -> liveness::TimedOutput<'_> {
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

    /// The error for a request the link did not carry to its end, if that is
    /// why `e` happened. A refusal the helper said before it ended stands.
    pub fn explain_lost(&mut self, e: Error) -> Error {
        if matches!(e.kind, Kind::Unreachable | Kind::Refused) || self.lost().is_none() {
            return e;
        }
        let op = self.op.clone();
        self.failure(&op)
    }

    /// The answer to request `op`, once `sent` says it went out.
    pub(super) fn answer<T: DeserializeOwned>(
        &mut self,
        op: &str,
        sent: Result<()>,
        deadline: Option<(Instant, Duration)>,
    ) -> Result<T> {
        let line = match (sent, deadline) {
            (Ok(()), None) => self.answer_line(),
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

    /// The answer's line, after the lines on the helper's progress that
    /// come before it (each passed on to this process's meter).
    fn answer_line(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            let line = protocol::read_line(&mut self.output_timed(true))?;
            match line.as_deref().and_then(protocol::progress_of) {
                Some(report) => crate::progress::report(report.step, report.done, report.total),
                None => return Ok(line),
            }
        }
    }

    /// One answer line, as `protocol::read_line` reads it, unless the deadline passes first.
    pub(super) fn read_line_by(&mut self, (deadline, limit): (Instant, Duration)) -> Result<Option<Vec<u8>>> {
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
    pub(super) fn garbled(&self, op: &str, source: serde_json::Error) -> Error {
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
