//! The crash matrix: a handoff killed (SIGKILL) at every step the test
//! build can stop at — on this computer and on the host, handing off and
//! handing back, into a new worktree and into a reused one — then the same
//! command run once more. Afterwards: exactly one owner, recorded alike on
//! both machines; the destination holds exactly the thread's state; the
//! source worktree is untouched; no lock, marker, half-built worktree or
//! leftover ref on either machine; and the thread travels on normally.
//!
//! Every step runs over the `local` transport, a representative set over
//! the real sshd as well. Some steps run again with the thread's branch
//! checked out in another worktree where it arrives, so that it works there
//! on a detached HEAD: that worktree and the branch must come out untouched.

use std::path::{Path, PathBuf};

use crate::handoff::{every_kind_of_change, Via, World};
use crate::harness::{write, Run};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// The process running the command, on this computer.
    Client,
    /// The helper on the host.
    Helper,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    ToHost,
    ToLocal,
}

/// Where the thread's branch is checked out in a worktree that is not the thread's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    /// Nowhere: the thread takes its branch where it arrives.
    Free,
    /// In a worktree of the host's own: the thread works there on a detached HEAD.
    OnHost,
    /// In the thread's original worktree here, which changed while it was away:
    /// it comes back into a new worktree on a detached HEAD.
    Here,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    step: &'static str,
    side: Side,
    direction: Direction,
    /// Into a new worktree (else one the thread left there before).
    new_worktree: bool,
    /// What the rerun reports it did (its progress on stderr).
    rerun_says: &'static str,
    held: Held,
}

const fn case(
    step: &'static str,
    side: Side,
    direction: Direction,
    new_worktree: bool,
    rerun_says: &'static str,
) -> Case {
    Case { step, side, direction, new_worktree, rerun_says, held: Held::Free }
}

/// `case`, with the thread's branch held in another worktree as `held` says.
const fn held(held: Held, case: Case) -> Case {
    Case { held, ..case }
}

const RESTARTS_TO_HOST: &str = "pushing to devbox";
const ADOPTS: &str = "an earlier handoff to devbox had finished there; recording it here";
const REMOVES: &str = "that an interrupted arrival had begun";
const PUTS_BACK: &str = "back as the thread had left it";
const FINISHES: &str = "finished recording the interrupted arrival";
const RESTARTS_TO_LOCAL: &str = "fetching from devbox";
const RELEASES: &str = "finishing the earlier hand-back: telling devbox to let go";

use Direction::{ToHost, ToLocal};
use Held::{Here, OnHost};
use Side::{Client, Helper};

const TO_HOST: &[Case] = &[
    case("to-host-begun", Client, ToHost, true, RESTARTS_TO_HOST),
    case("to-host-departed", Client, ToHost, true, RESTARTS_TO_HOST),
    case("to-host-pushed", Client, ToHost, true, RESTARTS_TO_HOST),
    case("to-host-receiving", Client, ToHost, true, ADOPTS),
    case("to-host-received", Client, ToHost, true, ADOPTS),
    case("to-host-notes-published", Client, ToHost, true, ADOPTS),
    case("to-host-recorded", Client, ToHost, true, "is already on devbox"),
    case("before-restore", Helper, ToHost, true, RESTARTS_TO_HOST),
    case("arrival-worktree-added", Helper, ToHost, true, REMOVES),
    case("arrival-restored", Helper, ToHost, true, REMOVES),
    case("arrival-committed", Helper, ToHost, true, FINISHES),
    case("arrival-restored", Helper, ToHost, false, PUTS_BACK),
    case("arrival-committed", Helper, ToHost, false, FINISHES),
    held(OnHost, case("arrival-restored", Helper, ToHost, true, REMOVES)),
    held(OnHost, case("arrival-committed", Helper, ToHost, true, FINISHES)),
    held(OnHost, case("arrival-restored", Helper, ToHost, false, PUTS_BACK)),
];

const TO_LOCAL: &[Case] = &[
    case("to-local-begun", Client, ToLocal, false, RESTARTS_TO_LOCAL),
    case("to-local-departed", Client, ToLocal, false, RESTARTS_TO_LOCAL),
    case("to-local-fetched", Client, ToLocal, false, RESTARTS_TO_LOCAL),
    case("arrival-restored", Client, ToLocal, false, PUTS_BACK),
    case("arrival-committed", Client, ToLocal, false, FINISHES),
    case("arrival-worktree-added", Client, ToLocal, true, REMOVES),
    case("arrival-restored", Client, ToLocal, true, REMOVES),
    case("arrival-committed", Client, ToLocal, true, FINISHES),
    case("to-local-arrived", Client, ToLocal, false, RELEASES),
    case("to-local-released", Client, ToLocal, false, RELEASES),
    case("depart-snapshotted", Helper, ToLocal, false, RESTARTS_TO_LOCAL),
    case("before-release", Helper, ToLocal, false, RELEASES),
    case("release-recorded", Helper, ToLocal, false, RELEASES),
    held(OnHost, case("arrival-restored", Client, ToLocal, false, PUTS_BACK)),
    held(Here, case("arrival-restored", Client, ToLocal, true, REMOVES)),
    held(Here, case("arrival-committed", Client, ToLocal, true, FINISHES)),
];

