//! Handoffs end to end: the real binary on both sides, over a real OpenSSH
//! server on 127.0.0.1 (own host key, user key, strict host key checking, a
//! separate HOME for the remote side) reached with the system ssh (`openssh`)
//! and with libssh2 (`ssh2`), both reading the `~/.ssh/config` the harness
//! writes, and over the `local` transport.

use std::path::{Path, PathBuf};

use crate::harness::{set_exec, symlink, write, TestEnv, BIN};
use crate::sshd::Sshd;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Openssh,
    #[cfg_attr(not(feature = "ssh2"), allow(dead_code))]
    Ssh2,
    Local,
}

impl Via {
    /// The `--transport` value.
    pub fn transport(self) -> &'static str {
        match self {
            Via::Openssh => "openssh",
            Via::Ssh2 => "ssh2",
            Via::Local => "local",
        }
    }
}

/// Each case runs over every transport (a `fn case(via: Via)` beside the call).
macro_rules! over_each {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[test]
                fn over_openssh() {
                    super::$case(super::Via::Openssh)
                }
                #[cfg(feature = "ssh2")]
                #[test]
                fn over_ssh2() {
                    super::$case(super::Via::Ssh2)
                }
                #[test]
                fn over_local() {
                    super::$case(super::Via::Local)
                }
            }
        )*
    };
}

pub(crate) use over_each;

over_each!(
    handoff_and_back_keep_the_exact_state,
    dry_run_changes_nothing_on_either_side,
    diverged_branch_is_refused_and_branch_new_goes_through,
    reused_worktree_with_foreign_changes_is_refused,
    host_without_the_project_is_refused,
    hostile_branch_and_title_execute_nothing,
    hand_back_while_the_branch_is_checked_out_here_comes_back_detached,
    host_check_and_destinations,
    missing_helper_is_exit_6,
);

pub struct World {
    pub env: TestEnv,
    pub laptop: PathBuf,
    pub remote_home: PathBuf,
    pub remote_clone: PathBuf,
    pub sshd: Option<Sshd>,
}

impl World {
    pub fn new(via: Via) -> World {
        World::with_laptop(via, |_, _| {})
    }

    /// A world whose laptop repository gets `setup` (e.g. submodules, LFS)
    /// on top of the base commit, before the host clones it.
    pub fn with_laptop(via: Via, setup: impl FnOnce(&TestEnv, &Path)) -> World {
        let (env, laptop, remote_home, remote_clone) = World::fixture(setup);
        World::connect(env, laptop, remote_home, remote_clone, via)
    }

    /// This computer's repository `laptop` (with `setup` on top of the base
    /// commit), the host's HOME and its clone (saved as a project there), not
    /// yet connected.
    pub fn fixture(setup: impl FnOnce(&TestEnv, &Path)) -> (TestEnv, PathBuf, PathBuf, PathBuf) {
        let env = TestEnv::new();
        let remote_home = crate::harness::make_home(&env.path("remote-home"), "devbox");
        let laptop = env.init_repo("laptop");
        base_files(&env, &laptop);
        env.git(&laptop, &["commit", "-q", "-m", "base"]);
        setup(&env, &laptop);

        let remote_clone = env.path("devbox-clone");
        env.git_as(
            &remote_home,
            env.root.path(),
            &["clone", "-q", laptop.to_str().unwrap(), remote_clone.to_str().unwrap()],
        );
        // The clone's own checkout stays off the thread's branches.
        env.git_as(&remote_home, &remote_clone, &["checkout", "-q", "-b", "devbox-home"]);
        env.run_as(&remote_home, &remote_clone, &["project", "save"]).success();
        (env, laptop, remote_home, remote_clone)
    }

