//! What every transport offers: a `Link` to the helper (its input and
//! output, its exit, how git reaches the same host), what a connection
//! may do while it is made, and how it reached its host.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

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
/// The helper's fixed command line after the program name.
pub(super) fn helper_args() -> [&'static str; 2] {
    ["remote", "serve"]
}