/// Over the real sshd: a kill on each side in each direction, where the
/// other side goes on alone or the connection drops mid-restore.
const OVER_SSH: &[Case] = &[
    case("arrival-restored", Helper, ToHost, true, REMOVES),
    case("to-host-receiving", Client, ToHost, true, ADOPTS),
    case("arrival-restored", Client, ToLocal, false, PUTS_BACK),
    case("before-release", Helper, ToLocal, false, RELEASES),
    held(OnHost, case("arrival-restored", Helper, ToHost, true, REMOVES)),
];

#[test]
fn every_step_handing_off_over_local() {
    run_cases(Via::Local, TO_HOST);
}

#[test]
fn every_step_handing_back_over_local() {
    run_cases(Via::Local, TO_LOCAL);
}

#[test]
fn a_step_on_each_side_over_ssh() {
    run_cases(Via::Openssh, OVER_SSH);
}

fn run_cases(via: Via, cases: &[Case]) {
    let w = World::new(via);
    for (i, case) in cases.iter().enumerate() {
        run_case(&w, i + 1, case);
    }
}

/// One case, on thread `n`: a worktree of its own here, with every kind of change.
fn run_case(w: &World, n: usize, case: &Case) {
    let env = &w.env;
    let wt = env.path(&format!("laptop-wt-{n}"));
    env.git(&w.laptop, &["worktree", "add", "-q", "--detach", wt.to_str().unwrap(), "HEAD"]);
    let number = n.to_string();
    let branch = format!("crash-{n}");
    env.run(&wt, &["thread", "new", "--title", case.step, "--branch", &branch]).success();
    every_kind_of_change(env, &wt);
    let what = format!("{case:?}");
    let holder = (case.held == OnHost).then(|| {
        // The host's own worktree on the thread's branch, with work of its own.
        let holder = w.env.path(&format!("host-wt-{n}"));
        w.git_remote(&w.remote_clone, &["worktree", "add", "-q", "-b", &branch, holder.to_str().unwrap(), "HEAD"]);
        write(&holder, b"host-own.txt", b"the host's own work\n");
        holder
    });
    let held_before = holder.as_ref().map(|h| (env.facts(h), w.git_remote(h, &["rev-parse", &branch])));
    match case.direction {
        ToHost => to_host(w, &wt, &number, case, &what),
        ToLocal => to_local(w, &wt, &number, &branch, case, &what),
    }
    if let (Some(holder), Some(before)) = (&holder, held_before) {
        let after = (env.facts(holder), w.git_remote(holder, &["rev-parse", &branch]));
        assert_eq!(after, before, "{what}: the host's own worktree and its branch were touched");
    }
}

fn to_host(w: &World, wt: &Path, n: &str, case: &Case, what: &str) {
    let env = &w.env;
    let mut epoch = 0;
    if !case.new_worktree {
        // A first stay on the host, so its worktree there is reused.
        env.run(wt, &[n, "devbox", "--yes"]).success();
        env.run(wt, &[n, "local", "--yes"]).success();
        write(wt, b"between-trips.txt", b"made here between two trips\n");
        epoch = 2;
    }
    let before = env.carried_facts(wt);
    let source = env.facts(wt);

    let crashed = run_with_fault(w, wt, &[n, "devbox", "--yes"], case);
    assert_crashed(&crashed, case, what);
    let rerun = env.run(wt, &[n, "devbox", "--yes", "--json", "--progress"]);
    assert!(
        rerun.stderr.contains(case.rerun_says),
        "{what}: the rerun should say {:?}:\n{}",
        case.rerun_says,
        rerun.stderr
    );
    assert_eq!(rerun.code, 0, "{what}: the rerun must finish\n{}", rerun.stderr);
    let out = rerun.json();

    let remote_wt = one_owner(w, wt, n, "devbox", epoch + 1, what);
    if case.new_worktree {
        assert!(remote_wt.starts_with(w.remote_home.join(".codex/worktrees")), "{what}: {}", remote_wt.display());
    }
    // A run that finds the handoff recorded here already has nothing to ask the host.
    if !out["owner_worktree"].is_null() {
        assert_eq!(PathBuf::from(out["owner_worktree"].as_str().unwrap()), remote_wt, "{what}");
    }
    assert_eq!(env.carried_facts(&remote_wt), before, "{what}: the host holds exactly the thread's state");
    assert_eq!(env.facts(wt), source, "{what}: the source worktree is untouched");
    assert_eq!(is_detached(w, &w.remote_home, &remote_wt), case.held == OnHost, "{what}: HEAD on the host");
    nothing_left_over(w, what);

    // And it travels on: back here, with what was done there.
    write(&remote_wt, b"after-the-crash.txt", b"written on the host after the rerun\n");
    let state = env.carried_facts(&remote_wt);
    env.run(wt, &[n, "local", "--yes"]).success();
    assert_eq!(env.carried_facts(wt), state, "{what}: the hand-back after the rerun carries the host's state");
    one_owner(w, wt, n, "local", epoch + 2, what);
    nothing_left_over(w, what);
}