    /// This computer's repository `laptop`, and the host "devbox" (whose HOME is `remote_home`) over `via`.
    pub fn connect(env: TestEnv, laptop: PathBuf, remote_home: PathBuf, remote_clone: PathBuf, via: Via) -> World {
        let sshd = match via {
            Via::Local => {
                env.run(&laptop, &["host", "add", "devbox", remote_home.to_str().unwrap(), "--transport", "local"])
                    .success();
                None
            }
            Via::Openssh | Via::Ssh2 => {
                let sshd = Sshd::start(&env, &remote_home);
                sshd.install_user_config(&env);
                env.run(&laptop, &["host", "add", "devbox", "devbox", "--transport", via.transport(), "--helper", BIN])
                    .success();
                Some(sshd)
            }
        };
        World { env, laptop, remote_home, remote_clone, sshd }
    }

    pub fn run(&self, args: &[&str]) -> crate::harness::Run {
        self.env.run(&self.laptop, args)
    }

    pub fn run_remote(&self, args: &[&str]) -> crate::harness::Run {
        self.env.run_as(&self.remote_home, &self.remote_clone, args)
    }

    pub fn git_remote(&self, dir: &Path, args: &[&str]) -> String {
        self.env.git_as(&self.remote_home, dir, args)
    }

    pub fn connections(&self) -> Option<usize> {
        self.sshd.as_ref().map(Sshd::accepted_connections)
    }

    /// Everything either side could lose or have changed: refs, worktrees, files, index.
    pub fn everything(&self) -> String {
        let mut out = String::new();
        for (home, repo) in [(&self.env.home, &self.laptop), (&self.remote_home, &self.remote_clone)] {
            out += &self.env.git_as(home, repo, &["for-each-ref", "--format=%(refname) %(objectname)"]);
            out += &self.env.git_as(home, repo, &["worktree", "list", "--porcelain"]);
            out += &format!("{:?}\n", self.env.facts(repo));
        }
        let worktrees = self.remote_home.join(".codex");
        out += &format!("{:?}", crate::harness::files(if worktrees.exists() { &worktrees } else { &self.remote_home }));
        out
    }
}

/// The files of the first commit (staged in `dir`): every kind of file a thread carries.
pub fn base_files(env: &TestEnv, dir: &Path) {
    write(dir, b"a.txt", b"alpha\n");
    write(dir, b"b.txt", b"beta\n");
    write(dir, b"partial.txt", b"one\ntwo\n");
    write(dir, b"x.sh", b"#!/bin/sh\necho x\n");
    set_exec(dir, b"x.sh", true);
    symlink(dir, b"link", b"a.txt");
    write(dir, b"bin.dat", &[0, 1, 2, 255, 254, 0, 10]);
    write(dir, "\u{e9}t\u{e9}/\u{fc}ber.txt".as_bytes(), "gr\u{fc}\u{df}e\n".as_bytes());
    write(dir, b"raw\xff.bin", b"raw name\n");
    write(dir, b"del-staged.txt", b"going\n");
    write(dir, b"del-unstaged.txt", b"going too\n");
    write(dir, b".gitignore", b"*.log\n");
    env.git(dir, &["add", "-A"]);
}

/// A dirty state with every kind of change a thread can carry.
pub fn every_kind_of_change(env: &TestEnv, repo: &Path) {
    write(repo, b"a.txt", b"alpha, edited\n"); // unstaged
    write(repo, b"b.txt", b"beta, staged\n");
    env.git(repo, &["add", "b.txt"]); // staged
    write(repo, b"partial.txt", b"one\ntwo\nthree\n");
    env.git(repo, &["add", "partial.txt"]);
    write(repo, b"partial.txt", b"one\ntwo\nthree\nfour\n"); // partially staged
    env.git(repo, &["rm", "-q", "del-staged.txt"]); // staged deletion
    std::fs::remove_file(repo.join("del-unstaged.txt")).unwrap(); // unstaged deletion
    set_exec(repo, b"x.sh", false); // mode change
    symlink(repo, b"link", b"b.txt"); // symlink retargeted
    write(repo, b"bin.dat", &[9, 0, 8, 0, 255]);
    env.git(repo, &["add", "bin.dat"]); // binary, staged
    write(repo, b"new-staged.txt", b"new and staged\n");
    env.git(repo, &["add", "new-staged.txt"]);
    write(repo, b"untracked.txt", b"untracked\n");
    write(repo, "neu/\u{fc}ntracked.txt".as_bytes(), b"untracked, non-ASCII path\n");
    write(repo, b"raw\xfe-untracked", b"non-UTF-8 path\n");
    write(repo, b"ita.txt", b"intent to add\n");
    env.git(repo, &["add", "-N", "ita.txt"]);
    write(repo, b"build.log", b"ignored, stays behind\n");
}

