//! A thread whose Codex rollout is large, handed out to a host and back
//! (the `local` transport, so the helper is a child whose memory can be
//! watched).

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::{make_home, write, Rng, TestEnv, BIN};

/// A handoff of a thread whose Codex rollout is large, out to the host and
/// back: wall time and the peak resident memory of this computer's process
/// and of the helper on each trip (the `local` transport makes the helper a
/// child we can watch). Rollouts are streamed and rewritten line by line, so
/// neither should grow with the rollout (the goal: under 64 MiB); git's own
/// processes (which pack the blob) are not counted.
pub fn transcript_trips(megabytes: usize) {
    let env = TestEnv::new();
    let laptop = env.init_repo("laptop");
    write(&laptop, b"a.txt", b"a\n");
    env.git(&laptop, &["add", "a.txt"]);
    env.git(&laptop, &["commit", "-q", "-m", "base"]);
    let remote_home = make_home(&env.path("remote-home"), "devbox");
    let clone = env.path("devbox-clone");
    env.git_as(&remote_home, env.root.path(), &["clone", "-q", laptop.to_str().unwrap(), clone.to_str().unwrap()]);
    env.git_as(&remote_home, &clone, &["checkout", "-q", "-b", "devbox-home"]);
    env.run_as(&remote_home, &clone, &["project", "save"]);
    env.run(&laptop, &["host", "add", "devbox", remote_home.to_str().unwrap(), "--transport", "local"]);

    let id = "0199f3a2-7b1c-7d2e-9f00-0000000000aa";
    let rollout = env.home.join(".codex/sessions/2026/11/24").join(format!("rollout-2026-11-24T08-00-00-{id}.jsonl"));
    write_large_rollout(&rollout, id, &laptop, megabytes);
    env.run(&laptop, &["thread", "new", "--codex-session", id, "--branch", "feat/big"]);
    let size_mb = std::fs::metadata(&rollout).unwrap().len() as f64 / 1_048_576.0;

    println!();
    println!("{size_mb:.0} MiB Codex rollout (paginated; every 40th line names the working directory; one 8 MiB line)");
    println!("{:<26} {:>10} {:>12} {:>12}", "trip", "s", "client MiB", "helper MiB");
    let mut took_s = Vec::new();
    for (trip, to) in [("out (client departs)", "devbox"), ("back (client arrives)", "local")] {
        let (took, client, helper, code) = watch(&env, &laptop, &["1", to, "--yes"]);
        took_s.push(took.as_secs_f64());
        println!(
            "{:<26} {:>10.2} {:>12.1} {:>12.1}{}",
            trip,
            took.as_secs_f64(),
            client as f64 / 1024.0,
            helper as f64 / 1024.0,
            if code == 0 { String::new() } else { format!("  (exit {code})") }
        );
    }
    let back = std::fs::metadata(&rollout).map_or(0.0, |m| m.len() as f64 / 1_048_576.0);
    println!("goal: under 64 MiB resident on both sides; back home: {back:.0} MiB in the same file");
    super::record(
        BIN,
        &format!("{size_mb:.0} MiB Codex rollout handed off (out / back)"),
        &format!("{:.2} s / {:.2} s", took_s[0], took_s[1]),
        "<= 2 s",
        took_s.iter().all(|s| *s <= 2.0),
    );
}

/// A rollout in Codex's paginated form: turns of a few lines, the working
/// directory in every turn's turn_context and thread settings.
fn write_large_rollout(path: &Path, id: &str, cwd: &Path, megabytes: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let cwd = cwd.display();
    writeln!(
        file,
        "{{\"timestamp\":\"2026-11-24T08:00:00.000Z\",\"ordinal\":0,\"type\":\"session_meta\",\"payload\":{{\"id\":\"{id}\",\
         \"timestamp\":\"2026-11-24T08:00:00.000Z\",\"cwd\":\"{cwd}\",\"runtime_workspace_roots\":[\"{cwd}\"],\"source\":\"exec\",\
         \"history_mode\":\"paginated\"}}}}"
    )
    .unwrap();
    let mut rng = Rng::new(7);
    let mut ordinal = 1u64;
    let big: String = "A".repeat(8 << 20);
    let mut written = emit(
        &mut file,
        &mut ordinal,
        format!("\"type\":\"response_item\",\"payload\":{{\"type\":\"image\",\"data\":\"{big}\"}}"),
    );
    while written < megabytes << 20 {
        if ordinal.is_multiple_of(40) {
            written += emit(
                &mut file,
                &mut ordinal,
                format!("\"type\":\"turn_context\",\"payload\":{{\"cwd\":\"{cwd}\",\"model\":\"m\"}}"),
            );
            written += emit(
                &mut file,
                &mut ordinal,
                format!("\"type\":\"event_msg\",\"payload\":{{\"type\":\"thread_settings_applied\",\"thread_settings\":{{\"cwd\":\"{cwd}\",\"runtime_workspace_roots\":[\"{cwd}\"]}}}}"),
            );
        }
        let text: String = rng.bytes(900, false).into_iter().map(char::from).filter(|c| *c != '\n').collect();
        written += emit(
            &mut file,
            &mut ordinal,
            format!("\"type\":\"response_item\",\"payload\":{{\"type\":\"message\",\"text\":\"{text}\"}}"),
        );
    }
}

/// One rollout line with the next ordinal; returns its length.
fn emit(file: &mut impl Write, ordinal: &mut u64, body: String) -> usize {
    let text = format!("{{\"timestamp\":\"2026-11-24T08:00:01.000Z\",\"ordinal\":{ordinal},{body}}}\n");
    file.write_all(text.as_bytes()).unwrap();
    *ordinal += 1;
    text.len()
}

/// Run the binary (directly, so its pid is the client's) and sample the
/// peak resident memory of it and of its helper child until it exits.
fn watch(env: &TestEnv, dir: &Path, args: &[&str]) -> (Duration, u64, u64, i32) {
    let mut client = env.command(BIN, dir);
    client.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    let started = Instant::now();
    let mut child = client.spawn().unwrap();
    let pid = child.id();
    let (mut client_peak, mut helper_peak) = (0u64, 0u64);
    while child.try_wait().unwrap().is_none() {
        client_peak = client_peak.max(vm_hwm_kib(pid));
        for helper in children(pid) {
            helper_peak = helper_peak.max(vm_hwm_kib(helper));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = started.elapsed();
    let code = child.wait().unwrap().code().unwrap_or(-1);
    (took, client_peak, helper_peak, code)
}

/// The high-water mark of a process's resident memory (KiB), 0 once it is gone.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The helper runs as a child of the client; git children are not ours to count.
fn children(pid: u32) -> Vec<u32> {
    let list = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    list.split_whitespace()
        .filter_map(|c| c.parse().ok())
        .filter(|c| std::fs::read_to_string(format!("/proc/{c}/cmdline")).is_ok_and(|cmd| cmd.contains("remote")))
        .collect()
}
