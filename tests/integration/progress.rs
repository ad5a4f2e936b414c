//! The meters of the long steps: live lines on a terminal that end with the
//! bytes that really crossed; JSON lines on stderr under `--json
//! --progress`, stdout still one document; nothing on stderr that is not a
//! terminal without `--progress`.

use std::path::Path;

use serde_json::Value;

use crate::handoff::{Via, World};
use crate::harness::{write, Rng};

/// Bytes of random (incompressible) untracked files written into `dir`.
fn random_files(dir: &Path, seed: u64) -> u64 {
    let mut rng = Rng::new(seed);
    let mut total = 0;
    for (name, len) in [("model.bin", 2 << 20), ("weights/a.bin", 1 << 20), ("weights/b.bin", 512 << 10)] {
        write(dir, name.as_bytes(), &rng.bytes(len, true));
        total += len as u64;
    }
    total
}

/// A size as the meters show it (binary units, two decimals).
fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

/// The JSON progress lines of a run's stderr, checked one by one: each
/// parses and has a step with done <= total. Returns (step, done, total).
fn progress_lines(stderr: &str) -> Vec<(String, u64, u64)> {
    let mut lines = Vec::new();
    for line in stderr.lines().filter(|l| l.starts_with('{')) {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?} does not parse: {e}"));
        let step = value["step"].as_str().unwrap_or_else(|| panic!("no step in {line}")).to_owned();
        let done = value["done"].as_u64().unwrap_or_else(|| panic!("no done in {line}"));
        let total = value["total"].as_u64().unwrap_or_else(|| panic!("no total in {line}"));
        assert!(done <= total, "{line}");
        assert_eq!(value.as_object().unwrap().len(), 3, "{line}");
        lines.push((step, done, total));
    }
    lines
}

/// Every run of a step (lines of one step in a row) ends with done == total;
/// returns the totals each run of `step` ended with.
fn ends(lines: &[(String, u64, u64)], step: &str) -> Vec<u64> {
    let mut ended = Vec::new();
    for (i, (name, done, total)) in lines.iter().enumerate() {
        let last_of_run = lines.get(i + 1).is_none_or(|(next, next_done, _)| next != name || *next_done < *done);
        if last_of_run {
            assert_eq!(done, total, "{name} ends at {done} of {total}: {lines:?}");
            if name == step {
                ended.push(*total);
            }
        }
    }
    ended
}

fn one_document(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {stdout}"))
}

#[test]
fn json_progress_lines_parse_and_stdout_stays_one_document() {
    let w = World::new(Via::Openssh);
    w.run(&["thread", "new", "--branch", "feat/meters"]).success();
    let random = random_files(&w.laptop, 7);

    let run = w.run(&["--json", "--progress", "1", "devbox"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let outcome = one_document(&run.stdout);
    let lines = progress_lines(&run.stderr);
    let sent = ends(&lines, "send");
    assert_eq!(sent, [outcome["sent_bytes"].as_u64().unwrap()], "{lines:?}");
    assert!(sent[0] >= random, "the pack holds the random files: {sent:?} < {random}");
    // The host's side came over the protocol while it checked the files out.
    assert!(!ends(&lines, "checkout").is_empty(), "{lines:?}");
    assert_eq!(ends(&lines, "verify"), [1], "{lines:?}");

    // And back: the pack the host made came here, then the checkout here.
    let run = w.run(&["--json", "--progress", "1", "local"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let outcome = one_document(&run.stdout);
    let lines = progress_lines(&run.stderr);
    let received = ends(&lines, "receive");
    assert_eq!(received, [outcome["received_bytes"].as_u64().unwrap()], "{lines:?}");
    assert!(!ends(&lines, "checkout").is_empty(), "{lines:?}");
    assert_eq!(ends(&lines, "verify"), [1], "{lines:?}");

    // No terminal, no --progress: no meter at all.
    std::fs::write(w.laptop.join("model.bin"), Rng::new(8).bytes(1 << 20, true)).unwrap();
    let run = w.run(&["--json", "1", "devbox"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    one_document(&run.stdout);
    assert!(progress_lines(&run.stderr).is_empty(), "{}", run.stderr);
    let run = w.run(&["1", "local"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for word in ["Sending", "Receiving", "Checking out", "Verifying", "done."] {
        assert!(!run.stderr.contains(word), "{}", run.stderr);
    }
}

#[test]
fn a_terminal_shows_the_bytes_that_were_sent() {
    let w = World::new(Via::Openssh);
    w.run(&["thread", "new", "--branch", "feat/screen"]).success();
    let random = random_files(&w.laptop, 9);

    let mut cmd = w.env.command("git", &w.laptop);
    cmd.args(["codex-handoff", "--json", "1", "devbox"]).env("TERM", "xterm-256color");
    let run = crate::harness::run_with_terminal_stderr(cmd, b"y\n");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let screen = &run.stderr;
    let sent = one_document(&run.stdout)["sent_bytes"].as_u64().unwrap();
    assert!(sent >= random && sent < random + (64 << 10), "{sent} bytes sent for {random} random bytes");

    // The line the send ended with (drawn over the live one): its size, its rate.
    let at = screen.rfind("Sending: 100% ").unwrap_or_else(|| panic!("no line of the send: {screen:?}"));
    let line = &screen[at..];
    let line = &line[..line.find(", done.").unwrap_or_else(|| panic!("the send did not end: {screen:?}")) + 7];
    let shown = line["Sending: 100% ".len()..].split(" | ").next().unwrap();
    assert_eq!(shown, human(sent), "{line}");
    assert!(line.ends_with("/s, done.") && !line.contains('\r'), "{line}");
    // Before it, the live line with bytes done of the total.
    assert!(screen[..at].contains(&format!(" / {} | ", human(sent))), "{screen:?}");
    // The host's checkout, as it went there.
    assert!(screen.contains("Checking out: 100% ("), "{screen:?}");
}
