//! One libssh2 session, many channels, one thread.
//!
//! The `ssh2` crate guards each session with one mutex taken by every call;
//! in blocking mode a `read` on one channel holds it until data arrives, so
//! another thread's `write` on another channel waits for it — with a helper
//! that answers only after it got the request, a deadlock. libssh2 also
//! wants a packet whose send hit EAGAIN finished by the same call before any
//! other goes out, and one channel open in progress at a time.
//!
//! So the session is non-blocking and owned by one thread, the pump, which
//! blocks only in poll(2) on the TCP socket, a wake-up pipe and the local
//! fds bound to each channel. The rest of the program talks to channels
//! through its own ends of those fds with plain blocking I/O, and git's own
//! pipes (from the shim) are served directly. Channels are dropped on the
//! pump thread too (the crate frees a channel without the session lock).

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ssh2::{BlockDirections, Channel, Session};

use super::channel::{is_eagain, set_nonblocking, Chan, Exit};
use crate::os::pipe;

/// The channel's receive window (libssh2's default; larger changes nothing on loopback).
const WINDOW: u32 = 2 * 1024 * 1024;
const PACKET: u32 = 32 * 1024;
/// How long the goodbye waits for channels that are still running.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);
/// Keepalives unanswered before the connection counts as dead (OpenSSH's ServerAliveCountMax).
const KEEPALIVE_COUNT: u32 = 3;

/// Keepalives every `interval` while the connection is quiet; nothing
/// from the host for `dead_after` ends it.
#[derive(Clone, Copy)]
struct Keepalive {
    dead_after: Duration,
}

impl Keepalive {
    /// About `io_timeout` in all: a third of it between keepalives (a second at least).
    fn set(session: &Session, io_timeout: Duration) -> Keepalive {
        let interval = io_timeout.as_secs().div_ceil(u64::from(KEEPALIVE_COUNT)).max(1);
        session.set_keepalive(true, u32::try_from(interval).unwrap_or(u32::MAX));
        Keepalive { dead_after: Duration::from_secs(interval * u64::from(KEEPALIVE_COUNT) + 1) }
    }
}

/// What to run and where its standard streams go (`None` stdin: EOF at
/// once; `None` stdout/stderr: discarded).
pub struct ExecSpec {
    /// The command line for the remote shell; `None` starts the login shell
    /// as a login does (no command, no terminal).
    pub command: Option<String>,
    /// Sent as `env` requests; the server applies what its AcceptEnv allows.
    pub env: Vec<(String, String)>,
    /// A terminal on the remote side, as `ssh -t` asks for one.
    pub pty: Option<Pty>,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// The remote terminal's type and size.
pub struct Pty {
    pub term: String,
    pub cols: u32,
    pub rows: u32,
}

enum Request {
    Exec(ExecSpec, Sender<Exit>),
    /// Finish the running channels, then disconnect.
    Shutdown,
    /// Fail every channel now and drop the connection.
    Abort,
}

/// Starts channels on the pump's session; cheap to clone.
#[derive(Clone)]
pub struct Mux {
    tx: Sender<Request>,
    wake: Arc<OwnedFd>,
}

/// The pump thread; dropping it aborts the connection.
pub struct MuxThread {
    pub mux: Mux,
    thread: Option<JoinHandle<Result<(), String>>>,
}

/// A channel whose stdin and stdout are one local socket, stderr another.
pub struct Piped {
    pub io: UnixStream,
    pub stderr: UnixStream,
    pub exit: Receiver<Exit>,
}

impl MuxThread {
    /// Take over an authenticated session whose TCP socket is `fd`; a host
    /// that answers nothing for about `io_timeout` ends it.
    pub fn start(session: Session, fd: RawFd, io_timeout: Duration) -> io::Result<MuxThread> {
        let (wake_r, wake_w) = pipe()?;
        set_nonblocking(wake_r.as_raw_fd())?;
        set_nonblocking(wake_w.as_raw_fd())?;
        let (tx, rx) = mpsc::channel();
        let keepalive = Keepalive::set(&session, io_timeout);
        session.set_blocking(false);
        let pump = Pump {
            session,
            fd,
            wake: wake_r,
            rx,
            chans: Vec::new(),
            opening: VecDeque::new(),
            keepalive,
            last_heard: Instant::now(),
        };
        let thread = std::thread::Builder::new().name("ssh2-pump".into()).spawn(move || pump.run())?;
        Ok(MuxThread { mux: Mux { tx, wake: Arc::new(wake_w) }, thread: Some(thread) })
    }

