//! `thread run` and handoffs of running threads: the command is recorded
//! while it runs, interrupted (SIGINT, then SIGTERM) before a transfer, and
//! its last words and file writes travel with the thread.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::handoff::{Via, World};
use crate::harness::TestEnv;

/// `git codex-handoff thread run <thread> -- sh -c <script>` in the background.
fn run_in_background(env: &TestEnv, home: &Path, dir: &Path, thread: &str, script: &str) -> Child {
    let mut cmd = env.command_with_home("git", dir, home);
    cmd.args(["codex-handoff", "thread", "run", thread, "--", "sh", "-c", script]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    cmd.spawn().unwrap()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status(env: &TestEnv, home: &Path, dir: &Path) -> String {
    let shown = env.run_as(home, dir, &["thread", "show", "1", "--json"]).success().json();
    shown["status"].as_str().unwrap().to_owned()
}

fn record_dir(repo: &Path) -> PathBuf {
    repo.join(".git/codex-handoff/running")
}

fn record_field(repo: &Path, field: &str) -> i32 {
    let dir = record_dir(repo);
    let file = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    record[field].as_i64().unwrap() as i32
}

fn record_pid(repo: &Path) -> i32 {
    record_field(repo, "pid")
}

/// Signal one process of this test (never a group, never a guessed pid).
fn kill(pid: i32, signal: &str) {
    assert!(pid > 1, "refusing to signal pid {pid}");
    std::process::Command::new("kill").args([signal, "--", &pid.to_string()]).status().unwrap();
}

/// Stop an agent and the children of its shell.
fn kill_agent(pid: i32) {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    kill(pid, "-KILL");
    for child in children.split_whitespace().filter_map(|c| c.parse::<i32>().ok()) {
        kill(child, "-KILL");
    }
}

fn new_repo(env: &TestEnv) -> PathBuf {
    let repo = env.committed_repo("repo");
    env.run(&repo, &["thread", "new", "--title", "runner"]).success();
    repo
}

#[test]
fn thread_run_reports_running_passes_the_exit_code_and_cleans_up() {
    let env = TestEnv::new();
    let repo = new_repo(&env);
    let script = "echo \"$CODEX_HANDOFF_THREAD\" > thread-id.txt; sleep 1; exit 7";
    let mut child = run_in_background(&env, &env.home, &repo, "1", script);
    wait_until("the thread shows as running", || status(&env, &env.home, &repo) == "running");
    let list = env.run(&repo, &["thread", "list", "--json"]).success().json();
    assert_eq!(list["threads"][0]["status"], "running");
    assert_eq!(child.wait().unwrap().code(), Some(7), "the command's exit code is passed on");
    assert_eq!(status(&env, &env.home, &repo), "idle");
    assert_eq!(std::fs::read_dir(record_dir(&repo)).unwrap().count(), 0, "the record is cleared");
    let uuid = env.run(&repo, &["thread", "show", "1", "--json"]).success().json()["uuid"].as_str().unwrap().to_owned();
    assert_eq!(std::fs::read_to_string(repo.join("thread-id.txt")).unwrap().trim(), uuid);
    // A second run while one is going is refused.
    let mut first = run_in_background(&env, &env.home, &repo, "1", "sleep 30");
    wait_until("running", || status(&env, &env.home, &repo) == "running");
    env.run(&repo, &["thread", "run", "1", "--", "true"]).fails_with(4, "already running");
    kill_agent(record_pid(&repo));
    first.wait().unwrap();
}

#[test]
fn a_killed_command_and_a_signalled_runner_are_cleaned_up() {
    let env = TestEnv::new();
    let repo = new_repo(&env);
    // The command itself is killed.
    let mut child = run_in_background(&env, &env.home, &repo, "1", "sleep 30");
    wait_until("running", || status(&env, &env.home, &repo) == "running");
    kill(record_pid(&repo), "-KILL");
    assert_eq!(child.wait().unwrap().code(), Some(128 + 9));
    assert_eq!(status(&env, &env.home, &repo), "idle");
    assert_eq!(std::fs::read_dir(record_dir(&repo)).unwrap().count(), 0);
    // SIGTERM to the runner (`thread run` itself, below git) reaches the command.
    let mut child = run_in_background(&env, &env.home, &repo, "1", "exec sleep 30");
    wait_until("running", || status(&env, &env.home, &repo) == "running");
    kill(record_field(&repo, "runner_pid"), "-TERM");
    assert_eq!(child.wait().unwrap().code(), Some(128 + 15));
    assert_eq!(status(&env, &env.home, &repo), "idle");
}

/// Traps SIGINT: writes a last line to the worktree and the transcript, then stops.
const POLITE_AGENT: &str = "trap 'echo \"last words\" >> last.txt; \
    echo \"{\\\"type\\\":\\\"event\\\",\\\"text\\\":\\\"interrupted\\\"}\" >> \"$CODEX_HANDOFF_TRANSCRIPT\"; exit 130' INT; \
    echo started > started.txt; while :; do sleep 0.1; done";

fn interrupt_then_transfer(via: Via) {
    let w = World::new(via);
    w.run(&["thread", "new", "--branch", "feat/busy"]).success();
    let mut agent = run_in_background(&w.env, &w.env.home, &w.laptop, "1", POLITE_AGENT);
    wait_until("the agent started", || w.laptop.join("started.txt").exists());
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    assert_eq!(agent.wait().unwrap().code(), Some(130), "the agent was interrupted");
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_eq!(std::fs::read_to_string(remote_wt.join("last.txt")).unwrap(), "last words\n");
    let uuid = out["uuid"].as_str().unwrap();
    let transcript = w.remote_clone.join(".git/codex-handoff/transcripts").join(uuid);
    assert!(std::fs::read_to_string(&transcript).unwrap().contains("interrupted"), "the last words arrived");

    // And back: the helper interrupts the command running on the host.
    std::fs::remove_file(remote_wt.join("started.txt")).unwrap();
    let mut remote_agent = run_in_background(
        &w.env,
        &w.remote_home,
        &remote_wt,
        "1",
        POLITE_AGENT.replace("last words", "last words on the host").as_str(),
    );
    wait_until("the host's agent started", || remote_wt.join("started.txt").exists());
    w.run(&["1", "local"]).success();
    assert_eq!(remote_agent.wait().unwrap().code(), Some(130));
    assert_eq!(std::fs::read_to_string(w.laptop.join("last.txt")).unwrap(), "last words\nlast words on the host\n");
    let local_transcript = w.laptop.join(".git/codex-handoff/transcripts").join(uuid);
    assert_eq!(std::fs::read_to_string(local_transcript).unwrap().matches("interrupted").count(), 2);
}

crate::handoff::over_each!(interrupt_then_transfer);

#[test]
fn a_command_that_ignores_interrupts_is_refused_and_nothing_changes() {
    let w = World::new(Via::Local);
    w.run(&["thread", "new", "--branch", "feat/stubborn"]).success();
    let mut agent = run_in_background(
        &w.env,
        &w.env.home,
        &w.laptop,
        "1",
        "trap '' INT TERM; echo started > started.txt; while :; do sleep 0.1; done",
    );
    wait_until("the agent started", || w.laptop.join("started.txt").exists());
    let before = w.everything();
    w.run(&["1", "devbox", "--interrupt-timeout", "1"]).fails_with(4, "did not stop within 1 s of SIGINT");
    assert_eq!(w.everything(), before);
    // The timeout may come from git config; the flag wins over it.
    w.env.git(&w.laptop, &["config", "codex-handoff.interruptTimeout", "0.5"]);
    w.run(&["1", "devbox"]).fails_with(2, "is not a number of seconds");
    w.env.git(&w.laptop, &["config", "codex-handoff.interruptTimeout", "0"]);
    w.run(&["1", "devbox"]).fails_with(4, "within 0 s of SIGINT");
    w.run(&["1", "devbox", "--interrupt-timeout", "1"]).fails_with(4, "within 1 s of SIGINT");
    w.env.git(&w.laptop, &["config", "--unset", "codex-handoff.interruptTimeout"]);
    assert_eq!(w.everything(), before);
    assert_eq!(status(&w.env, &w.env.home, &w.laptop), "running", "still running, untouched");
    // --no-interrupt refuses at once.
    w.run(&["1", "devbox", "--no-interrupt"]).fails_with(4, "--no-interrupt");
    assert_eq!(w.everything(), before);
    kill_agent(record_pid(&w.laptop));
    agent.wait().unwrap();
}