fn to_local(w: &World, wt: &Path, n: &str, branch: &str, case: &Case, what: &str) {
    let env = &w.env;
    let out = env.run(wt, &[n, "devbox", "--yes", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    // Work on the host: a commit, then new edits.
    w.git_remote(&remote_wt, &["add", "-A"]);
    w.git_remote(&remote_wt, &["commit", "-q", "-m", "work on the host"]);
    write(&remote_wt, b"a.txt", b"edited on the host\n");
    write(&remote_wt, b"host-untracked.txt", b"untracked on the host\n");
    let state = env.carried_facts(&remote_wt);
    let host_tip = w.git_remote(&remote_wt, &["rev-parse", "HEAD"]);
    let branch_here = env.git(wt, &["rev-parse", branch]);
    let mut command: Vec<String> = vec![n.into(), "local".into(), "--yes".into()];
    let new_branch = format!("{branch}-back");
    if case.new_worktree {
        // A change here that the thread did not make: it comes back into a new worktree,
        // on a new branch, or detached while the branch stays checked out here.
        write(wt, b"not-the-threads.txt", b"made here while the thread was away\n");
        if case.held != Here {
            command.extend(["--branch".into(), new_branch.clone()]);
        }
    }
    let left_here = env.facts(wt);
    let args: Vec<&str> = command.iter().map(String::as_str).collect();

    let crashed = run_with_fault(w, wt, &args, case);
    assert_crashed(&crashed, case, what);
    let mut rerun_args = args.clone();
    rerun_args.push("--json");
    rerun_args.push("--progress");
    let rerun = env.run(wt, &rerun_args);
    assert!(
        rerun.stderr.contains(case.rerun_says),
        "{what}: the rerun should say {:?}:\n{}",
        case.rerun_says,
        rerun.stderr
    );
    assert_eq!(rerun.code, 0, "{what}: the rerun must finish\n{}", rerun.stderr);
    let out = rerun.json();

    let arrived = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    one_owner(w, wt, n, "local", 2, what);
    if case.new_worktree {
        assert_ne!(arrived, wt, "{what}");
        assert!(arrived.starts_with(w.env.home.join(".codex/worktrees")), "{what}: {}", arrived.display());
        assert_eq!(env.facts(wt), left_here, "{what}: the changed worktree here is left alone");
    } else {
        assert_eq!(arrived, wt, "{what}");
    }
    assert_eq!(env.carried_facts(&arrived), state, "{what}: this computer holds exactly the host's state");
    if case.held == Here {
        assert!(is_detached(w, &env.home, &arrived), "{what}: back on a detached HEAD");
        assert_eq!(env.git(wt, &["rev-parse", branch]), branch_here, "{what}: the branch here stays");
    } else if !case.new_worktree {
        assert_eq!(env.git(wt, &["rev-parse", branch]), host_tip, "{what}: the branch moved forward here");
    }
    // The host's worktree: files and index untouched, its branch let go.
    assert_eq!(env.carried_facts(&remote_wt), state, "{what}: the host's worktree is untouched");
    assert!(is_detached(w, &w.remote_home, &remote_wt), "{what}: the host's worktree let go of the branch");
    nothing_left_over(w, what);

    // And it travels on: out again, into the host's worktree, which takes the branch back.
    write(&arrived, b"after-the-crash.txt", b"written here after the rerun\n");
    let here = env.carried_facts(&arrived);
    let out = env.run(&arrived, &[n, "devbox", "--yes", "--json"]).success().json();
    assert_eq!(
        PathBuf::from(out["owner_worktree"].as_str().unwrap()),
        remote_wt,
        "{what}: the host's worktree is reused"
    );
    assert_eq!(env.carried_facts(&remote_wt), here, "{what}");
    if case.held == OnHost {
        assert!(is_detached(w, &w.remote_home, &remote_wt), "{what}: detached on the host again");
    } else {
        let expected = if case.new_worktree && case.held != Here { new_branch } else { branch.to_owned() };
        assert_eq!(w.git_remote(&remote_wt, &["symbolic-ref", "--short", "HEAD"]).trim(), expected, "{what}");
    }
    nothing_left_over(w, what);
}

fn is_detached(w: &World, home: &Path, worktree: &Path) -> bool {
    let mut cmd = w.env.command_with_home("git", worktree, home);
    cmd.args(["symbolic-ref", "-q", "HEAD"]);
    cmd.status().unwrap().code() == Some(1)
}

/// Run `git codex-handoff <args>` with the fault armed on the case's side.
fn run_with_fault(w: &World, dir: &Path, args: &[&str], case: &Case) -> Run {
    let mut cmd = w.env.command("git", dir);
    cmd.arg("codex-handoff").args(args);
    match case.side {
        Client => {
            cmd.env("CODEX_HANDOFF_TEST_FAULT", case.step);
        }
        Helper => {
            w.git_remote(&w.remote_home, &["config", "--global", "codex-handoff.testFault", case.step]);
        }
    }
    let out = Run::from(cmd.output().unwrap());
    if case.side == Helper {
        w.git_remote(&w.remote_home, &["config", "--global", "--unset", "codex-handoff.testFault"]);
    }
    out
}

/// The kill happened where it was meant to, and the error says what it was.
fn assert_crashed(out: &Run, case: &Case, what: &str) {
    match case.side {
        // git reports its subcommand's death by SIGKILL as 128 + 9.
        Client => assert_eq!(out.code, 137, "{what}: the client was not killed\n{}", out.stderr),
        Helper => {
            assert_eq!(out.code, 1, "{what}: the helper was not killed\n{}", out.stderr);
            assert!(out.stderr.contains("the helper on devbox stopped during"), "{what}: {}", out.stderr);
            assert!(!out.stderr.contains("could not connect"), "{what}: {}", out.stderr);
            assert!(out.stderr.contains("again"), "{what}: the help says to run it again: {}", out.stderr);
        }
    }
}

/// Both machines record the same owner at `epoch` with the same snapshot;
/// returns the host's worktree of the thread.
fn one_owner(w: &World, wt: &Path, n: &str, owner: &str, epoch: u64, what: &str) -> PathBuf {
    let here = w.env.run(wt, &["thread", "show", n, "--json"]).success().json();
    let there = w.run_remote(&["thread", "show", here["uuid"].as_str().unwrap(), "--json"]).success().json();
    // The host names this computer by its display name; this computer names the host by its host name.
    let (here_owner, there_owner) = if owner == "local" { ("local", "laptop") } else { ("devbox", "local") };
    assert_eq!(here["owner"], here_owner, "{what}: owner here");
    assert_eq!(there["owner"], there_owner, "{what}: owner there");
    assert_eq!(here["epoch"], epoch, "{what}: epoch here");
    assert_eq!(there["epoch"], epoch, "{what}: epoch there");
    assert_eq!(here["snapshot"], there["snapshot"], "{what}: both record the same snapshot");
    let record = w.remote_clone.join(".git/codex-handoff/worktrees").join(here["uuid"].as_str().unwrap());
    let text = std::fs::read_to_string(record).unwrap();
    PathBuf::from(text.lines().next().unwrap())
}

/// No lock file, marker, half-built worktree or ref of an unfinished handoff on either machine.
fn nothing_left_over(w: &World, what: &str) {
    for (home, repo) in [(&w.env.home, &w.laptop), (&w.remote_home, &w.remote_clone)] {
        let git_dir = repo.join(".git");
        let mut locks = Vec::new();
        find(&git_dir, &mut |p| p.extension().is_some_and(|e| e == "lock"), &mut locks);
        assert!(locks.is_empty(), "{what}: lock files left: {locks:?}");
        let mut pending = Vec::new();
        find(&git_dir.join("codex-handoff/pending"), &mut |_| true, &mut pending);
        assert!(pending.is_empty(), "{what}: markers left: {pending:?}");
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
        assert!(refs.is_empty(), "{what}: refs of an unfinished handoff left in {}: {refs}", repo.display());
        let list = w.env.git_as(home, repo, &["worktree", "list", "--porcelain"]);
        assert!(!list.contains("prunable") && !list.contains("\nlocked"), "{what}: {list}");
        // Every worktree directory a handoff made is one git knows.
        let root = home.join(".codex/worktrees");
        for dir in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for wt in std::fs::read_dir(dir.path()).unwrap().flatten() {
                let path = wt.path();
                assert!(
                    list.contains(&format!("worktree {}\n", path.display())),
                    "{what}: half-built {}",
                    path.display()
                );
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