    /// Wait for the running channels to finish, then disconnect.
    pub fn shutdown(mut self) -> Result<(), String> {
        let _ = self.mux.tx.send(Request::Shutdown);
        self.mux.poke();
        match self.thread.take() {
            Some(thread) => thread.join().unwrap_or_else(|_| Err("the connection's thread failed".into())),
            None => Ok(()),
        }
    }
}

impl Drop for MuxThread {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.mux.tx.send(Request::Abort);
            self.mux.poke();
            let _ = thread.join();
        }
    }
}

impl Mux {
    /// Run `spec` on a new channel; the receiver yields its exit once the
    /// channel closed and every byte reached the local fds.
    pub fn exec(&self, spec: ExecSpec) -> Receiver<Exit> {
        let (tx, rx) = mpsc::channel();
        if let Err(mpsc::SendError(Request::Exec(_, tx))) = self.tx.send(Request::Exec(spec, tx)) {
            let _ = tx.send(Exit::Failed("the connection is closed".into()));
        }
        self.poke();
        rx
    }

    /// Run `command` (`None`: the login shell) with stdin and stdout on one local socket.
    pub fn exec_piped(&self, command: Option<&str>) -> io::Result<Piped> {
        let (mine, theirs) = UnixStream::pair()?;
        let (err_mine, err_theirs) = UnixStream::pair()?;
        let theirs_out = theirs.try_clone()?;
        let exit = self.exec(ExecSpec {
            command: command.map(str::to_owned),
            env: Vec::new(),
            pty: None,
            stdin: Some(theirs.into()),
            stdout: Some(theirs_out.into()),
            stderr: Some(err_theirs.into()),
        });
        Ok(Piped { io: mine, stderr: err_mine, exit })
    }

    fn poke(&self) {
        // SAFETY: a one-byte write to a pipe we own; a full pipe already wakes the pump.
        let _ = unsafe { libc::write(self.wake.as_raw_fd(), b"x".as_ptr().cast(), 1) };
    }
}

struct Opening {
    spec: ExecSpec,
    done: Sender<Exit>,
    channel: Option<Channel>,
}

struct Pump {
    session: Session,
    fd: RawFd,
    wake: OwnedFd,
    rx: Receiver<Request>,
    chans: Vec<Chan>,
    /// libssh2 allows one channel open in progress at a time.
    opening: VecDeque<Opening>,
    keepalive: Keepalive,
    /// When the host last sent something (or took what this side sent).
    last_heard: Instant,
}

