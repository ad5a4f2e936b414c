//! `--attach`: after the handoff the thread goes on where it arrived, in the
//! same terminal (the client runs in a pseudo-terminal here, as under a
//! person's fingers): `codex-handoff.attachCommand` runs once, in the
//! thread's new worktree there, with the thread's values as arguments that
//! no shell parses, over the handoff's own connection, and its exit status
//! is the command's.

use std::path::{Path, PathBuf};

use crate::codex::{write_rollout, SESSION};
use crate::handoff::{over_each, Via, World};
use crate::harness::{write, Run, BIN};
use crate::sshd::Sshd;

over_each!(attach_runs_the_thread_s_command_there_once, attach_on_the_way_back_runs_it_here);

/// The worktree a handoff reported ("Thread #N is now on devbox (epoch 1): <path> on <branch>").
fn reported_worktree_of(run: &Run, number: u32) -> PathBuf {
    let start = format!("Thread #{number} is now on");
    let line = run.stdout.lines().find(|l| l.starts_with(&start)).unwrap_or_else(|| panic!("{}", run.stdout));
    PathBuf::from(line.split_once("): ").unwrap().1.split(" on ").next().unwrap())
}

/// The lines the attached command printed with `printf '<%s>\n'`.
fn printed(run: &Run) -> Vec<String> {
    run.stdout.lines().filter(|l| l.starts_with('<') && l.ends_with('>')).map(str::to_owned).collect()
}

const PRINTING: &str = "pwd; printf '<%s>\\n' {thread} {codex_thread} {number} \"{title}\" '{branch}' {worktree} \
                        \"$CODEX_HANDOFF_THREAD\"; echo attached >> \"$HOME/attached.log\"; exit 7";

