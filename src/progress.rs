//! How far the long steps of a handoff are, as numbers: which step, how
//! much is done, out of how much. Nothing here draws. The front end of the
//! process installs its one sink (the command line draws meters; the helper
//! passes them on to its client); code at any layer reports to it, without
//! knowing whether anyone watches. Reports are rate-limited here, so a
//! stream may report every chunk it moves.

use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A long step, on either machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Reading and hashing the worktree's big files into the snapshot (bytes).
    Hash,
    /// Sending the snapshot's bytes to the other machine (bytes).
    Send,
    /// Writing the snapshot's files into the destination worktree (files).
    Checkout,
    /// Comparing the restored worktree with the snapshot (parts).
    Verify,
    /// Receiving the snapshot's bytes from the other machine (bytes).
    Receive,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Hash => "hash",
            Step::Send => "send",
            Step::Checkout => "checkout",
            Step::Verify => "verify",
            Step::Receive => "receive",
        }
    }

    /// Whether `done` and `total` count bytes (else files, or parts of the step).
    pub fn counts_bytes(self) -> bool {
        matches!(self, Step::Hash | Step::Send | Step::Receive)
    }
}

/// One report: `done` of `total` of `step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub step: Step,
    pub done: u64,
    pub total: u64,
}

/// Where reports go: installed once by the front end.
pub type Sink = Box<dyn Fn(Report) + Send + Sync>;

/// At most one report per step this often, besides its first and its last.
pub const EVERY: Duration = Duration::from_millis(100);

struct Meter {
    sink: Option<Sink>,
    /// The step last reported, when, and whether that report ended it.
    last: Option<(Step, Instant, bool)>,
}

static METER: Mutex<Meter> = Mutex::new(Meter { sink: None, last: None });

fn meter() -> std::sync::MutexGuard<'static, Meter> {
    METER.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Send every report from now on to `sink` (`None`: to nobody).
pub fn set_sink(sink: Option<Sink>) {
    let mut meter = meter();
    meter.sink = sink;
    meter.last = None;
}

/// `done` of `total` of `step` (done is capped at total). Passed on when the
/// step starts or ends, or at most once per [`EVERY`] in between.
pub fn report(step: Step, done: u64, total: u64) {
    let done = done.min(total);
    let mut meter = meter();
    if meter.sink.is_none() {
        return;
    }
    let now = Instant::now();
    let end = done == total;
    let due = match meter.last {
        Some((last, at, ended)) if last == step && !ended => end || now.duration_since(at) >= EVERY,
        // A step that ended reports again only when it starts over.
        Some((last, _, true)) if last == step => !end || done == 0,
        _ => true,
    };
    if !due {
        return;
    }
    meter.last = Some((step, now, end));
    if let Some(sink) = &meter.sink {
        sink(Report { step, done, total });
    }
}

/// A reader or writer whose bytes count towards `step`, out of `total`.
pub struct Counted<S> {
    pub inner: S,
    step: Step,
    done: u64,
    total: u64,
}

impl<S> Counted<S> {
    /// Starts the step at 0 of `total` (nothing to move: no step at all).
    pub fn new(inner: S, step: Step, total: u64) -> Counted<S> {
        if total > 0 {
            report(step, 0, total);
        }
        Counted { inner, step, done: 0, total }
    }

    /// Goes on with a step `done` of `total` into it (one step over several streams).
    pub fn starting_at(inner: S, step: Step, done: u64, total: u64) -> Counted<S> {
        Counted { inner, step, done, total }
    }

    fn moved(&mut self, n: usize) {
        self.done = self.done.saturating_add(n as u64);
        if self.total > 0 && n > 0 {
            report(self.step, self.done, self.total);
        }
    }
}

impl<S: Read> Read for Counted<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.moved(n);
        Ok(n)
    }
}

impl<S: Write> Write for Counted<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.moved(n);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `(done, total)` from a line of git's own progress ("Updating files:  45% (9/20)").
pub fn parse_git_counts(line: &str) -> Option<(u64, u64)> {
    let open = line.rfind('(')?;
    let inner = line.get(open + 1..)?;
    let inner = inner.get(..inner.find(')')?)?;
    let (done, total) = inner.split_once('/')?;
    Some((done.trim().parse().ok()?, total.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_counts() {
        assert_eq!(parse_git_counts("Updating files:  45% (9/20)"), Some((9, 20)));
        assert_eq!(parse_git_counts("Updating files: 100% (20/20), done."), Some((20, 20)));
        assert_eq!(parse_git_counts("warning: (x)"), None);
        assert_eq!(parse_git_counts(""), None);
    }
}
