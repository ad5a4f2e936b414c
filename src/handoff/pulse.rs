//! The helper's side of liveness. While it works on a request it says so
//! on stderr now and then, so a client waits as long as it is at work and
//! no longer once the link is dead; and a stream of bytes to or from the
//! client that stops moving for the client's `ioTimeout` ends the session
//! (a dead link would otherwise keep it, and the thread's lock with it,
//! for as long as TCP takes to notice).

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::progress::{self, Report};
use crate::remote::protocol;

/// This side's reports not yet passed on, shared by the process's meter and
/// the thread that passes them to the client: the end of every step, and
/// the latest report of the step under way.
#[derive(Clone, Default)]
pub struct Latest(Arc<Mutex<Vec<Report>>>);

impl Latest {
    /// Make it the process's meter.
    pub fn install() -> Latest {
        let latest = Latest::default();
        let slot = latest.clone();
        progress::set_sink(Some(Box::new(move |report| {
            let mut waiting = slot.lock();
            match waiting.last_mut() {
                Some(last) if last.step == report.step && last.done < last.total => *last = report,
                _ => waiting.push(report),
            }
        })));
        latest
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Report>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    /// Write the reports waiting as progress lines.
    fn pass_on(&self, output: &mut dyn Write) {
        let waiting = std::mem::take(&mut *self.lock());
        for report in waiting {
            let _ = protocol::write_json(output, &protocol::ProgressLine { progress: report });
        }
    }
}

/// What the helper says while it works on request `op`.
pub struct Pulse<'a> {
    /// The client's `ioTimeout` (none: it waits as long as it takes).
    pub io_timeout: Option<Duration>,
    pub op: &'a str,
    /// For a client that asked for it: this side's progress, written to its output.
    pub progress: Option<(Latest, &'a mut (dyn Write + Send))>,
}

/// Run `work`, with a line on stderr three times per `io_timeout` of the
/// client (none: silently), and its progress passed on as it goes (the
/// last report before the answer).
pub fn with_heartbeat<T>(pulse: Pulse, work: impl FnOnce() -> T) -> T {
    let Pulse { io_timeout, op, progress } = pulse;
    let interval = io_timeout.map(|t| (t / 3).max(Duration::from_millis(100)));
    if interval.is_none() && progress.is_none() {
        return work();
    }
    let tick = if progress.is_some() { progress::EVERY } else { interval.unwrap_or(progress::EVERY) };
    let (done, stop) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut progress = progress;
            let started = Instant::now();
            let mut said = started;
            while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(tick) {
                if let Some((latest, output)) = &mut progress {
                    latest.pass_on(*output);
                }
                if interval.is_some_and(|every| said.elapsed() >= every) {
                    said = Instant::now();
                    // One write per line: lines from two threads never mix.
                    let line = format!("git-codex-handoff helper: still at {op} ({} s)\n", started.elapsed().as_secs());
                    let _ = std::io::stderr().write_all(line.as_bytes());
                }
            }
            if let Some((latest, output)) = &mut progress {
                latest.pass_on(*output);
            }
        });
        let out = work();
        let _ = done.send(());
        out
    })
}

/// Raw bytes that follow an answer.
pub enum Sending {
    /// A transcript blob (`transcript_out`).
    Blob(Box<crate::repo::Repo>, gix::ObjectId),
    /// A pack made for the client (`pack_out`).
    Pack(super::transfer::OutPack),
}

/// Send the bytes an answer announced; should the client take nothing for
/// `limit`, the session ends.
pub fn send(sending: Sending, limit: Option<Duration>, output: &mut dyn Write) -> Result<()> {
    watched(limit, "sending", output, |output| -> Result<()> {
        match sending {
            Sending::Blob(repo, blob) => super::send_transcript(&repo, blob, output)?,
            Sending::Pack(pack) => {
                let mut buffered = std::io::BufWriter::with_capacity(1 << 16, &mut *output);
                pack.write_to(&mut buffered)?;
                buffered.flush()?;
            }
        }
        Ok(())
    })
}

/// Since when a read or write of the stream has been waiting for the
/// client (0: none is), watched from another thread.
#[derive(Default)]
pub struct Waiting {
    since_ms: AtomicU64,
}

fn now_ms(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A reader or writer of the stream; the time each call waits is watched.
pub struct Watched<'a, S> {
    pub inner: S,
    waiting: &'a Waiting,
    epoch: Instant,
}

impl<S> Watched<'_, S> {
    fn wait<T>(&mut self, io: impl FnOnce(&mut S) -> std::io::Result<T>) -> std::io::Result<T> {
        self.waiting.since_ms.store(now_ms(self.epoch), Ordering::Relaxed);
        let done = io(&mut self.inner);
        self.waiting.since_ms.store(0, Ordering::Relaxed);
        done
    }
}

impl<S: Read> Read for Watched<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.wait(|inner| inner.read(buf))
    }
}

impl<S: Write> Write for Watched<'_, S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.wait(|inner| inner.write(buf))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.wait(|inner| inner.flush())
    }
}

/// Run `work` over `stream`; should one read or write of it wait for the
/// client for `limit` (none: no limit), the session ends here: the helper
/// exits, which lets go of every lock it holds, and what it was taking in
/// is cleared by the next run.
pub fn watched<S, T>(limit: Option<Duration>, what: &str, stream: S, work: impl FnOnce(&mut Watched<S>) -> T) -> T {
    let waiting = Waiting::default();
    let epoch = Instant::now();
    let mut watched = Watched { inner: stream, waiting: &waiting, epoch };
    let Some(limit) = limit else { return work(&mut watched) };
    let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    let (done, stop) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let waiting = &waiting;
        scope.spawn(move || {
            let tick = (limit / 10).clamp(Duration::from_millis(20), Duration::from_secs(1));
            while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(tick) {
                let since = waiting.since_ms.load(Ordering::Relaxed);
                if since != 0 && now_ms(epoch).saturating_sub(since) >= limit_ms {
                    let line = format!(
                        "git-codex-handoff helper: {what} waited {} s for the client; the connection is gone, \
                         ending the session\n",
                        limit.as_secs_f64()
                    );
                    let _ = std::io::stderr().write_all(line.as_bytes());
                    std::process::exit(5);
                }
            }
        });
        let out = work(&mut watched);
        let _ = done.send(());
        out
    })
}
