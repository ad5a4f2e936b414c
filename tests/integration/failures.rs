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
    let remote_wt = PathBuf::from(out["worktree"].as_str().unwrap());
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
    assert_eq!(PathBuf::from(rerun.json()["worktree"].as_str().unwrap()), remote_wt);
    assert_eq!(w.env.carried_facts(&remote_wt), state, "the host holds exactly the thread's state");
    one_owner(&w, "1", "devbox", 3, "after the rerun");
    nothing_left_over(&w, "after the rerun");
}