fn handoff_and_back_keep_the_exact_state(via: Via) {
    let w = World::new(via);
    let env = &w.env;
    w.run(&["thread", "new", "--title", "Exact state", "--branch", "feat/thread"]).success();
    every_kind_of_change(env, &w.laptop);
    let before = env.carried_facts(&w.laptop);
    let connections = w.connections();

    let out = w.run(&["1", "devbox", "--yes", "--json"]).success().json();
    if let Some(before) = connections {
        assert_eq!(
            w.connections().unwrap(),
            before + 1,
            "one SSH connection per handoff:\n{}",
            w.sshd.as_ref().unwrap().log()
        );
    }
    assert_eq!(out["thread"], 1);
    assert_eq!(out["host"], "devbox");
    assert_eq!(out["branch"], "feat/thread");
    assert_eq!(out["epoch"], 1);
    assert_eq!(out["uuid"].as_str().unwrap().len(), 36);
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert!(remote_wt.starts_with(w.remote_home.join(".codex/worktrees")), "{}", remote_wt.display());
    assert_eq!(env.carried_facts(&remote_wt), before, "the host has exactly the thread's state");
    assert_eq!(env.carried_facts(&w.laptop), before, "nothing was lost here");
    assert_eq!(w.git_remote(&remote_wt, &["symbolic-ref", "HEAD"]).trim(), "refs/heads/feat/thread");

    let here = w.run(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!(
        (here["owner"].as_str(), here["owner_machine"].as_str(), here["epoch"].as_u64()),
        (Some("devbox"), Some("devbox"), Some(1))
    );
    let there = w.run_remote(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!((there["owner"].as_str(), there["epoch"].as_u64()), (Some("local"), Some(1)));
    // The incoming refs are gone on the host.
    assert!(!w.git_remote(&w.remote_clone, &["for-each-ref", "refs/codex-handoff/incoming/"]).contains("incoming"));

    // Work on the host: a commit, then new edits of every kind.
    w.git_remote(&remote_wt, &["add", "-A"]);
    w.git_remote(&remote_wt, &["commit", "-q", "-m", "work on the dev box"]);
    write(&remote_wt, b"a.txt", b"edited on the dev box\n");
    write(&remote_wt, b"devbox-staged.txt", b"staged there\n");
    w.git_remote(&remote_wt, &["add", "devbox-staged.txt"]);
    write(&remote_wt, b"devbox-untracked.txt", b"untracked there\n");
    std::fs::remove_file(remote_wt.join("b.txt")).unwrap();
    let remote_state = env.carried_facts(&remote_wt);

    let connections = w.connections();
    let out = w.run(&["1", "local", "--json"]).success().json();
    if let Some(before) = connections {
        assert_eq!(w.connections().unwrap(), before + 1, "one SSH connection per hand-back");
    }
    assert_eq!(out["epoch"], 2);
    assert_eq!(out["host"], "local");
    assert_eq!(
        PathBuf::from(out["owner_worktree"].as_str().unwrap()),
        w.laptop,
        "the untouched original worktree is reused"
    );
    assert_eq!(env.carried_facts(&w.laptop), remote_state, "this computer has exactly the host's state");
    assert_eq!(
        env.git(&w.laptop, &["log", "-1", "--format=%s"]).trim(),
        "work on the dev box",
        "the branch fast-forwarded to the host's commit"
    );
    let here = w.run(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!((here["owner"].as_str(), here["epoch"].as_u64()), (Some("local"), Some(2)));
    let there = w.run_remote(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!((there["owner_machine"].as_str(), there["epoch"].as_u64()), (Some("laptop"), Some(2)));
    // Handing it back out reuses the host's worktree, which holds only what the thread left there.
    write(&w.laptop, b"c.txt", b"third trip\n");
    let before = env.carried_facts(&w.laptop);
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    assert_eq!(PathBuf::from(out["owner_worktree"].as_str().unwrap()), remote_wt);
    assert_eq!(env.carried_facts(&remote_wt), before);
}

fn dry_run_changes_nothing_on_either_side(via: Via) {
    let w = World::new(via);
    w.run(&["thread", "new", "--branch", "feat/dry"]).success();
    every_kind_of_change(&w.env, &w.laptop);
    let before = w.everything();
    let out = w.run(&["1", "devbox", "--dry-run", "--json"]);
    out.success();
    let doc = out.json();
    assert_eq!(doc["dry_run"], true);
    let planned = PathBuf::from(doc["plan"]["worktree"].as_str().unwrap());
    assert!(!planned.exists(), "the planned worktree was not created");
    assert_eq!(doc["plan"]["changes"]["staged"], 5, "{doc}");
    assert!(out.stderr.contains("Hand off thread #1"), "the plan is shown: {}", out.stderr);
    assert_eq!(w.everything(), before, "a dry run changed something");
}

fn diverged_branch_is_refused_and_branch_new_goes_through(via: Via) {
    let w = World::new(via);
    w.run(&["thread", "new", "--branch", "feat/x"]).success();
    write(&w.laptop, b"a.txt", b"dirty\n");
    // The host has its own commit on feat/x.
    w.git_remote(&w.remote_clone, &["checkout", "-q", "-b", "feat/x"]);
    write(&w.remote_clone, b"other.txt", b"the host's own work\n");
    w.git_remote(&w.remote_clone, &["add", "other.txt"]);
    w.git_remote(&w.remote_clone, &["commit", "-q", "-m", "host work"]);
    w.git_remote(&w.remote_clone, &["checkout", "-q", "devbox-home"]);
    let before = w.everything();
    w.run(&["1", "devbox"]).fails_with(4, "diverged").fails_with(4, "--branch NEW");
    assert_eq!(w.everything(), before);
    let out = w.run(&["1", "devbox", "--branch", "feat/x-2", "--json"]).success().json();
    assert_eq!(out["branch"], "feat/x-2");
    let wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_eq!(std::fs::read(wt.join("a.txt")).unwrap(), b"dirty\n");
}

fn reused_worktree_with_foreign_changes_is_refused(via: Via) {
    let w = World::new(via);
    w.run(&["thread", "new", "--branch", "feat/reuse"]).success();
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    w.run(&["1", "local"]).success();
    // Someone edits the thread's old worktree on the host.
    write(&remote_wt, b"a.txt", b"not the thread's change\n");
    let before = w.everything();
    w.run(&["1", "devbox"]).fails_with(4, "changes the thread did not make");
    assert_eq!(w.everything(), before);
    assert_eq!(std::fs::read(remote_wt.join("a.txt")).unwrap(), b"not the thread's change\n");
}

fn host_without_the_project_is_refused(via: Via) {
    let w = World::new(via);
    w.run(&["thread", "new", "--branch", "feat/p"]).success();
    w.run_remote(&["project", "forget", w.remote_clone.to_str().unwrap()]).success();
    let before = w.everything();
    w.run(&["1", "devbox"]).fails_with(3, "no saved project for this repository").fails_with(3, "project save");
    assert_eq!(w.everything(), before);
    // A project saved in a subdirectory matches only that subdirectory.
    std::fs::create_dir_all(w.remote_clone.join("sub")).unwrap();
    w.run_remote(&["project", "save", w.remote_clone.join("sub").to_str().unwrap()]).success();
    w.run(&["1", "devbox"])
        .fails_with(3, "saved at subdirectory sub while the thread works in the repository's root")
        .fails_with(3, &format!("project save --host devbox {}", w.remote_clone.display()));
    w.run_remote(&["project", "save", w.remote_clone.to_str().unwrap()]).success();
    w.run(&["1", "devbox"]).success();
}

fn hostile_branch_and_title_execute_nothing(via: Via) {
    let w = World::new(via);
    let marker = w.env.path("pwned");
    let title = format!("$(touch {m}) `touch {m}` '\"; touch {m}; echo \\", m = marker.display());
    let branch = "feat/$(touch${IFS}pwned)'\"`";
    w.run(&["thread", "new", "--title", &title, "--branch", branch]).success();
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    assert_eq!(out["branch"], branch);
    let there = w.run_remote(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!(there["title"], title.as_str());
    assert_eq!(there["branch"], branch);
    assert!(!marker.exists(), "a title was executed");
    for dir in [&w.laptop, &w.remote_clone, &w.remote_home, &PathBuf::from(out["owner_worktree"].as_str().unwrap())] {
        assert!(!dir.join("pwned").exists(), "a branch name was executed in {}", dir.display());
    }
    // Hostile host names and destinations never reach ssh.
    w.run(&["host", "add", "--", "-oProxyCommand=touch", "x"]).fails_with(2, "not a valid host name");
    w.run(&["host", "add", "--", "evil", "-oProxyCommand=touch"]).fails_with(2, "not a usable SSH destination");
    w.run(&["host", "add", "evil", "user@host name"]).fails_with(2, "not a usable SSH destination");
    w.run(&["host", "add", "evil", "host", "--helper", "git-codex-handoff; touch x"])
        .fails_with(2, "not a usable helper path");
}

fn hand_back_while_the_branch_is_checked_out_here_comes_back_detached(via: Via) {
    let w = World::new(via);
    let env = &w.env;
    w.run(&["thread", "new", "--branch", "feat/back"]).success();
    write(&w.laptop, b"a.txt", b"thread's edit\n");
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    w.git_remote(&remote_wt, &["commit", "-q", "-am", "on the host"]);
    let host_tip = w.git_remote(&remote_wt, &["rev-parse", "HEAD"]);
    write(&remote_wt, b"b.txt", b"edited on the host\n");
    let remote_state = env.carried_facts(&remote_wt);
    // Meanwhile the original worktree here changes, with feat/back still checked out.
    write(&w.laptop, b"local-only.txt", b"not the thread's\n");
    let local_state = env.facts(&w.laptop);
    let branch_here = env.git(&w.laptop, &["rev-parse", "feat/back"]);

    // The thread comes back into a new worktree on a detached HEAD; the original and the branch stay as they are.
    let out = w.run(&["1", "local", "--json"]).success().json();
    let new_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert!(new_wt.starts_with(env.home.join(".codex/worktrees")), "{}", new_wt.display());
    assert_eq!((out["branch"].as_str(), out["branch_detached_on"].as_str()), (Some("feat/back"), Some("local")));
    assert_eq!(env.carried_facts(&new_wt), remote_state);
    assert_eq!(env.git(&new_wt, &["rev-parse", "HEAD"]), host_tip);
    assert_eq!(env.facts(&w.laptop), local_state);
    assert_eq!(env.git(&w.laptop, &["rev-parse", "feat/back"]), branch_here);
    assert_eq!(env.git(&w.laptop, &["symbolic-ref", "HEAD"]).trim(), "refs/heads/feat/back");
    let shown = w.run(&["thread", "show", "1"]);
    assert!(shown.success().stdout.contains("feat/back (detached here)"), "{}", shown.stdout);
    assert!(shown.stdout.contains(&format!("checked out in {} here", w.laptop.display())), "{}", shown.stdout);

    // Out again from the detached worktree: the branch is free on the host, which takes it again.
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    assert_eq!(PathBuf::from(out["owner_worktree"].as_str().unwrap()), remote_wt);
    assert_eq!((out["branch"].as_str(), out["branch_detached_on"].as_str()), (Some("feat/back"), None));
    assert_eq!(w.git_remote(&remote_wt, &["symbolic-ref", "HEAD"]).trim(), "refs/heads/feat/back");
    assert_eq!(env.carried_facts(&remote_wt), remote_state);

    // The original here moves to another branch: feat/back is free, and the thread brings it forward.
    env.git(&w.laptop, &["checkout", "-q", "-b", "laptop-side"]);
    let out = w.run(&["1", "local", "--json"]).success().json();
    assert_eq!(PathBuf::from(out["owner_worktree"].as_str().unwrap()), new_wt, "the detached worktree is reused");
    assert_eq!(out["branch_detached_on"], serde_json::Value::Null);
    assert_eq!(env.git(&new_wt, &["symbolic-ref", "HEAD"]).trim(), "refs/heads/feat/back");
    assert_eq!(env.git(&w.laptop, &["rev-parse", "feat/back"]), host_tip, "fast-forwarded to the host's commit");
    assert_eq!(env.carried_facts(&new_wt), remote_state);

    // --detach leaves a free branch alone all the same; it does not go with --branch.
    env.git(&new_wt, &["commit", "-q", "-am", "here"]);
    let out = w.run(&["1", "devbox", "--detach", "--json"]).success().json();
    assert_eq!(out["branch_detached_on"], "devbox");
    assert!(w.git_remote(&remote_wt, &["status", "--porcelain=v2", "--branch"]).contains("# branch.head (detached)"));
    assert_eq!(w.git_remote(&remote_wt, &["rev-parse", "HEAD"]), env.git(&new_wt, &["rev-parse", "HEAD"]));
    assert_eq!(w.git_remote(&w.remote_clone, &["rev-parse", "feat/back"]), host_tip, "the host's branch stays");
    w.run(&["1", "local", "--detach", "--branch", "x"]).fails_with(2, "cannot be used with");
}

fn host_check_and_destinations(via: Via) {
    let w = World::new(via);
    let check = w.run(&["host", "check", "devbox", "--json"]).success().json();
    assert_eq!(check["machine"], "devbox");
    assert_eq!(check["protocol"], 4);
    assert_eq!(check["helper_version"], env!("CARGO_PKG_VERSION"));
    let list = w.run(&["host", "list", "--json"]).success().json();
    assert_eq!(list["hosts"][0]["name"], "devbox");

    // A second host that has no project for this repository.
    let empty_home = w.env.path("empty-home");
    std::fs::create_dir_all(&empty_home).unwrap();
    w.run(&["host", "add", "empty", empty_home.to_str().unwrap(), "--transport", "local"]).success();
    let found = w.run(&["destinations", "--json"]).success().json();
    let rows = found["destinations"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{found}");
    assert_eq!(rows[0]["host"], "devbox");
    let all = w.run(&["destinations", "--all", "--json"]).success().json();
    let empty = all["destinations"].as_array().unwrap().iter().find(|r| r["host"] == "empty").unwrap().clone();
    assert_eq!(empty["available"], false);
    assert_eq!(empty["reason"], "no project");
    w.run(&["host", "remove", "empty"]).success();
    w.run(&["host", "check", "empty"]).fails_with(3, "no host named");
}

fn missing_helper_is_exit_6(via: Via) {
    let w = World::new(via);
    w.run(&["thread", "new", "--branch", "feat/m"]).success();
    let destination = match via {
        Via::Openssh | Via::Ssh2 => "devbox".to_owned(),
        Via::Local => w.remote_home.to_string_lossy().into_owned(),
    };
    w.run(&[
        "host",
        "add",
        "broken",
        &destination,
        "--transport",
        via.transport(),
        "--helper",
        "/nonexistent/git-codex-handoff",
    ])
    .success();
    w.run(&["host", "check", "broken"]).fails_with(6, "not installed").fails_with(6, "--helper");
    let before = w.everything();
    w.run(&["1", "broken"]).fails_with(6, "not installed");
    assert_eq!(w.everything(), before);
}

#[test]
fn unknown_host_key_is_refused() {
    let w = World::new(Via::Openssh);
    w.run(&["thread", "new", "--branch", "feat/k"]).success();
    w.run(&["host", "add", "stranger", "stranger", "--helper", BIN]).success();
    let before = w.everything();
    w.run(&["1", "stranger"]).fails_with(5, "Host key verification failed");
    assert_eq!(w.everything(), before);
}

#[test]
fn cloud_and_self_handoff_are_refused() {
    let w = World::new(Via::Local);
    let thread = w.run(&["thread", "new", "--json"]).success().json();
    w.run(&["1", "cloud"]).fails_with(4, "Codex cloud environment isn't supported");
    w.run(&["1", "cloud:env-123"]).fails_with(4, "isn't supported");
    w.run(&["host", "add", "cloud", "x"]).fails_with(4, "isn't supported");
    let mut cmd = w.env.command("git", &w.laptop);
    cmd.args(["codex-handoff", "1", "devbox"]).env("CODEX_HANDOFF_THREAD", thread["uuid"].as_str().unwrap());
    crate::harness::Run::from(cmd.output().unwrap()).fails_with(4, "cannot hand itself off");
    w.run(&["1", "nowhere"]).fails_with(3, "no host named");
}

#[test]
fn host_to_host_goes_through_this_computer() {
    let w = World::new(Via::Local);
    // A second dev box with its own HOME, clone and saved project.
    let other_home = crate::harness::make_home(&w.env.path("other-home"), "devbox2");
    let other_clone = w.env.path("devbox2-clone");
    w.env.git_as(
        &other_home,
        w.env.root.path(),
        &["clone", "-q", w.laptop.to_str().unwrap(), other_clone.to_str().unwrap()],
    );
    w.env.git_as(&other_home, &other_clone, &["checkout", "-q", "-b", "devbox2-home"]);
    w.env.run_as(&other_home, &other_clone, &["project", "save"]).success();
    w.run(&["host", "add", "devbox2", other_home.to_str().unwrap(), "--transport", "local"]).success();

    w.run(&["thread", "new", "--branch", "feat/travel"]).success();
    every_kind_of_change(&w.env, &w.laptop);
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let first = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    write(&first, b"from-devbox.txt", b"made on the first host\n");
    let state = w.env.carried_facts(&first);
    let here = w.env.untouchables(&w.laptop);
    let worktrees = w.env.git(&w.laptop, &["worktree", "list", "--porcelain"]);

    let plan = w.run(&["1", "devbox2", "--dry-run"]);
    plan.success();
    assert!(
        plan.stderr.contains("from devbox to devbox2 (through this computer; no files here change)"),
        "{}",
        plan.stderr
    );
    let out = w.run(&["1", "devbox2", "--json"]).success().json();
    assert_eq!(out["host"], "devbox2");
    assert_eq!(out["epoch"], 2, "out to devbox (1), on to devbox2 (2)");
    assert!(out["worktree"].is_null(), "{out}");
    let second = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert!(second.starts_with(&other_home), "{}", second.display());
    assert_eq!(w.env.carried_facts(&second), state);
    assert_eq!(w.env.untouchables(&w.laptop), here, "no file, index or branch here changed");
    assert_eq!(w.env.git(&w.laptop, &["worktree", "list", "--porcelain"]), worktrees, "no worktree made here");
    let here = w.run(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!((here["owner"].as_str(), here["owner_machine"].as_str()), (Some("devbox2"), Some("devbox2")));
    let first_host = w.run_remote(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!(first_host["owner_machine"], "devbox2", "the first host let go of it");
    assert_eq!(first_host["epoch"], 2);
}

#[test]
fn a_restricted_key_allows_handoffs_and_nothing_else() {
    let w = World::new(Via::Openssh);
    let sshd = w.sshd.as_ref().unwrap();
    sshd.restrict_to(&format!("{BIN} remote serve --restricted"));
    w.run(&["thread", "new", "--branch", "feat/restricted"]).success();
    every_kind_of_change(&w.env, &w.laptop);
    let before = w.env.carried_facts(&w.laptop);
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    assert_eq!(w.env.carried_facts(&PathBuf::from(out["owner_worktree"].as_str().unwrap())), before);
    w.run(&["1", "local"]).success();

    // A shell command, a shell trick, and git on a repository that is not a saved project are refused.
    let other = w.env.path("not-a-project.git");
    w.env.git_as(&w.remote_home, w.env.root.path(), &["init", "-q", "--bare", other.to_str().unwrap()]);
    let marker = w.env.path("ran");
    for command in [
        format!("touch {}", marker.display()),
        format!("git-upload-pack '{}'; touch {}", w.remote_clone.display(), marker.display()),
    ] {
        let out =
            crate::harness::Run::from(sshd.ssh(&w.env).args([crate::sshd::HOST, "--", &command]).output().unwrap());
        assert_ne!(out.code, 0, "{command}");
        assert!(out.stderr.contains("this key may only run git-codex-handoff"), "{}", out.stderr);
    }
    assert!(!marker.exists(), "a refused command ran");
    let url = format!("{}:{}", crate::sshd::HOST, other.display());
    let refused = w.env.git_with_env(&w.laptop, &["ls-remote", &url], &[]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a saved project"));
    // git on the saved project is allowed.
    let url = format!("{}:{}", crate::sshd::HOST, w.remote_clone.display());
    assert!(w.env.git(&w.laptop, &["ls-remote", &url]).contains("refs/heads/main"));
}

#[test]
fn two_handoffs_of_one_thread_at_once_one_wins() {
    let w = World::new(Via::Local);
    w.run(&["thread", "new", "--branch", "feat/race"]).success();
    // An agent that stops only on SIGTERM keeps the first handoff busy (and its lock held) for a second.
    let mut agent = w.env.command_with_home("git", &w.laptop, &w.env.home);
    agent.args([
        "codex-handoff",
        "thread",
        "run",
        "1",
        "--",
        "sh",
        "-c",
        "trap '' INT; echo started > started.txt; while :; do sleep 0.1; done",
    ]);
    let mut agent = agent.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !w.laptop.join("started.txt").exists() {
        assert!(std::time::Instant::now() < deadline, "the agent did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut first = w.env.command_with_home("git", &w.laptop, &w.env.home);
    first.args(["codex-handoff", "1", "devbox", "--interrupt-timeout", "2"]);
    let first = first.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let second = w.run(&["1", "devbox"]);
    let first = crate::harness::Run::from(first.wait_with_output().unwrap());
    first.success();
    second.fails_with(4, "is busy");
    agent.wait().unwrap();
    let here = w.run(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!((here["owner"].as_str(), here["epoch"].as_u64()), (Some("devbox"), Some(1)));
}

#[test]
fn core_ssh_command_is_honoured_like_git_ssh_command() {
    let w = World::new(Via::Openssh);
    let ssh = w.sshd.as_ref().unwrap().ssh_command();
    w.env.git(&w.laptop, &["config", "core.sshCommand", &ssh]);
    w.run(&["thread", "new", "--branch", "feat/core-ssh"]).success();
    let before = w.connections().unwrap();
    // Without GIT_SSH_COMMAND, the repository's core.sshCommand must reach the host.
    let mut cmd = w.env.command("git", &w.laptop);
    cmd.env_remove("GIT_SSH_COMMAND").args(["codex-handoff", "1", "devbox", "--json"]);
    let out = crate::harness::Run::from(cmd.output().unwrap());
    assert_eq!(out.success().json()["host"], "devbox");
    assert_eq!(w.connections().unwrap(), before + 1);
}

/// A host whose helper is an older version (protocol 2: no transcripts
/// beside the pack, no `pack_in`): the snapshot goes by git push and comes
/// back by git fetch over the same connection, carrying every kind of change.
#[test]
fn an_older_helper_gets_git_push_and_fetch() {
    let w = World::new(Via::Openssh);
    w.git_remote(&w.remote_home, &["config", "--global", "codex-handoff.testFault", "helper-protocol-2"]);
    let check = w.run(&["host", "check", "devbox", "--json"]).success().json();
    assert_eq!(check["protocol"], 2, "the helper answers as an older one: {check}");
    w.run(&["thread", "new", "--branch", "feat/older"]).success();
    every_kind_of_change(&w.env, &w.laptop);
    let before = w.env.carried_facts(&w.laptop);
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_eq!(w.env.carried_facts(&remote_wt), before);

    write(&remote_wt, b"a.txt", b"edited on the host\n");
    let there = w.env.carried_facts(&remote_wt);
    w.run(&["1", "local"]).success();
    assert_eq!(w.env.carried_facts(&w.laptop), there);
}
