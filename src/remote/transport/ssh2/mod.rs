//! The `ssh2` transport: libssh2 in-process, for machines without an `ssh`
//! binary. One TCP connection, authenticated here (`connect`, with this
//! program's own strict known_hosts check, `known_hosts`, and the host's
//! settings from `~/.ssh/config`, `target`); one thread owns the session and
//! serves every channel (`pump`, `channel`); the helper runs on one channel
//! whose stdin and stdout are a local socket; git's push and fetch reach the
//! same session through a shim git runs as its ssh (`shim`, `fdpass`).
//!
//! Git's data goes through the shim rather than as a bundle the helper
//! unpacks: git keeps its own negotiation (only what the host lacks), the
//! receive-pack checks and protocol v2 fetch, the restricted mode needs
//! nothing new, and the code after connecting is the `openssh` transport's.

mod channel;
mod connect;
mod known_hosts;
mod pump;
mod revoked;
mod shim;
mod target;
mod terminal;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use channel::Exit;
use pump::MuxThread;
use shim::Bridge;
pub use shim::{run_shim, SHIM_COMMAND};

use super::link::{helper_args, Link, Opening, Reached};
use super::liveness::Heard;
use crate::config::Host;
use crate::error::{Error, Kind, Result};

pub struct Ssh2Link {
    // Field order is drop order: the bridge stops taking git's connections,
    // the helper's socket closes, then the pump ends the connection.
    bridge: Bridge,
    input: Option<UnixStream>,
    output: BufReader<UnixStream>,
    stderr: Arc<Mutex<Vec<u8>>>,
    heard: Heard,
    exit: Receiver<Exit>,
    exited: Option<Exit>,
    pump: Option<MuxThread>,
    exe: PathBuf,
    facts: Reached,
}

/// Check what can be checked without connecting: the destination and what
/// `~/.ssh/config` sets for it.
pub fn preflight(host: &Host) -> Result<()> {
    target::resolve(&host.name, &host.ssh, Duration::from_secs(1)).map(|_| ())
}

/// Connect and authenticate only (no helper), to learn how the host answers.
pub fn handshake(host: &Host, connect_timeout: Duration) -> Result<Reached> {
    let target = target::resolve(&host.name, &host.ssh, connect_timeout)?;
    let connected = connect::connect(&host.name, &target)?;
    // One round trip (a channel opened and closed) lets the server finish
    // what it sends after a login before the goodbye, rather than writing
    // into a closed connection.
    if let Ok(mut channel) = connected.session.channel_session() {
        let _ = channel.close();
    }
    let _ = connected.session.disconnect(None, "bye", None);
    Ok(connected.facts)
}

/// Connect, start the helper on a channel, and the bridge for git. The
/// session sends keepalives and gives up on a host that answers none for
/// about `opening.io_timeout`.
pub fn start(host: &Host, opening: Opening) -> Result<Ssh2Link> {
    crate::config::check_helper(&host.helper)?;
    let target = target::resolve(&host.name, &host.ssh, opening.connect_timeout)?;
    let connected = connect::connect(&host.name, &target)?;
    let failed = |e: std::io::Error| Error::new(Kind::Unreachable, "ssh_failed", format!("{}: {e}", host.name));
    let pump = MuxThread::start(connected.session, connected.fd, opening.io_timeout).map_err(failed)?;
    let helper = HelperChannel::start(&pump, &host.helper).map_err(failed)?;
    let bridge = Bridge::start(pump.mux.clone()).map_err(failed)?;
    Ok(Ssh2Link {
        bridge,
        input: Some(helper.input),
        output: helper.output,
        stderr: helper.stderr,
        heard: helper.heard,
        exit: helper.exit,
        exited: None,
        pump: Some(pump),
        exe: std::env::current_exe()?,
        facts: connected.facts,
    })
}

/// The helper running on a channel: its input and output (one local
/// socket), its stderr collected in the background, its exit.
struct HelperChannel {
    input: UnixStream,
    output: BufReader<UnixStream>,
    stderr: Arc<Mutex<Vec<u8>>>,
    heard: Heard,
    exit: Receiver<Exit>,
}

impl HelperChannel {
    fn start(pump: &MuxThread, helper: &str) -> std::io::Result<HelperChannel> {
        let command = std::iter::once(shim::shell_quote(helper)).chain(helper_args().map(str::to_owned));
        let piped = pump.mux.exec_piped(Some(&command.collect::<Vec<_>>().join(" ")))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        let heard = Heard::new();
        let alive = heard.clone();
        let mut pipe = piped.stderr;
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                alive.now();
                if let Ok(mut sink) = sink.lock() {
                    sink.extend_from_slice(buf.get(..n).unwrap_or_default());
                }
            }
        });
        let output = BufReader::new(piped.io.try_clone()?);
        Ok(HelperChannel { input: piped.io, output, stderr, heard, exit: piped.exit })
    }
}

