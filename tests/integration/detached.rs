//! A thread whose branch is checked out in another worktree where it goes
//! (typically `main` in the host's own clone) works there on a detached HEAD:
//! that worktree and the branch are never touched, and the thread's commits
//! move the branch forward (fast-forward only) where it comes home and the
//! branch is free.

use std::path::{Path, PathBuf};

use crate::handoff::{every_kind_of_change, over_each, Via, World};
use crate::harness::write;

over_each!(a_thread_on_main_goes_to_a_host_whose_clone_is_on_main_and_brings_main_home);

/// Everything of the host's own clone a handoff must leave alone, byte for
/// byte: HEAD, the index file, every file, every ref but the tool's own,
/// and `main`'s loose ref and reflog (so it was not even rewritten).
fn host_clone_bytes(w: &World) -> String {
    let git_dir = w.remote_clone.join(".git");
    let raw = |rel: &str| std::fs::read(git_dir.join(rel)).unwrap_or_default();
    format!(
        "{:?}\n{:?}\n{:?}",
        w.env.untouchables(&w.remote_clone),
        raw("refs/heads/main"),
        raw("logs/refs/heads/main")
    )
}

fn is_detached(w: &World, home: &Path, worktree: &Path) -> bool {
    let mut cmd = w.env.command_with_home("git", worktree, home);
    cmd.args(["symbolic-ref", "-q", "HEAD"]);
    cmd.status().unwrap().code() == Some(1)
}

