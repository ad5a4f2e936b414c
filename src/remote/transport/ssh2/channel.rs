//! One channel as the pump serves it: bytes from a local fd into the
//! channel's stdin, its stdout and stderr out to local fds, then the close
//! handshake and the exit status. Everything here runs on the pump thread
//! with the session in non-blocking mode.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::mpsc::Sender;

use ssh2::{Channel, ErrorCode};

/// LIBSSH2_ERROR_EAGAIN.
const EAGAIN: i32 = -37;
/// Bytes read from a local fd but not yet taken by the channel.
const MAX_PENDING_IN: usize = 256 * 1024;
/// Bytes read from the channel but not yet written to the local fd.
const MAX_PENDING_OUT: usize = 256 * 1024;
const CHUNK: usize = 64 * 1024;

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(String),
    /// The channel could not be opened, or the connection failed.
    Failed(String),
}

impl Exit {
    /// As ssh reports it: a signal or a lost connection is 255.
    pub fn code(&self) -> i32 {
        match self {
            Exit::Code(c) => *c,
            Exit::Signal(_) | Exit::Failed(_) => 255,
        }
    }
}

pub fn is_eagain(e: &ssh2::Error) -> bool {
    e.code() == ErrorCode::Session(EAGAIN)
}

/// Local fd → channel stdin.
struct Input {
    fd: Option<OwnedFd>,
    buf: Vec<u8>,
    eof_seen: bool,
    eof_sent: bool,
}

/// Channel stream (0 = stdout, 1 = stderr) → local fd.
struct Output {
    fd: Option<OwnedFd>,
    is_socket: bool,
    buf: Vec<u8>,
    remote_done: bool,
}

#[derive(PartialEq, Eq)]
enum Phase {
    Running,
    WaitClosed,
    Closing,
}

pub struct Chan {
    ch: Channel,
    input: Input,
    out: [Output; 2],
    phase: Phase,
    pub done: Sender<Exit>,
}

impl Chan {
    /// A channel whose command runs, bound to these fds (`None` stdin: EOF at once; `None` output: discarded).
    pub fn new(
        ch: Channel,
        stdin: Option<OwnedFd>,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
        done: Sender<Exit>,
    ) -> Chan {
        let output = |fd: Option<OwnedFd>| {
            let is_socket = fd.as_ref().is_some_and(|f| is_socket(f.as_raw_fd()));
            if let Some(f) = &fd {
                let _ = set_nonblocking(f.as_raw_fd());
            }
            Output { remote_done: false, is_socket, buf: Vec::new(), fd }
        };
        if let Some(f) = &stdin {
            let _ = set_nonblocking(f.as_raw_fd());
        }
        let eof_seen = stdin.is_none();
        Chan {
            ch,
            input: Input { fd: stdin, buf: Vec::new(), eof_seen, eof_sent: false },
            out: [output(stdout), output(stderr)],
            phase: Phase::Running,
            done,
        }
    }

    /// Move what can move now. `Ok((progress, finished))`; `Err` is the connection's failure.
    pub fn service(&mut self) -> Result<(bool, bool), String> {
        let mut progress = self.feed_input();
        for stream_id in 0..2 {
            progress |= self.drain_output(stream_id)?;
        }
        // The remote's EOF comes when its command closed its output; its CLOSE
        // once sshd saw the command exit, after the exit status.
        let outputs_done = self.out.iter().all(|o| o.remote_done && o.buf.is_empty());
        loop {
            match self.phase {
                Phase::Running if outputs_done => self.phase = Phase::WaitClosed,
                Phase::WaitClosed => match self.ch.wait_close() {
                    Err(e) if is_eagain(&e) => break,
                    _ => self.phase = Phase::Closing,
                },
                Phase::Closing => match self.ch.close() {
                    Err(e) if is_eagain(&e) => break,
                    _ => return Ok((true, true)),
                },
                Phase::Running => break,
            }
        }
        Ok((progress, false))
    }

