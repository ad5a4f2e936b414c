//! Every failure has a way home: a handoff refused or cut short at a step
//! after the other machine changed something — a ref update a
//! `reference-transaction` hook refuses, a link that freezes or drops, a
//! killed session, a full disk — ends with a message that says where the
//! thread is and that running the same command again is safe; and the
//! next run finishes. Afterwards one owner, recorded alike on both
//! machines, and nothing of the stopped run left on either.

use std::path::{Path, PathBuf};

use crate::handoff::{every_kind_of_change, Via, World};
use crate::harness::{write, Run};

/// A `reference-transaction` hook that refuses every ref update.
const REFUSING_HOOK: &[u8] =
    b"#!/bin/sh\n[ \"$1\" = prepared ] && { echo 'refs are frozen here' >&2; exit 1; }\nexit 0\n";

fn install_hook(repo: &Path, name: &str, script: &[u8]) -> PathBuf {
    let hooks = repo.join(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let path = hooks.join(name);
    std::fs::write(&path, script).unwrap();
    crate::harness::set_exec(&hooks, name.as_bytes(), true);
    path
}

/// Both machines record `owner` at `epoch` with the same snapshot; returns
/// the host's record of the thread's worktree there.
pub fn one_owner(w: &World, n: &str, owner: &str, epoch: u64, what: &str) -> Option<PathBuf> {
    let here = w.run(&["thread", "show", n, "--json"]).success().json();
    let there = w.run_remote(&["thread", "show", here["uuid"].as_str().unwrap(), "--json"]).success().json();
    let (here_owner, there_owner) = if owner == "local" { ("local", "laptop") } else { ("devbox", "local") };
    assert_eq!(here["owner"], here_owner, "{what}: owner here");
    assert_eq!(there["owner"], there_owner, "{what}: owner there");
    assert_eq!(here["epoch"], epoch, "{what}: epoch here");
    assert_eq!(there["epoch"], epoch, "{what}: epoch there");
    assert_eq!(here["snapshot"], there["snapshot"], "{what}: both record the same snapshot");
    let record = w.remote_clone.join(".git/codex-handoff/worktrees").join(here["uuid"].as_str().unwrap());
    std::fs::read_to_string(record).ok().map(|text| PathBuf::from(text.lines().next().unwrap()))
}

/// No marker, git lock file, half-built worktree, leftover ref or temporary
/// file of a stopped handoff on either machine.
pub fn nothing_left_over(w: &World, what: &str) {
    for (home, repo) in [(&w.env.home, &w.laptop), (&w.remote_home, &w.remote_clone)] {
        let private = repo.join(".git/codex-handoff");
        for dir in ["pending", "incoming"] {
            let left: Vec<_> = std::fs::read_dir(private.join(dir)).into_iter().flatten().flatten().collect();
            assert!(left.is_empty(), "{what}: left in {}/{dir}: {left:?}", private.display());
        }
        let mut locks = Vec::new();
        find(&repo.join(".git"), &mut |p| p.extension().is_some_and(|e| e == "lock"), &mut locks);
        assert!(locks.is_empty(), "{what}: lock files left: {locks:?}");
        let refs = w.env.git_as(
            home,
            repo,
            &[
                "for-each-ref",
                "refs/codex-handoff/incoming",
                "refs/codex-handoff/staged",
                "refs/codex-handoff/outgoing",
            ],
        );
        assert!(refs.is_empty(), "{what}: refs of a stopped handoff left in {}: {refs}", repo.display());
        let list = w.env.git_as(home, repo, &["worktree", "list", "--porcelain"]);
        assert!(!list.contains("prunable") && !list.contains("\nlocked"), "{what}: {list}");
        let root = home.join(".codex/worktrees");
        for dir in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for wt in std::fs::read_dir(dir.path()).unwrap().flatten() {
                let path = wt.path();
                assert!(list.contains(&format!("worktree {}\n", path.display())), "{what}: half-built {path:?}");
            }
        }
    }
}

fn find(dir: &Path, keep: &mut dyn FnMut(&Path) -> bool, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            find(&path, keep, out);
        } else if keep(&path) {
            out.push(path);
        }
    }
}

