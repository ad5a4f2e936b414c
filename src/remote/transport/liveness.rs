//! No wait on the other machine is unbounded: every read of the helper's
//! answers and of raw bytes, and every write to it, gives up once nothing
//! has moved for `codex-handoff.ioTimeout`. Anything that comes from the
//! other side counts as life: a byte of an answer or of a stream, a line
//! on the helper's stderr (where a busy helper says it is still at work),
//! a chunk of ours it took.

use std::io::{BufRead, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::link::Link;

/// How a connection failed to carry a request to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// Nothing moved for this long.
    Silent(Duration),
    /// The other side closed or reset the connection in the middle of a request.
    Closed,
}

/// The last time something came from the other side on a channel the
/// reader does not see (stderr), shared with the thread that reads it.
#[derive(Debug, Clone, Default)]
pub struct Heard(Arc<AtomicU64>);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Heard {
    pub fn new() -> Heard {
        let heard = Heard::default();
        heard.now();
        heard
    }
    /// Something came just now.
    pub fn now(&self) {
        let millis = u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.store(millis, Ordering::Relaxed);
    }
    pub fn last(&self) -> Instant {
        epoch() + Duration::from_millis(self.0.load(Ordering::Relaxed))
    }
}

/// Writes to a pipe or socket at most this much at once after poll(2) says
/// it has room, so that a write never blocks (Linux: a page of pipe
/// buffer; macOS: its PIPE_BUF).
#[cfg(target_os = "macos")]
const CHUNK: usize = 512;
#[cfg(not(target_os = "macos"))]
const CHUNK: usize = 4096;

/// The link's output, read with a limit on silence.
pub struct TimedOutput<'a> {
    pub(super) link: &'a mut dyn Link,
    /// `None`: wait as long as it takes (a helper that says nothing while it works).
    pub(super) limit: Option<Duration>,
    pub(super) lost: &'a mut Option<Lost>,
}

/// The link's input, written with a limit on how long the other side takes nothing.
pub struct TimedInput<'a> {
    pub(super) link: &'a mut dyn Link,
    pub(super) limit: Duration,
    pub(super) lost: &'a mut Option<Lost>,
}

fn timed_out(lost: &mut Option<Lost>, limit: Duration) -> std::io::Error {
    *lost = Some(Lost::Silent(limit));
    std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no answer for {} s", limit.as_secs()))
}

/// Whether an I/O error on the link means the other side went away.
fn gone(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof | NotConnected)
}

/// Wait until `ready` says yes, for as long as something keeps coming
/// within `limit` of the last thing (`heard`, or the start of the wait).
fn wait(link: &mut dyn Link, limit: Duration, mut ready: impl FnMut(&mut dyn Link, Duration) -> bool) -> bool {
    let started = Instant::now();
    loop {
        let since = link.heard().map_or(started, |h| h.max(started));
        let left = (since + limit).saturating_duration_since(Instant::now());
        if ready(link, left) {
            return true;
        }
        // Nothing on the link itself: only what came meanwhile on the side (stderr) keeps it alive.
        if link.heard().is_none_or(|h| h <= since) && Instant::now() >= since + limit {
            return false;
        }
    }
}

impl TimedOutput<'_> {
    fn check(&mut self) -> std::io::Result<()> {
        if let Some(Lost::Silent(limit)) = *self.lost {
            return Err(timed_out(self.lost, limit));
        }
        let Some(limit) = self.limit else { return Ok(()) };
        if wait(self.link, limit, |link, left| link.output_ready(left)) {
            Ok(())
        } else {
            Err(timed_out(self.lost, limit))
        }
    }
}

impl Read for TimedOutput<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for TimedOutput<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.check()?;
        match self.link.output().fill_buf() {
            Ok(bytes) => Ok(bytes),
            Err(e) => {
                if gone(&e) {
                    *self.lost = Some(Lost::Closed);
                }
                Err(e)
            }
        }
    }
    fn consume(&mut self, amount: usize) {
        self.link.output().consume(amount)
    }
}

impl Write for TimedInput<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if !wait(self.link, self.limit, |link, left| link.input_ready(left)) {
            return Err(timed_out(self.lost, self.limit));
        }
        let Some(input) = self.link.input() else {
            return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the connection is closed"));
        };
        input.write(&buf[..buf.len().min(CHUNK)]).inspect_err(|e| {
            if gone(e) {
                *self.lost = Some(Lost::Closed);
            }
        })
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.link.input() {
            Some(input) => input.flush(),
            None => Ok(()),
        }
    }
}

/// Wait at most `timeout` until `fd` can be written without blocking.
pub fn writable_within(fd: std::os::fd::RawFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut poll = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
        let millis = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut poll, 1, millis) };
        if rc >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return rc != 0;
        }
    }
}