    fn feed_input(&mut self) -> bool {
        let mut progress = false;
        let input = &mut self.input;
        if let Some(fd) = &input.fd {
            if !input.eof_seen && input.buf.len() < MAX_PENDING_IN {
                match read_fd(fd.as_raw_fd(), &mut input.buf, CHUNK) {
                    Ok(0) => input.eof_seen = true,
                    Ok(_) => progress = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => input.eof_seen = true,
                }
            }
        }
        while !input.buf.is_empty() {
            // On EAGAIN libssh2 keeps the packet it built and must get the same
            // bytes again first: only what it took is dropped.
            match io::Write::write(&mut self.ch, &input.buf) {
                Ok(n) => {
                    input.buf.drain(..n);
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    // The remote closed its stdin (its command exited): drop the rest.
                    input.buf.clear();
                    input.eof_seen = true;
                    input.fd = None;
                }
            }
        }
        if input.eof_seen && input.buf.is_empty() && !input.eof_sent {
            match self.ch.send_eof() {
                Err(e) if is_eagain(&e) => {}
                _ => {
                    input.eof_sent = true;
                    input.fd = None;
                    progress = true;
                }
            }
        }
        progress
    }

    fn drain_output(&mut self, stream_id: usize) -> Result<bool, String> {
        let mut progress = false;
        let Some(o) = self.out.get_mut(stream_id) else { return Ok(false) };
        while !o.remote_done && o.buf.len() < MAX_PENDING_OUT {
            let mut chunk = [0u8; CHUNK];
            match io::Read::read(&mut self.ch.stream(stream_id as i32), &mut chunk) {
                Ok(0) => {
                    // 0 without EOF: only the other stream has data.
                    if self.ch.eof() {
                        o.remote_done = true;
                        progress = true;
                    }
                    break;
                }
                Ok(n) => {
                    if o.fd.is_some() {
                        o.buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                    }
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("reading from the channel: {e}")),
            }
        }
        if let Some(raw) = o.fd.as_ref().map(|f| f.as_raw_fd()) {
            while !o.buf.is_empty() {
                match write_fd(raw, &o.buf) {
                    Ok(n) => {
                        o.buf.drain(..n);
                        progress = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        // The local reader went away: keep draining the channel into nothing.
                        o.buf.clear();
                        o.fd = None;
                    }
                }
            }
        }
        if o.remote_done && o.buf.is_empty() {
            if let Some(fd) = o.fd.take() {
                // A socket that also carries the input direction needs a half-close.
                if o.is_socket {
                    // SAFETY: a valid fd we own until the end of this block.
                    unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) };
                }
            }
        }
        Ok(progress)
    }

    /// Work libssh2 holds in memory that poll(2) cannot see: queued data or an
    /// EOF for this channel, or window space for pending input.
    pub fn buffered_work(&self, outbound_blocked: bool) -> bool {
        let room = self.out.iter().any(|o| !o.remote_done && o.buf.len() < MAX_PENDING_OUT);
        (room && self.ch.read_window().available > 0)
            || (self.ch.eof() && self.out.iter().any(|o| !o.remote_done))
            || (!self.input.buf.is_empty() && !outbound_blocked && self.ch.write_window().remaining > 0)
    }

    /// Is it waiting for the remote's CLOSE (which another channel's read may have taken in)?
    pub fn closing(&self) -> bool {
        self.phase != Phase::Running
    }

    /// The local fds poll(2) should watch for this channel.
    pub fn poll_fds(&self, fds: &mut Vec<libc::pollfd>) {
        if let Some(fd) = &self.input.fd {
            if !self.input.eof_seen && self.input.buf.len() < MAX_PENDING_IN {
                fds.push(libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 });
            }
        }
        for o in &self.out {
            if let (Some(fd), false) = (&o.fd, o.buf.is_empty()) {
                fds.push(libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLOUT, revents: 0 });
            }
        }
    }

    pub fn exit(&self) -> Exit {
        if let Ok(signal) = self.ch.exit_signal() {
            if let Some(name) = signal.exit_signal {
                return Exit::Signal(name);
            }
        }
        Exit::Code(self.ch.exit_status().unwrap_or(255))
    }
}

pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd the caller owns; failure is reported, not undefined.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn is_socket(fd: RawFd) -> bool {
    // SAFETY: fstat writes into the zeroed struct it is given.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    unsafe { libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK }
}

fn read_fd(fd: RawFd, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    let start = buf.len();
    buf.resize(start + max, 0);
    // SAFETY: the buffer has `max` writable bytes after `start`.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().add(start).cast(), max) };
    if n < 0 {
        buf.truncate(start);
        return Err(io::Error::last_os_error());
    }
    buf.truncate(start + n as usize);
    Ok(n as usize)
}

fn write_fd(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    // SIGPIPE is ignored by Rust's runtime: a closed reader is EPIPE here.
    // SAFETY: `data` is valid for its length.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}