/// The failed run's message says where the thread is and that a rerun is safe.
#[track_caller]
fn says_where_and_rerun(out: &Run, code: i32, thread_is: &str) {
    assert_eq!(out.code, code, "exit code\nstderr: {}", out.stderr);
    assert!(out.stderr.contains(thread_is), "expected {thread_is:?} in\n{}", out.stderr);
    assert!(out.stderr.contains("run the same command again"), "the help says to rerun:\n{}", out.stderr);
}

/// The thread on devbox with work of its own there; returns its worktree there.
fn thread_on_devbox(w: &World) -> PathBuf {
    w.run(&["thread", "new", "--title", "refused", "--branch", "feat/refused"]).success();
    every_kind_of_change(&w.env, &w.laptop);
    let out = w.run(&["1", "devbox", "--yes", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    w.git_remote(&remote_wt, &["add", "-A"]);
    w.git_remote(&remote_wt, &["commit", "-q", "-m", "work on the host"]);
    write(&remote_wt, b"a.txt", b"edited on the host\n");
    write(&remote_wt, b"host-untracked.txt", b"untracked on the host\n");
    remote_wt
}

/// A hand-back refused by this computer's `reference-transaction` hook
/// changes nothing here, says the thread is still on devbox, and once the
/// hook is gone the same command brings it home.
#[test]
fn a_hand_back_refused_by_a_hook_here_finishes_on_the_rerun() {
    let w = World::new(Via::Openssh);
    let remote_wt = thread_on_devbox(&w);
    let state = w.env.carried_facts(&remote_wt);
    let here = w.env.facts(&w.laptop);
    let hook = install_hook(&w.laptop, "reference-transaction", REFUSING_HOOK);

    let refused = w.run(&["1", "local", "--yes"]);
    says_where_and_rerun(&refused, 1, "the thread is still on devbox");
    assert!(refused.stderr.contains("refs are frozen here"), "the hook's words are shown:\n{}", refused.stderr);
    assert_eq!(w.env.facts(&w.laptop), here, "the worktree here is as the thread left it");
    one_owner(&w, "1", "devbox", 1, "after the refusal");

    std::fs::remove_file(hook).unwrap();
    let rerun = w.run(&["1", "local", "--yes", "--json"]);
    assert_eq!(rerun.code, 0, "the rerun finishes\n{}{}", rerun.stdout, rerun.stderr);
    assert_eq!(PathBuf::from(rerun.json()["worktree"].as_str().unwrap()), w.laptop);
    assert_eq!(w.env.carried_facts(&w.laptop), state, "this computer holds exactly the host's state");
    one_owner(&w, "1", "local", 2, "after the rerun");
    nothing_left_over(&w, "after the rerun");
}

/// A handoff refused by the host's `reference-transaction` hook as the
/// thread returns to its worktree there changes nothing there, says the
/// thread is still here, and once the hook is gone the same command
/// finishes it.
#[test]
fn a_handoff_refused_by_a_hook_on_the_host_finishes_on_the_rerun() {
    let w = World::new(Via::Openssh);
    let remote_wt = thread_on_devbox(&w);
    w.run(&["1", "local", "--yes"]).success();
    // Back here, with more work: it goes out again, into its worktree there.
    write(&w.laptop, b"second-trip.txt", b"made here between the trips\n");
    let state = w.env.carried_facts(&w.laptop);
    let there = w.env.facts(&remote_wt);
    let hook = install_hook(&w.remote_clone, "reference-transaction", REFUSING_HOOK);

    let refused = w.run(&["1", "devbox", "--yes"]);
    says_where_and_rerun(&refused, 1, "the thread is still here");
    assert!(refused.stderr.contains("refs are frozen here"), "the hook's words are shown:\n{}", refused.stderr);
    assert_eq!(w.env.facts(&remote_wt), there, "the worktree there is as the thread left it");
    one_owner(&w, "1", "local", 2, "after the refusal");

    std::fs::remove_file(hook).unwrap();
    let rerun = w.run(&["1", "devbox", "--yes", "--json"]);
    assert_eq!(rerun.code, 0, "the rerun finishes\n{}{}", rerun.stdout, rerun.stderr);
    assert_eq!(PathBuf::from(rerun.json()["owner_worktree"].as_str().unwrap()), remote_wt);
    assert_eq!(w.env.carried_facts(&remote_wt), state, "the host holds exactly the thread's state");
    one_owner(&w, "1", "devbox", 3, "after the rerun");
    nothing_left_over(&w, "after the rerun");
}

/// A file of `size` random (incompressible) bytes at `rel` in `dir`.
fn random_file(dir: &Path, rel: &str, size: usize) {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(size);
    std::fs::File::open("/dev/urandom").unwrap().take(size as u64).read_to_end(&mut bytes).unwrap();
    write(dir, rel.as_bytes(), &bytes);
}

/// How long this machine's handoffs wait on a silent connection.
fn set_io_timeout(w: &World, seconds: &str) {
    w.env.git(&w.laptop, &["config", "--global", "codex-handoff.ioTimeout", seconds]);
}

/// A new thread here with every kind of change and a large untracked file,
/// so that pushing it takes many writes; returns its state.
fn thread_with_a_large_file(w: &World, size: usize) -> crate::harness::WorktreeFacts {
    w.run(&["thread", "new", "--title", "cut", "--branch", "feat/cut"]).success();
    every_kind_of_change(&w.env, &w.laptop);
    random_file(&w.laptop, "assets/large.bin", size);
    w.env.carried_facts(&w.laptop)
}

/// The thread is here at `epoch` and the host has nothing of it: no
/// record, no worktree.
fn still_only_here(w: &World, epoch: u64, what: &str) {
    let here = w.run(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!((here["owner"].as_str(), here["epoch"].as_u64()), (Some("local"), Some(epoch)), "{what}");
    w.run_remote(&["thread", "show", here["uuid"].as_str().unwrap()]).fails_with(3, "");
    let worktrees = w.remote_home.join(".codex/worktrees");
    let made: Vec<_> = std::fs::read_dir(&worktrees).into_iter().flatten().flatten().collect();
    assert!(made.iter().all(|d| std::fs::read_dir(d.path()).unwrap().next().is_none()), "{what}: {made:?}");
}

/// The rerun finishes the handoff: the host holds exactly `state`, one
/// owner, nothing left over.
fn rerun_to_devbox_finishes(w: &World, state: &crate::harness::WorktreeFacts, what: &str) {
    let rerun = w.run(&["1", "devbox", "--yes", "--json"]);
    assert_eq!(rerun.code, 0, "{what}: the rerun finishes\n{}{}", rerun.stdout, rerun.stderr);
    let remote_wt = one_owner(w, "1", "devbox", 1, what).unwrap();
    assert_eq!(PathBuf::from(rerun.json()["owner_worktree"].as_str().unwrap()), remote_wt, "{what}");
    assert_eq!(&w.env.carried_facts(&remote_wt), state, "{what}: the host holds exactly the thread's state");
    nothing_left_over(w, what);
}

/// The link freezes in the middle of the push: the handoff ends within
/// `ioTimeout` with exit 5, naming the step and where the thread is; the
/// host's helper, whose stream stopped, ends its session (and lets go of
/// the thread's lock) by itself; the rerun finishes.
fn a_frozen_link_ends_within_the_timeout(via: Via) {
    let w = World::new(via);
    let relay = crate::link_relay::route_through(&w);
    set_io_timeout(&w, "2");
    let state = thread_with_a_large_file(&w, 8 << 20);
    let source = w.env.facts(&w.laptop);
    // Far more than the session says before the push, far less than the push.
    relay.freeze_after(512 << 10);

    let started = std::time::Instant::now();
    let cut = w.run(&["1", "devbox", "--yes"]);
    let took = started.elapsed();
    assert!(relay.wait_frozen(std::time::Duration::ZERO), "the link froze: {:?} {}", relay.report(), cut.stderr);
    says_where_and_rerun_after_loss(&cut, "the thread is still here");
    assert!(
        cut.stderr.contains("lost the connection to devbox during the push (no answer for 2 s)"),
        "the step and the limit:\n{}",
        cut.stderr
    );
    assert!(took < std::time::Duration::from_secs(15), "ended in {took:?}");
    assert_eq!(w.env.facts(&w.laptop), source, "the worktree here is untouched");
    still_only_here(&w, 0, "after the cut");

    // The frozen connection stays frozen; the rerun makes a new one.
    rerun_to_devbox_finishes(&w, &state, "after the cut");
    assert_eq!(relay.connections(), 2);
}

/// The exit and words of a run that lost its connection.
#[track_caller]
fn says_where_and_rerun_after_loss(out: &Run, thread_is: &str) {
    assert_eq!(out.code, 5, "exit code\nstderr: {}", out.stderr);
    assert!(out.stderr.contains(thread_is), "expected {thread_is:?} in\n{}", out.stderr);
    assert!(out.stderr.contains("rerun the same command to finish"), "{}", out.stderr);
    assert!(!out.stderr.contains("an I/O operation failed"), "no bare I/O error:\n{}", out.stderr);
}

#[test]
fn a_frozen_link_ends_within_the_timeout_over_openssh() {
    a_frozen_link_ends_within_the_timeout(Via::Openssh)
}

#[cfg(feature = "ssh2")]
#[test]
fn a_frozen_link_ends_within_the_timeout_over_ssh2() {
    a_frozen_link_ends_within_the_timeout(Via::Ssh2)
}

/// The sshd session serving the handoff is killed while it pushes: exit 5
/// at once (no timeout waited out), the step and where the thread is; the
/// rerun finishes.
fn a_killed_session_is_a_lost_connection(via: Via) {
    let w = World::new(via);
    let relay = crate::link_relay::route_through(&w);
    // Long enough that only the kill can end it quickly.
    set_io_timeout(&w, "60");
    let state = thread_with_a_large_file(&w, 8 << 20);
    relay.freeze_after(512 << 10);

    let mut cmd = w.env.command("git", &w.laptop);
    cmd.args(["codex-handoff", "1", "devbox", "--yes"]).stdout(std::process::Stdio::piped());
    let child = cmd.stderr(std::process::Stdio::piped()).spawn().unwrap();
    assert!(relay.wait_frozen(std::time::Duration::from_secs(60)), "the push started");
    let killed = std::time::Instant::now();
    w.sshd.as_ref().unwrap().kill_sessions();
    relay.thaw();
    let out = Run::from(child.wait_with_output().unwrap());
    assert!(killed.elapsed() < std::time::Duration::from_secs(20), "ended {:?} after the kill", killed.elapsed());
    says_where_and_rerun_after_loss(&out, "the thread is still here");
    assert!(out.stderr.contains("lost the connection to devbox during the push"), "{}", out.stderr);
    still_only_here(&w, 0, "after the kill");
    rerun_to_devbox_finishes(&w, &state, "after the kill");
}

#[test]
fn a_killed_session_is_a_lost_connection_over_openssh() {
    a_killed_session_is_a_lost_connection(Via::Openssh)
}

#[cfg(feature = "ssh2")]
#[test]
fn a_killed_session_is_a_lost_connection_over_ssh2() {
    a_killed_session_is_a_lost_connection(Via::Ssh2)
}

/// A slow but live link and a helper that works long without a word on
/// its answer stream: neither is taken for a dead one. The push trickles
/// through for several times `ioTimeout`; the restore there waits on a
/// slow hook for three times it.
#[test]
fn a_slow_link_and_a_slow_host_are_not_a_dead_one() {
    let w = World::new(Via::Openssh);
    let relay = crate::link_relay::route_through(&w);
    set_io_timeout(&w, "1");
    let state = thread_with_a_large_file(&w, 2 << 20);
    // The host's ref updates take 3 s each time they are committed.
    install_hook(&w.remote_clone, "reference-transaction", b"#!/bin/sh\n[ \"$1\" = committed ] && sleep 3\nexit 0\n");
    relay.throttle(512 << 10);
    let started = std::time::Instant::now();
    let out = w.run(&["1", "devbox", "--yes", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(started.elapsed() > std::time::Duration::from_secs(5), "it was slow: {:?}", started.elapsed());
    let remote_wt = one_owner(&w, "1", "devbox", 1, "slow").unwrap();
    assert_eq!(w.env.carried_facts(&remote_wt), state);
}

/// A small tmpfs mounted for a test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (with the reason) where this machine cannot mount one.
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs(dir.to_owned()))
    }

    fn resize(&self, size: &str) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(out.status.success(), "remount: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The host's worktree root is a small file system: the handoff is rolled
/// back there and says which machine has no space on which file system and
/// about how much it needs; with room made, the same command finishes.
#[test]
fn a_full_disk_on_the_host_is_named_and_the_rerun_finishes() {
    let w = World::new(Via::Openssh);
    let root = w.env.path("host-worktrees");
    let tmpfs = match Tmpfs::mount(&root, "2m") {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            eprintln!("skipped: cannot mount a tmpfs as the host's worktree root here ({why})");
            return;
        }
    };
    w.env.git_as(
        &w.remote_home,
        &w.remote_home,
        &["config", "--global", "codex-handoff.worktreeRoot", root.to_str().unwrap()],
    );
    let state = thread_with_a_large_file(&w, 4 << 20);
    let source = w.env.facts(&w.laptop);

    let full = w.run(&["1", "devbox", "--yes"]);
    says_where_and_rerun(&full, 1, "the thread is still here");
    let expected = format!("devbox has no space left on {} (this handoff needs about 5 MiB)", root.display());
    assert!(full.stderr.contains(&expected), "expected {expected:?} in\n{}", full.stderr);
    assert_eq!(w.env.facts(&w.laptop), source, "the worktree here is untouched");
    still_only_here(&w, 0, "after the full disk");
    let left = crate::harness::files(&root);
    assert!(left.values().all(|f| matches!(f, crate::harness::FileFact::Dir)), "rolled back there: {left:?}");

    tmpfs.resize("64m");
    rerun_to_devbox_finishes(&w, &state, "with room made");
    let remote_wt = one_owner(&w, "1", "devbox", 1, "with room made").unwrap();
    assert!(remote_wt.starts_with(&root), "{}", remote_wt.display());
}

/// A second computer that fetched the thread's refs may not take or bring
/// back a thread it did not send: a refusal (exit 4) that says how to see
/// where the thread is.
#[test]
fn a_second_computer_is_refused_with_exit_4() {
    let w = World::new(Via::Local);
    w.run(&["thread", "new", "--title", "elsewhere", "--branch", "feat/elsewhere"]).success();
    w.run(&["1", "devbox", "--yes"]).success();
    let home2 = crate::harness::make_home(&w.env.path("second-home"), "second");
    let second = w.env.path("second");
    let laptop = w.laptop.to_str().unwrap();
    w.env.git_as(&home2, w.env.root.path(), &["clone", "-q", laptop, second.to_str().unwrap()]);
    w.env.git_as(
        &home2,
        &second,
        &[
            "fetch",
            "-q",
            laptop,
            "+refs/codex-handoff/threads/*:refs/codex-handoff/threads/*",
            "+refs/notes/codex-handoff:refs/notes/codex-handoff",
        ],
    );
    let remote_home = w.remote_home.to_str().unwrap();
    w.env.run_as(&home2, &second, &["host", "add", "devbox", remote_home, "--transport", "local"]).success();
    let before = w.everything();
    for destination in ["local", "devbox"] {
        let out = w.env.run_as(&home2, &second, &["1", destination, "--yes"]);
        out.fails_with(4, "which this computer did not send it to");
        assert!(out.stderr.contains("git codex-handoff thread show 1"), "the help says how to look:\n{}", out.stderr);
        assert_eq!(w.everything(), before, "{destination}: nothing changed");
    }
}

/// `thread run` started with SIGINT and SIGQUIT ignored (a background job,
/// nohup) starts the agent with both at their defaults: a handoff's
/// interrupt reaches a shell agent's trap, which ends its turn (130) long
/// before the interrupt timeout would escalate to SIGTERM.
#[test]
fn an_agent_gets_sigint_even_when_the_runner_ignores_it() {
    let w = World::new(Via::Local);
    w.run(&["thread", "new", "--title", "runner"]).success();
    let agent = "grep SigIgn /proc/$$/status > sigign.txt; trap 'echo interrupted > last.txt; exit 130' INT; \
                 echo started > started.txt; while :; do sleep 0.1; done";
    let mut cmd = w.env.command("sh", &w.laptop);
    cmd.args(["-c", "trap '' INT QUIT; exec git codex-handoff thread run 1 -- sh -c \"$0\"", agent]);
    let mut runner = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !w.laptop.join("started.txt").exists() {
        assert!(std::time::Instant::now() < deadline, "the agent did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let ignored = std::fs::read_to_string(w.laptop.join("sigign.txt")).unwrap();
    let mask = u64::from_str_radix(ignored.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(mask & ((1 << (libc::SIGINT - 1)) | (1 << (libc::SIGQUIT - 1))), 0, "ignored: {ignored}");

    let started = std::time::Instant::now();
    w.run(&["1", "devbox", "--yes", "--interrupt-timeout", "30"]).success();
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "no wait for the timeout: {:?}", started.elapsed());
    assert_eq!(runner.wait().unwrap().code(), Some(130), "the agent finished its turn on SIGINT");
    assert_eq!(std::fs::read_to_string(w.laptop.join("last.txt")).unwrap(), "interrupted\n");
}

/// The same on this computer: a hand-back into a new worktree on a full
/// file system is rolled back here, names this computer's file system,
/// and finishes once there is room.
#[test]
fn a_full_disk_here_is_named_and_the_rerun_finishes() {
    let w = World::new(Via::Openssh);
    let root = w.env.path("laptop-worktrees");
    let tmpfs = match Tmpfs::mount(&root, "2m") {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            eprintln!("skipped: cannot mount a tmpfs as this computer's worktree root here ({why})");
            return;
        }
    };
    w.env.git(&w.laptop, &["config", "--global", "codex-handoff.worktreeRoot", root.to_str().unwrap()]);
    let state = thread_with_a_large_file(&w, 4 << 20);
    let remote_wt =
        PathBuf::from(w.run(&["1", "devbox", "--yes", "--json"]).success().json()["owner_worktree"].as_str().unwrap());
    // A change here the thread did not make: it comes back into a new worktree, on a new branch.
    write(&w.laptop, b"not-the-threads.txt", b"made here meanwhile\n");
    let here = w.env.facts(&w.laptop);

    let full = w.run(&["1", "local", "--yes", "--branch", "feat/back"]);
    says_where_and_rerun(&full, 1, "the thread is still on devbox");
    let expected = format!("this computer has no space left on {}", root.display());
    assert!(full.stderr.contains(&expected), "expected {expected:?} in\n{}", full.stderr);
    assert_eq!(w.env.facts(&w.laptop), here, "the worktree here is untouched");
    one_owner(&w, "1", "devbox", 1, "after the full disk");
    assert_eq!(w.env.carried_facts(&remote_wt), state, "the host's worktree is untouched");
    let left = crate::harness::files(&root);
    assert!(left.values().all(|f| matches!(f, crate::harness::FileFact::Dir)), "rolled back here: {left:?}");

    tmpfs.resize("64m");
    let rerun = w.run(&["1", "local", "--yes", "--branch", "feat/back", "--json"]);
    assert_eq!(rerun.code, 0, "the rerun finishes\n{}{}", rerun.stdout, rerun.stderr);
    let arrived = PathBuf::from(rerun.json()["worktree"].as_str().unwrap());
    assert!(arrived.starts_with(&root), "{}", arrived.display());
    assert_eq!(w.env.carried_facts(&arrived), state);
    one_owner(&w, "1", "local", 2, "with room made");
    nothing_left_over(&w, "with room made");
}

/// Every hook git may run, logging its name (and first argument) to
/// `log`; `pre-receive` refuses every push.
fn logging_hooks(repo: &Path, log: &Path) {
    for name in [
        "pre-receive",
        "update",
        "post-receive",
        "post-update",
        "push-to-checkout",
        "reference-transaction",
        "post-checkout",
        "post-index-change",
        "pre-commit",
        "post-commit",
        "pre-push",
        "post-rewrite",
    ] {
        let refuse = if name == "pre-receive" { "exit 1" } else { "exit 0" };
        let script =
            format!("#!/bin/sh\necho \"{name} $1\" >> '{}'\ncat >/dev/null 2>&1 </dev/null\n{refuse}\n", log.display());
        install_hook(repo, name, script.as_bytes());
    }
}

fn hooks_run(log: &Path) -> std::collections::BTreeSet<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().map(|l| l.split(' ').next().unwrap().to_owned()).collect()
}

/// What the README and the man page say about hooks during a handoff:
/// on the host, `pre-receive`, `update` and `post-receive` never run (the
/// helper writes the repository as its own user, like `git fetch`), so a
/// `pre-receive` that refuses every push does not stop a handoff; the
/// `reference-transaction` hook runs for the refs git itself updates, on
/// both machines.
#[test]
fn receive_hooks_do_not_run_and_reference_transaction_does() {
    let w = World::new(Via::Openssh);
    let (host_log, here_log) = (w.env.path("host-hooks.log"), w.env.path("here-hooks.log"));
    logging_hooks(&w.remote_clone, &host_log);
    // A plain push to that clone is refused by its pre-receive.
    let url = format!("devbox:{}", w.remote_clone.display());
    let pushed = w.env.git_with_env(&w.laptop, &["push", &url, "HEAD:refs/heads/pushed"], &[]);
    assert!(!pushed.status.success(), "pre-receive refuses a push");
    assert_eq!(hooks_run(&host_log).into_iter().collect::<Vec<_>>(), ["pre-receive"]);
    std::fs::remove_file(&host_log).unwrap();

    w.run(&["thread", "new", "--title", "hooks", "--branch", "feat/hooks"]).success();
    every_kind_of_change(&w.env, &w.laptop);
    logging_hooks(&w.laptop, &here_log);
    w.run(&["1", "devbox", "--yes"]).success();
    w.run(&["1", "local", "--yes"]).success();
    let (there, here) = (hooks_run(&host_log), hooks_run(&here_log));
    for receive in ["pre-receive", "update", "post-receive", "post-update", "push-to-checkout"] {
        assert!(!there.contains(receive) && !here.contains(receive), "{receive} ran: {there:?} {here:?}");
    }
    for commit in ["pre-commit", "post-commit", "pre-push", "post-rewrite", "post-checkout"] {
        assert!(!there.contains(commit) && !here.contains(commit), "{commit} ran: {there:?} {here:?}");
    }
    assert!(there.contains("reference-transaction"), "on the host: {there:?}");
    assert!(here.contains("reference-transaction"), "here: {here:?}");
}

/// The system ssh is given keepalives that end a dead link after about
/// `ioTimeout`, unless the user's ssh configuration sets its own.
#[test]
fn openssh_gets_keepalives_unless_the_config_sets_them() {
    let w = World::new(Via::Openssh);
    set_io_timeout(&w, "30");
    let log = w.env.path("ssh-args.log");
    let wrapper = w.env.path("logging-ssh");
    std::fs::write(&wrapper, format!("#!/bin/sh\necho \"$*\" >> '{}'\nexec ssh \"$@\"\n", log.display())).unwrap();
    crate::harness::set_exec(w.env.root.path(), b"logging-ssh", true);
    let config = w.env.home.join(".ssh/config");
    w.env.set_var("GIT_SSH_COMMAND", &format!("{} -F {}", wrapper.display(), config.display()));
    let master = |log: &Path| {
        let text = std::fs::read_to_string(log).unwrap();
        text.lines().find(|l| l.contains("ControlMaster=yes")).unwrap().to_owned()
    };

    w.run(&["host", "check", "devbox"]).success();
    let line = master(&log);
    assert!(line.contains("ServerAliveInterval=10") && line.contains("ServerAliveCountMax=3"), "{line}");

    std::fs::remove_file(&log).unwrap();
    let mine =
        std::fs::read_to_string(&config).unwrap().replace("Host devbox\n", "Host devbox\n\tServerAliveInterval 7\n");
    std::fs::write(&config, mine).unwrap();
    w.run(&["host", "check", "devbox"]).success();
    let line = master(&log);
    assert!(!line.contains("ServerAlive"), "the user's setting stands: {line}");
}