fn a_thread_on_main_goes_to_a_host_whose_clone_is_on_main_and_brings_main_home(via: Via) {
    let w = World::new(via);
    let env = &w.env;
    // The host's own clone is on main, with work of its own in progress.
    w.git_remote(&w.remote_clone, &["checkout", "-q", "main"]);
    write(&w.remote_clone, b"a.txt", b"the host's own unstaged edit\n");
    write(&w.remote_clone, b"host-staged.txt", b"the host's own staged file\n");
    w.git_remote(&w.remote_clone, &["add", "host-staged.txt"]);
    write(&w.remote_clone, b"host-untracked.txt", b"the host's own untracked file\n");
    w.git_remote(&w.remote_clone, &["status", "-s"]); // settle the index's stat data first
    let host_clone = host_clone_bytes(&w);

    // A thread on main here, in this computer's own checkout.
    w.run(&["thread", "new", "--title", "On main"]).success();
    every_kind_of_change(env, &w.laptop);
    let before = env.carried_facts(&w.laptop);
    let main_here = env.git(&w.laptop, &["rev-parse", "main"]);

    // The plan says it in one line, and a dry run changes nothing.
    let dry = w.run(&["1", "devbox", "--dry-run", "--json"]);
    dry.success();
    let line = format!(
        "main is checked out in {} on devbox: the thread works on a detached HEAD there and brings main's new commits home",
        w.remote_clone.display()
    );
    assert!(dry.stderr.contains(&line), "{}", dry.stderr);
    let plan = &dry.json()["plan"];
    assert_eq!((plan["detached"].as_bool(), plan["branch"].as_str()), (Some(true), Some("main")), "{plan}");

    // No flag needed.
    let out = w.run(&["1", "devbox", "--yes", "--json"]).success().json();
    assert_eq!((out["branch"].as_str(), out["branch_detached_on"].as_str()), (Some("main"), Some("devbox")));
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_eq!(env.carried_facts(&remote_wt), before, "the host has exactly the thread's state");
    assert!(is_detached(&w, &w.remote_home, &remote_wt), "the thread's worktree there is detached");
    assert_eq!(w.git_remote(&remote_wt, &["rev-parse", "HEAD"]), main_here, "at the thread's commit");
    assert_eq!(host_clone_bytes(&w), host_clone, "the host's own clone was touched");
    assert_eq!(env.carried_facts(&w.laptop), before, "nothing was lost here");
    assert_eq!(env.git(&w.laptop, &["symbolic-ref", "HEAD"]).trim(), "refs/heads/main");

    // Both sides say where and why.
    for command in [&["thread", "show", "1"][..], &["thread", "list"]] {
        let shown = w.run(command);
        assert!(shown.success().stdout.contains("main (detached on devbox)"), "{}", shown.stdout);
    }
    let here = w.run(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!((here["branch"].as_str(), here["branch_detached_on"].as_str()), (Some("main"), Some("devbox")));
    assert_eq!(here["branch_checked_out_in"].as_str(), w.remote_clone.to_str());
    let there = w.run_remote(&["thread", "list", "--json"]).success().json();
    let there = &there["threads"][0];
    assert_eq!((there["branch"].as_str(), there["branch_detached_on"].as_str()), (Some("main"), Some("local")));
    assert!(w.run_remote(&["thread", "show", "1"]).success().stdout.contains("main (detached here)"));

    // Work on the host: a commit on the detached HEAD, a checkpoint, new edits of every kind.
    w.git_remote(&remote_wt, &["add", "-A"]);
    w.git_remote(&remote_wt, &["commit", "-q", "-m", "work on the dev box"]);
    let host_tip = w.git_remote(&remote_wt, &["rev-parse", "HEAD"]);
    w.run_remote(&["thread", "snapshot", "1"]).success();
    let there = w.run_remote(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!((there["branch"].as_str(), there["branch_detached_on"].as_str()), (Some("main"), Some("local")));
    write(&remote_wt, b"a.txt", b"edited on the dev box\n");
    write(&remote_wt, b"devbox-staged.txt", b"staged there\n");
    w.git_remote(&remote_wt, &["add", "devbox-staged.txt"]);
    write(&remote_wt, b"devbox-untracked.txt", b"untracked there\n");
    std::fs::remove_file(remote_wt.join("b.txt")).unwrap();
    let remote_state = env.carried_facts(&remote_wt);

    // Home: main fast-forwards to the host's commit, in the untouched original worktree.
    let out = w.run(&["1", "local", "--json"]).success().json();
    assert_eq!(PathBuf::from(out["owner_worktree"].as_str().unwrap()), w.laptop, "the untouched original is reused");
    assert_eq!((out["branch"].as_str(), out["branch_detached_on"].as_str()), (Some("main"), None));
    assert_eq!(env.carried_facts(&w.laptop), remote_state, "this computer has exactly the host's state");
    assert_eq!(env.git(&w.laptop, &["rev-parse", "main"]), host_tip, "main moved forward to the host's commit");
    assert_eq!(env.git(&w.laptop, &["symbolic-ref", "HEAD"]).trim(), "refs/heads/main");
    let here = w.run(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!((here["branch"].as_str(), here["branch_detached_on"].as_str()), (Some("main"), None));
    assert_eq!(host_clone_bytes(&w), host_clone, "the host's own clone was touched");

    // Meanwhile the host's own main moves on: the next trip and return do not care.
    w.git_remote(&w.remote_clone, &["commit", "-q", "-m", "the host's own work on main"]);
    let host_main = w.git_remote(&w.remote_clone, &["rev-parse", "main"]);
    let host_clone = host_clone_bytes(&w);
    write(&w.laptop, b"second-trip.txt", b"second trip\n");
    let before = env.carried_facts(&w.laptop);
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    assert_eq!(PathBuf::from(out["owner_worktree"].as_str().unwrap()), remote_wt, "the host's worktree is reused");
    assert_eq!(out["branch_detached_on"], "devbox");
    assert_eq!(env.carried_facts(&remote_wt), before);
    assert!(is_detached(&w, &w.remote_home, &remote_wt));
    w.git_remote(&remote_wt, &["add", "-A"]);
    w.git_remote(&remote_wt, &["commit", "-q", "-m", "more work on the dev box"]);
    let host_tip = w.git_remote(&remote_wt, &["rev-parse", "HEAD"]);
    let remote_state = env.carried_facts(&remote_wt);
    w.run(&["1", "local"]).success();
    assert_eq!(env.git(&w.laptop, &["rev-parse", "main"]), host_tip, "still a fast-forward here");
    assert_eq!(env.carried_facts(&w.laptop), remote_state);
    assert_eq!(w.git_remote(&w.remote_clone, &["rev-parse", "main"]), host_main);
    assert_eq!(host_clone_bytes(&w), host_clone, "the host's own clone was touched");

    // Once more out and back, while main here diverges and is checked out nowhere here.
    w.run(&["1", "devbox"]).success();
    w.git_remote(&remote_wt, &["commit", "-q", "--allow-empty", "-m", "third stay on the dev box"]);
    let remote_state = env.carried_facts(&remote_wt);
    write(&w.laptop, b"local.txt", b"committed on main here meanwhile\n");
    env.git(&w.laptop, &["add", "local.txt"]);
    env.git(&w.laptop, &["commit", "-q", "-m", "main moves here"]);
    env.git(&w.laptop, &["checkout", "-q", "-b", "elsewhere"]);
    let everything = w.everything();
    w.run(&["1", "local"]).fails_with(4, "branch main here has diverged").fails_with(4, "--branch NEW");
    assert_eq!(w.everything(), everything, "a refused hand-back changed something");
    let out = w.run(&["1", "local", "--branch", "main-2", "--json"]).success().json();
    let new_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_ne!(new_wt, w.laptop);
    assert_eq!(out["branch"], "main-2");
    assert_eq!(env.carried_facts(&new_wt), remote_state);
    assert_eq!(env.git(&new_wt, &["symbolic-ref", "HEAD"]).trim(), "refs/heads/main-2");
}