impl Link for Ssh2Link {
    fn input(&mut self) -> Option<&mut dyn Write> {
        self.input.as_mut().map(|s| s as &mut dyn Write)
    }
    fn output(&mut self) -> &mut dyn BufRead {
        &mut self.output
    }
    fn output_ready(&mut self, timeout: Duration) -> bool {
        use std::os::fd::AsRawFd;
        !self.output.buffer().is_empty() || super::process::readable_within(self.output.get_ref().as_raw_fd(), timeout)
    }
    fn input_ready(&mut self, timeout: Duration) -> bool {
        use std::os::fd::AsRawFd;
        self.input.as_ref().is_none_or(|input| super::liveness::writable_within(input.as_raw_fd(), timeout))
    }
    fn heard(&self) -> Option<std::time::Instant> {
        Some(self.heard.last())
    }
    fn close_input(&mut self) {
        if let Some(socket) = self.input.take() {
            // The output shares the socket: half-close only.
            let _ = socket.shutdown(std::net::Shutdown::Write);
        }
    }
    fn wait_exit(&mut self, timeout: Duration) -> Option<Option<i32>> {
        if self.exited.is_none() {
            self.exited = self.exit.recv_timeout(timeout).ok();
        }
        self.exited.as_ref().map(|exit| match exit {
            Exit::Code(c) => Some(*c),
            Exit::Signal(_) | Exit::Failed(_) => None,
        })
    }
    fn kill(&mut self) {
        // Dropping the pump fails every channel and drops the connection.
        self.pump = None;
    }
    fn stderr_text(&self) -> String {
        let mut text = self.stderr.lock().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        if let Some(Exit::Failed(why)) = &self.exited {
            text.push_str(why);
        }
        text
    }
    /// Connecting and authenticating failed in `start` already: here only
    /// the helper's channel can have failed to open.
    fn connection_failed(&self, _exit_code: Option<i32>) -> bool {
        matches!(self.exited, Some(Exit::Failed(_)))
    }
    fn connection_lost(&self, _stderr: &str) -> bool {
        matches!(self.exited, Some(Exit::Failed(_)))
    }
    fn git_url(&self, path: &str) -> String {
        // The shim ignores the host part: there is one session.
        format!("codex-handoff-ssh2:{path}")
    }
    fn git_env(&self) -> Vec<(String, String)> {
        self.bridge.git_env(&self.exe)
    }
    fn reached(&self) -> Reached {
        self.facts.clone()
    }
    fn ask_login_shell(&mut self, input: &[u8]) -> Option<Result<Vec<u8>>> {
        let pump = self.pump.as_ref()?;
        let asked = pump.mux.exec_piped(None).and_then(|piped| {
            // No command: sshd starts the login shell, as for a login (no terminal).
            (&piped.io).write_all(input)?;
            piped.io.shutdown(std::net::Shutdown::Write)?;
            Ok(crate::login_shell::read_answer(piped.io, crate::login_shell::TIMEOUT))
        });
        Some(asked.map_err(Error::from))
    }
    fn interactive(&mut self, program: &str, args: &[&str]) -> Option<Result<i32>> {
        if let Err(err) = crate::config::check_helper(program) {
            return Some(Err(err));
        }
        let pump = self.pump.as_ref()?;
        let command: Vec<String> =
            std::iter::once(program).chain(args.iter().copied()).map(shim::shell_quote).collect();
        Some(terminal::run(&pump.mux, command.join(" ")))
    }
    fn restart_helper(&mut self, path: &str) -> Result<()> {
        crate::config::check_helper(path)?;
        let pump = self.pump.as_ref().ok_or_else(|| Error::failed("closed", "the connection is closed"))?;
        let helper = HelperChannel::start(pump, path)?;
        (self.input, self.output, self.stderr, self.heard) =
            (Some(helper.input), helper.output, helper.stderr, helper.heard);
        (self.exit, self.exited) = (helper.exit, None);
        Ok(())
    }
}

impl Drop for Ssh2Link {
    /// A clean goodbye when the helper has ended; otherwise the pump aborts.
    fn drop(&mut self) {
        if self.exited.is_some() {
            if let Some(pump) = self.pump.take() {
                let _ = pump.shutdown();
            }
        }
    }
}