impl Pump {
    fn run(mut self) -> Result<(), String> {
        let mut shutting_down = false;
        // A channel that does not end after the goodbye was asked for is not waited for long.
        let mut shutdown_deadline: Option<Instant> = None;
        // Set once the connection is gone: every channel and request fails.
        let mut dead: Option<String> = None;
        loop {
            loop {
                match self.rx.try_recv() {
                    Ok(Request::Exec(spec, done)) => self.opening.push_back(Opening { spec, done, channel: None }),
                    Ok(Request::Shutdown) | Err(mpsc::TryRecvError::Disconnected) => {
                        shutting_down = true;
                        shutdown_deadline.get_or_insert(Instant::now() + SHUTDOWN_WAIT);
                    }
                    Ok(Request::Abort) => {
                        // libssh2 frees a channel or session only once its CLOSE
                        // went out, which fails with EAGAIN when non-blocking and
                        // leaks: blocking, with a short timeout.
                        self.session.set_timeout(500);
                        self.session.set_blocking(true);
                        self.fail_all("the connection was closed");
                        return Ok(());
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            if let Some(why) = dead.clone() {
                self.fail_all(&why);
                if shutting_down {
                    return Err(why);
                }
                self.wait(false)?;
                continue;
            }
            let mut progress = match self.advance_open() {
                Ok(p) => p,
                Err(e) => {
                    dead = Some(e);
                    continue;
                }
            };
            for i in (0..self.chans.len()).rev() {
                let Some(chan) = self.chans.get_mut(i) else { continue };
                match chan.service() {
                    Ok((p, finished)) => {
                        progress |= p;
                        if finished {
                            let chan = self.chans.swap_remove(i);
                            let _ = chan.done.send(chan.exit());
                        }
                    }
                    // A read error is the transport's: the session is gone.
                    Err(e) => dead = Some(e),
                }
            }
            if shutdown_deadline.is_some_and(|d| Instant::now() > d) {
                self.fail_all("the connection was closed");
            }
            if progress {
                self.last_heard = Instant::now();
            }
            // A keepalive when one is due (libssh2 counts the quiet time); the answer is life.
            let _ = self.session.keepalive_send();
            if self.last_heard.elapsed() > self.keepalive.dead_after {
                dead = Some(format!(
                    "Timeout, the host sent nothing for {} s (keepalives unanswered)",
                    self.keepalive.dead_after.as_secs()
                ));
                continue;
            }
            if shutting_down && self.chans.is_empty() && self.opening.is_empty() {
                // Nothing is pending: a clean goodbye, blocking.
                self.session.set_blocking(true);
                self.session.set_timeout(2000);
                let _ = self.session.disconnect(None, "bye", None);
                return Ok(());
            }
            // Reading one channel makes libssh2 read the socket and queue packets
            // for the others, out of poll's sight: look before sleeping.
            if dead.is_some() || progress || self.buffered_work() {
                continue;
            }
            if let Err(e) = self.wait(true) {
                dead = Some(e);
            }
        }
    }

    fn fail_all(&mut self, why: &str) {
        for chan in self.chans.drain(..) {
            let _ = chan.done.send(Exit::Failed(why.to_owned()));
        }
        for open in self.opening.drain(..) {
            let _ = open.done.send(Exit::Failed(why.to_owned()));
        }
    }

    /// Drive the channel open at the head of the queue; true on progress.
    fn advance_open(&mut self) -> Result<bool, String> {
        let Some(open) = self.opening.front_mut() else { return Ok(false) };
        let channel = match &mut open.channel {
            Some(channel) => channel,
            None => match self.session.channel_open("session", WINDOW, PACKET, None) {
                Ok(channel) => open.channel.insert(channel),
                Err(e) if is_eagain(&e) => return Ok(false),
                Err(e) => {
                    if let Some(open) = self.opening.pop_front() {
                        let _ = open.done.send(Exit::Failed(format!("cannot open a channel: {e}")));
                    }
                    return Ok(true);
                }
            },
        };
        // env requests are best effort: servers refuse what AcceptEnv lacks.
        while let Some((key, value)) = open.spec.env.first().cloned() {
            match channel.setenv(&key, &value) {
                Err(e) if is_eagain(&e) => return Ok(false),
                _ => {
                    open.spec.env.remove(0);
                }
            }
        }
        if let Some(pty) = &open.spec.pty {
            match channel.request_pty(&pty.term, None, Some((pty.cols, pty.rows, 0, 0))) {
                Err(e) if is_eagain(&e) => return Ok(false),
                Err(e) => {
                    if let Some(open) = self.opening.pop_front() {
                        let _ = open.done.send(Exit::Failed(format!("cannot get a terminal there: {e}")));
                    }
                    return Ok(true);
                }
                Ok(()) => open.spec.pty = None,
            }
        }
        let started = match &open.spec.command {
            Some(command) => channel.exec(command),
            None => channel.shell(),
        };
        match started {
            Err(e) if is_eagain(&e) => Ok(false),
            Err(e) => {
                if let Some(open) = self.opening.pop_front() {
                    let _ = open.done.send(Exit::Failed(format!("cannot run the command: {e}")));
                }
                Ok(true)
            }
            Ok(()) => {
                if let Some(Opening { spec, done, channel: Some(channel) }) = self.opening.pop_front() {
                    self.chans.push(Chan::new(channel, spec.stdin, spec.stdout, spec.stderr, done));
                }
                Ok(true)
            }
        }
    }

    fn outbound_blocked(&self) -> bool {
        matches!(self.session.block_directions(), BlockDirections::Outbound | BlockDirections::Both)
    }

    fn buffered_work(&self) -> bool {
        let blocked = self.outbound_blocked();
        self.chans.iter().any(|c| c.buffered_work(blocked))
    }

    /// Sleep until the socket, the wake-up pipe or a local fd is ready.
    fn wait(&mut self, with_socket: bool) -> Result<(), String> {
        let mut socket_events = libc::POLLIN;
        if self.outbound_blocked() {
            socket_events |= libc::POLLOUT;
        }
        // A dead socket would poll readable forever: leave it out then.
        let mut fds = vec![
            libc::pollfd { fd: if with_socket { self.fd } else { -1 }, events: socket_events, revents: 0 },
            libc::pollfd { fd: self.wake.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        for chan in &self.chans {
            chan.poll_fds(&mut fds);
        }
        // A channel waiting for the remote CLOSE may have had it read by another
        // channel's read: poll briefly then. Otherwise the timeout is a safety net.
        let closing = self.chans.iter().any(Chan::closing);
        let timeout = if !with_socket {
            -1
        } else if closing || !self.opening.is_empty() {
            20
        } else {
            1000
        };
        // SAFETY: `fds` is a valid array of pollfd for its length.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(format!("poll: {e}"));
            }
        }
        if fds[0].revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            return Err("the connection failed".into());
        }
        if fds[0].revents & libc::POLLIN != 0 {
            self.last_heard = Instant::now();
        }
        if fds[1].revents & libc::POLLIN != 0 {
            let mut sink = [0u8; 64];
            // SAFETY: reads into a stack buffer of its length, non-blocking.
            while unsafe { libc::read(self.wake.as_raw_fd(), sink.as_mut_ptr().cast(), sink.len()) } > 0 {}
        }
        Ok(())
    }
}
