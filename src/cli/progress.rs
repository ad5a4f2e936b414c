//! The meters of the long steps (`crate::progress` reports) on stderr: a
//! live line per step on a terminal, ending with the step's size and rate
//! ("Sending: 100% 150.00 MiB | 80.00 MiB/s, done."), as git's own progress
//! does; the same final lines with `--progress` when stderr is not a
//! terminal; one JSON object per line under `--json --progress`.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::{self, Report, Step};

enum Mode {
    /// Live meters (stderr is a terminal).
    Bars,
    /// A line now and then, and each step's final line (`--progress` and no
    /// terminal, or a dumb one).
    Lines,
    /// `{"step":…,"done":…,"total":…}` lines (`--json --progress`).
    Json,
}

/// The step being shown.
struct Shown {
    step: Step,
    started: Instant,
    bar: Option<ProgressBar>,
    /// When the last line was written (`Lines`).
    said: Instant,
    ended: bool,
}

struct Meters {
    mode: Mode,
    shown: Option<Shown>,
}

/// Install the meters this command's flags ask for as the process's sink:
/// JSON lines under `--json --progress`; else live meters on a terminal
/// (as the text progress shows there under `--json` too), final lines with
/// `--progress` off one.
pub fn install(json: bool, forced: bool) {
    let mode = match (json, forced, std::io::stderr().is_terminal()) {
        (true, true, _) => Mode::Json,
        // A dumb terminal cannot redraw a line in place: it gets lines.
        (_, _, true) if std::env::var_os("TERM").is_none_or(|t| t == "dumb") => Mode::Lines,
        (_, _, true) => Mode::Bars,
        (false, true, false) => Mode::Lines,
        _ => return,
    };
    let meters = Mutex::new(Meters { mode, shown: None });
    progress::set_sink(Some(Box::new(move |report| {
        meters.lock().unwrap_or_else(std::sync::PoisonError::into_inner).show(report)
    })));
}

/// What the person reads for a step.
fn label(step: Step) -> &'static str {
    match step {
        Step::Hash => "Hashing",
        Step::Send => "Sending",
        Step::Checkout => "Checking out",
        Step::Verify => "Verifying",
        Step::Receive => "Receiving",
    }
}

/// "45% 64.00 MiB / 150.00 MiB" (bytes) or "45% (9/20)" (files, parts).
fn amounts(report: Report) -> String {
    let percent = (report.done * 100).checked_div(report.total).unwrap_or(100);
    if report.step.counts_bytes() {
        format!("{percent:>3}% {} / {}", HumanBytes(report.done), HumanBytes(report.total))
    } else {
        format!("{percent:>3}% ({}/{})", report.done, report.total)
    }
}

/// The line a step ends with: its size and average rate, for bytes.
fn final_line(report: Report, took: Duration) -> String {
    let name = label(report.step);
    if report.step.counts_bytes() {
        let rate = report.total as f64 / took.as_secs_f64().max(0.001);
        format!("{name}: 100% {} | {}/s, done.", HumanBytes(report.total), HumanBytes(rate as u64))
    } else {
        format!("{name}: 100% ({}/{}), done.", report.done, report.total)
    }
}

fn live_style(step: Step) -> ProgressStyle {
    let template = if step.counts_bytes() {
        "{prefix}: {percent:>3}% {bytes} / {total_bytes} | {binary_bytes_per_sec}, {eta} left"
    } else {
        "{prefix}: {percent:>3}% ({pos}/{len})"
    };
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Meters {
    fn show(&mut self, report: Report) {
        if let Mode::Json = self.mode {
            let line = serde_json::json!({ "step": report.step, "done": report.done, "total": report.total });
            // One write per line.
            let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
            return;
        }
        let fresh = match &self.shown {
            Some(shown) => shown.step != report.step || (shown.ended && report.done < report.total),
            None => true,
        };
        if fresh {
            self.start(report);
        }
        let Some(shown) = self.shown.as_mut() else { return };
        if shown.ended {
            return;
        }
        let end = report.done >= report.total;
        if let Some(bar) = &shown.bar {
            bar.set_length(report.total);
            bar.set_position(report.done);
        }
        if end {
            shown.ended = true;
            let line = final_line(report, shown.started.elapsed());
            match shown.bar.take() {
                Some(bar) => {
                    bar.set_style(
                        ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    bar.finish_with_message(line);
                }
                None => {
                    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
                }
            }
        } else if shown.bar.is_none() && shown.said.elapsed() >= Duration::from_secs(1) {
            shown.said = Instant::now();
            let line = format!("{}: {}\n", label(report.step), amounts(report));
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }

    /// A new step (or the same one over again): the one shown before stays as it was.
    fn start(&mut self, report: Report) {
        if let Some(bar) = self.shown.take().and_then(|s| s.bar) {
            bar.abandon();
        }
        let bar = matches!(self.mode, Mode::Bars).then(|| {
            let bar = ProgressBar::with_draw_target(Some(report.total), ProgressDrawTarget::stderr());
            bar.set_style(live_style(report.step));
            bar.set_prefix(label(report.step));
            bar
        });
        let now = Instant::now();
        self.shown = Some(Shown { step: report.step, started: now, bar, said: now, ended: false });
    }
}