fn attach_runs_the_thread_s_command_there_once(via: Via) {
    let w = World::new(via);
    let env = &w.env;
    write_rollout(&env.home.join(".codex"), &w.laptop, 2);
    let marker = env.path("pwned");
    let title = format!("$(touch {m}) `touch {m}` '\"; touch {m}; echo \\", m = marker.display());
    let branch = "feat/$(touch${IFS}pwned);`id`|&\"q'";
    let thread = w
        .run(&["thread", "new", "--title", &title, "--branch", branch, "--codex-session", SESSION, "--json"])
        .success()
        .json();
    let uuid = thread["uuid"].as_str().unwrap().to_owned();
    write(&w.laptop, b"a.txt", b"edited before the handoff\n");
    env.git(&w.laptop, &["config", "--global", "codex-handoff.attachCommand", PRINTING]);
    let connections = w.connections();

    let run = env.run_in_terminal(&w.laptop, &["1", "devbox", "--yes", "--attach"]);
    assert_eq!(run.code, 7, "the attached command's exit status:\n{}", run.stdout);
    let worktree = reported_worktree_of(&run, 1);
    assert!(worktree.starts_with(&w.remote_home), "{}", worktree.display());
    assert_eq!(std::fs::read(worktree.join("a.txt")).unwrap(), b"edited before the handoff\n");
    // It ran there, in the new worktree, with the thread's values, exactly as they are.
    assert!(run.stdout.lines().any(|l| Path::new(l) == worktree), "pwd is not the worktree:\n{}", run.stdout);
    let expected: Vec<String> = [uuid.as_str(), SESSION, "1", &title, branch, worktree.to_str().unwrap(), &uuid]
        .iter()
        .map(|v| format!("<{v}>"))
        .collect();
    assert_eq!(printed(&run), expected, "{}", run.stdout);
    assert_eq!(std::fs::read_to_string(w.remote_home.join("attached.log")).unwrap(), "attached\n", "ran once");
    assert!(!marker.exists(), "a title was executed");
    for dir in [&w.laptop, &w.remote_clone, &w.remote_home, &worktree] {
        assert!(!dir.join("pwned").exists(), "a branch name was executed in {}", dir.display());
    }
    if let (Some(before), Some(sshd)) = (connections, &w.sshd) {
        assert_eq!(
            w.connections().unwrap(),
            before + 1,
            "one connection for the handoff and the session:\n{}",
            sshd.log()
        );
        sshd.assert_all_closed();
    }
    // The thread stays there, at rest once the command ended.
    let there = w.run_remote(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!((there["owner"].as_str(), there["status"].as_str()), (Some("local"), Some("idle")), "{there}");
    let here = w.run(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!(here["owner"], "devbox");

    // Attaching again to the thread where it is: a connection of its own, the same command, once more.
    let again = env.run_in_terminal(&w.laptop, &["1", "devbox", "--attach"]);
    assert_eq!(again.code, 7, "{}", again.stdout);
    assert_eq!(printed(&again), expected, "{}", again.stdout);
    assert_eq!(std::fs::read_to_string(w.remote_home.join("attached.log")).unwrap(), "attached\nattached\n");
}

fn attach_on_the_way_back_runs_it_here(via: Via) {
    let w = World::new(via);
    let env = &w.env;
    w.run(&["thread", "new", "--title", "Back home", "--branch", "feat/home"]).success();
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    write(&remote_wt, b"made-there.txt", b"on the host\n");
    env.git(
        &w.laptop,
        &["config", "--global", "codex-handoff.attachCommand", "pwd; printf '<%s>\\n' {title} {worktree}; exit 3"],
    );

    let run = env.run_in_terminal(&w.laptop, &["1", "local", "--yes", "--attach"]);
    assert_eq!(run.code, 3, "{}", run.stdout);
    let here = w.laptop.canonicalize().unwrap();
    assert!(run.stdout.lines().any(|l| Path::new(l) == here), "not run in the worktree here:\n{}", run.stdout);
    assert_eq!(printed(&run), ["<Back home>".to_owned(), format!("<{}>", here.display())]);
    assert_eq!(std::fs::read(w.laptop.join("made-there.txt")).unwrap(), b"on the host\n");
    assert_eq!(w.run(&["thread", "show", "1", "--json"]).success().json()["owner"], "local");
}

/// Without a terminal `--attach` is refused before anything happens; with a
/// thread that has no Codex thread, `{codex_thread}` is refused and nothing runs.
#[test]
fn attach_without_a_terminal_is_refused_and_changes_nothing() {
    let w = World::new(Via::Local);
    w.run(&["thread", "new", "--branch", "feat/tty"]).success();
    let before = w.everything();
    w.run(&["1", "devbox", "--yes", "--attach"]).fails_with(2, "--attach needs a terminal");
    w.run(&["1", "devbox", "--yes", "--attach", "--json"]).fails_with(2, "attach_needs_terminal");
    w.run(&["1", "devbox", "--dry-run", "--attach"]).fails_with(2, "cannot be used with");
    assert_eq!(w.everything(), before);

    w.env.git(
        &w.laptop,
        &["config", "--global", "codex-handoff.attachCommand", "echo ran >> \"$HOME/ran\"; echo {codex_thread}"],
    );
    let run = w.env.run_in_terminal(&w.laptop, &["1", "devbox", "--yes", "--attach"]);
    assert_eq!(run.code, 4, "{}", run.stdout);
    assert!(run.stdout.contains("has no Codex thread"), "{}", run.stdout);
    assert!(!w.remote_home.join("ran").exists());
}

/// With no attachCommand: a Codex thread goes on in `codex resume <id>`
/// (Codex found on the host's PATH), any other thread in the login shell.
#[test]
fn by_default_codex_resumes_the_thread_and_other_threads_get_the_login_shell() {
    let (env, laptop, remote_home, remote_clone) = World::fixture(|_, _| {});
    // Codex on the host records how it was started; the session's PATH has it first.
    let bin = env.path("host-bin");
    write(
        &bin,
        b"codex",
        b"#!/bin/sh\n{ pwd; printf '%s\\n' \"$@\" \"$CODEX_HANDOFF_THREAD\"; } > \"$HOME/codex-ran\"\nexit 5\n",
    );
    crate::harness::set_exec(&bin, b"codex", true);
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let sshd = Sshd::start_with_env(&env, &remote_home, &[("PATH", &path)]);
    env.set_var("GIT_SSH_COMMAND", &sshd.ssh_command());
    env.run(&laptop, &["host", "add", "devbox", "devbox", "--helper", BIN]).success();
    let w = World { env, laptop, remote_home, remote_clone, sshd: Some(sshd) };
    write_rollout(&w.env.home.join(".codex"), &w.laptop, 1);
    let thread = w.run(&["thread", "new", "--codex-session", SESSION, "--json"]).success().json();

    let run = w.env.run_in_terminal(&w.laptop, &["1", "devbox", "--yes", "--attach"]);
    assert_eq!(run.code, 5, "{}", run.stdout);
    let worktree = reported_worktree_of(&run, 1);
    assert!(run.stdout.contains(&format!("codex resume {SESSION}")), "{}", run.stdout);
    let ran = std::fs::read_to_string(w.remote_home.join("codex-ran")).unwrap();
    let expected = format!("{}\nresume\n{SESSION}\n{}\n", worktree.display(), thread["uuid"].as_str().unwrap());
    assert_eq!(ran, expected);

    // A thread without a Codex thread: the login shell, reading what is typed.
    w.run(&["thread", "new", "--title", "Plain", "--branch", "feat/plain"]).success();
    let keys = b"echo \"shell in $PWD\"; exit 4\n";
    let run = w.env.type_in_terminal(&w.laptop, &["2", "devbox", "--yes", "--attach"], keys);
    assert_eq!(run.code, 4, "{}", run.stdout);
    let worktree = reported_worktree_of(&run, 2);
    assert!(run.stdout.contains(&format!("shell in {}", worktree.display())), "{}", run.stdout);
}

/// A key restricted to handoffs gets the handoff, not a terminal session.
#[test]
fn a_restricted_key_gets_no_session() {
    let w = World::new(Via::Openssh);
    w.sshd.as_ref().unwrap().restrict_to(&format!("{BIN} remote serve --restricted"));
    w.run(&["thread", "new", "--branch", "feat/restricted"]).success();
    w.env.git(&w.laptop, &["config", "--global", "codex-handoff.attachCommand", "echo ran >> \"$HOME/ran\""]);
    let run = w.env.run_in_terminal(&w.laptop, &["1", "devbox", "--yes", "--attach"]);
    assert_eq!(run.code, 4, "{}", run.stdout);
    assert!(run.stdout.contains("allows handoffs only"), "{}", run.stdout);
    assert!(!w.remote_home.join("ran").exists());
    assert_eq!(w.run(&["thread", "show", "1", "--json"]).success().json()["owner"], "devbox");
}

/// The attached command is the thread's agent there: bringing the thread
/// back from another terminal interrupts it (SIGINT), then moves the thread.
#[test]
fn a_hand_back_from_elsewhere_interrupts_the_attached_command() {
    let w = World::new(Via::Openssh);
    w.run(&["thread", "new", "--branch", "feat/busy"]).success();
    w.env.git(&w.laptop, &["config", "--global", "codex-handoff.attachCommand", "echo working; sleep 60"]);
    let attached = std::thread::scope(|scope| {
        let mut command = w.env.command("git", &w.laptop);
        command.args(["codex-handoff", "1", "devbox", "--yes", "--attach"]);
        let session = scope.spawn(move || crate::harness::run_in_terminal(command, b""));
        let started = std::time::Instant::now();
        while w.run_remote(&["thread", "show", "1", "--json"]).json()["status"] != "running" {
            assert!(started.elapsed().as_secs() < 30, "the attached command never ran");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let back = w.run(&["1", "local", "--yes", "--json"]).success().json();
        assert_eq!(back["host"], "local");
        assert!(started.elapsed().as_secs() < 30, "the attached command was not interrupted");
        session.join().unwrap()
    });
    assert_eq!(attached.code, 130, "ended by SIGINT:\n{}", attached.stdout);
    assert!(attached.stdout.contains("working"), "{}", attached.stdout);
    assert_eq!(w.run(&["thread", "show", "1", "--json"]).success().json()["owner"], "local");
}
