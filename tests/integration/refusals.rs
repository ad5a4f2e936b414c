//! Each state a snapshot cannot carry exactly is refused with exit 4, a
//! message and a help line, and nothing changes: not the index, not a file,
//! not a ref (the tool's own included).

use std::path::{Path, PathBuf};

use crate::harness::{write, TestEnv};

/// A repository on `main` with a branch `other` that conflicts with it on a.txt.
fn conflicting_repo(env: &TestEnv) -> PathBuf {
    let repo = env.init_repo("repo");
    write(&repo, b"a.txt", b"base\n");
    write(&repo, b"b.txt", b"b\n");
    env.git(&repo, &["add", "-A"]);
    env.git(&repo, &["commit", "-q", "-m", "base"]);
    env.git(&repo, &["checkout", "-q", "-b", "other"]);
    write(&repo, b"a.txt", b"other\n");
    env.git(&repo, &["commit", "-q", "-am", "other"]);
    env.git(&repo, &["checkout", "-q", "main"]);
    write(&repo, b"a.txt", b"main\n");
    env.git(&repo, &["commit", "-q", "-am", "main"]);
    // A thread that exists before the operation starts.
    env.run(&repo, &["thread", "new", "--title", "t"]).success();
    write(&repo, b"untracked.txt", b"keep me\n");
    repo
}

/// Everything a refused command must leave alone, the tool's refs included.
fn everything(env: &TestEnv, repo: &Path) -> impl PartialEq + std::fmt::Debug {
    let all_refs = env.git(repo, &["for-each-ref", "--format=%(refname) %(objectname)"]);
    (env.untouchables(repo), all_refs, env.git(repo, &["status", "--porcelain=v2", "-z"]))
}

fn assert_refused(env: &TestEnv, repo: &Path, message: &str, help: &str) {
    let before = everything(env, repo);
    for args in [&["thread", "snapshot", "1"][..], &["thread", "new", "--title", "second"][..]] {
        let out = env.run(repo, args);
        out.fails_with(4, message).fails_with(4, help);
        assert_eq!(everything(env, repo), before, "{args:?} changed something");
        // The same refusal as JSON on stdout.
        let mut json_args = args.to_vec();
        json_args.push("--json");
        let out = env.run(repo, &json_args);
        assert_eq!(out.code, 4);
        let doc = out.json();
        assert!(doc["error"]["message"].as_str().unwrap().contains(message), "{doc}");
        assert!(doc["error"]["help"].as_str().unwrap().contains(help), "{doc}");
        assert_eq!(everything(env, repo), before, "{json_args:?} changed something");
    }
}

#[test]
fn merge_in_progress_is_refused() {
    let env = TestEnv::new();
    let repo = conflicting_repo(&env);
    let out = env.git_with_env(&repo, &["merge", "other"], &[]);
    assert!(!out.status.success(), "the merge should conflict");
    assert_refused(&env, &repo, "a merge is in progress", "git merge --abort");
}

#[test]
fn clean_merge_in_progress_is_refused() {
    let env = TestEnv::new();
    let repo = conflicting_repo(&env);
    env.git(&repo, &["checkout", "-q", "-b", "side", "HEAD~1"]);
    write(&repo, b"c.txt", b"side\n");
    env.git(&repo, &["add", "c.txt"]);
    env.git(&repo, &["commit", "-q", "-m", "side"]);
    env.git(&repo, &["checkout", "-q", "main"]);
    env.git(&repo, &["merge", "--no-commit", "--no-ff", "side"]);
    assert_refused(&env, &repo, "a merge is in progress", "git merge --continue");
}

#[test]
fn rebase_in_progress_is_refused() {
    let env = TestEnv::new();
    let repo = conflicting_repo(&env);
    env.git(&repo, &["stash", "-u", "-q"]);
    let out = env.git_with_env(&repo, &["rebase", "other"], &[]);
    assert!(!out.status.success(), "the rebase should stop on a conflict");
    assert_refused(&env, &repo, "a rebase is in progress", "git rebase --abort");
}

#[test]
fn cherry_pick_in_progress_is_refused() {
    let env = TestEnv::new();
    let repo = conflicting_repo(&env);
    let out = env.git_with_env(&repo, &["cherry-pick", "other"], &[]);
    assert!(!out.status.success(), "the cherry-pick should conflict");
    assert_refused(&env, &repo, "a cherry-pick is in progress", "git cherry-pick --abort");
}

#[test]
fn revert_in_progress_is_refused() {
    let env = TestEnv::new();
    let repo = conflicting_repo(&env);
    write(&repo, b"a.txt", b"changed again\n");
    env.git(&repo, &["commit", "-q", "-am", "again"]);
    let out = env.git_with_env(&repo, &["revert", "--no-edit", "HEAD~1"], &[]);
    assert!(!out.status.success(), "the revert should conflict");
    assert_refused(&env, &repo, "a revert is in progress", "git revert --abort");
}

#[test]
fn bisect_in_progress_is_refused() {
    let env = TestEnv::new();
    let repo = conflicting_repo(&env);
    env.git(&repo, &["bisect", "start"]);
    assert_refused(&env, &repo, "a bisect is in progress", "git bisect reset");
}

#[test]
fn unmerged_entries_are_refused() {
    let env = TestEnv::new();
    let repo = conflicting_repo(&env);
    // Conflict stages without any operation in progress.
    let blob = env.git(&repo, &["rev-parse", "HEAD:b.txt"]);
    let blob = blob.trim();
    let info = format!(
        "0 {zero}\tb.txt\n100644 {blob} 1\tb.txt\n100644 {blob} 2\tb.txt\n100644 {blob} 3\tb.txt\n",
        zero = "0".repeat(40)
    );
    let mut cmd = env.command("git", &repo);
    cmd.args(["update-index", "--index-info"]).stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(info.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    assert_refused(&env, &repo, "unmerged entries: b.txt", "resolve the conflicts");
}
