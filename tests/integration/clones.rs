//! Clones as people make them: shallow (`--depth 1`) and partial
//! (`--filter=blob:none`) on either side, all from one origin reached by a
//! file:// URL, so that depth and filters apply as they do over a network.

use std::path::{Path, PathBuf};

use crate::handoff::{base_files, every_kind_of_change, over_each, Via, World};
use crate::harness::{make_home, write, TestEnv};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Full,
    Shallow,
    Partial,
}

impl Kind {
    fn clone_args(self) -> &'static [&'static str] {
        match self {
            Kind::Full => &[],
            Kind::Shallow => &["--depth", "1"],
            Kind::Partial => &["--filter=blob:none"],
        }
    }
}

fn url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// An origin with two commits on main (so a depth-1 clone really is cut
/// off) and two branches with files of their own.
fn make_origin(env: &TestEnv) -> PathBuf {
    let origin = env.init_repo("origin");
    base_files(env, &origin);
    env.git(&origin, &["commit", "-q", "-m", "base"]);
    commit_file(env, &origin, "history.txt", "the second commit\n");
    for branch in ["feature", "feature2"] {
        env.git(&origin, &["checkout", "-q", "-b", branch, "main"]);
        commit_file(env, &origin, &format!("{branch}.txt"), &format!("only on {branch}\n"));
    }
    env.git(&origin, &["checkout", "-q", "main"]);
    env.git(&origin, &["config", "uploadpack.allowFilter", "true"]);
    origin
}

fn commit_file(env: &TestEnv, dir: &Path, name: &str, text: &str) {
    write(dir, name.as_bytes(), text.as_bytes());
    env.git(dir, &["add", name]);
    env.git(dir, &["commit", "-q", "-m", &format!("add {name}")]);
}

/// This computer's clone of a new origin, and the host devbox with its own clone saved as a project.
fn world(via: Via, here: Kind, there: Kind) -> (World, PathBuf) {
    let env = TestEnv::new();
    let origin = make_origin(&env);
    let laptop = env.path("laptop");
    let mut args = vec!["clone", "-q"];
    args.extend(here.clone_args());
    let (origin_url, laptop_arg) = (url(&origin), laptop.to_str().unwrap().to_owned());
    args.extend([origin_url.as_str(), laptop_arg.as_str()]);
    env.git(env.root.path(), &args);

    let remote_home = make_home(&env.path("remote-home"), "devbox");
    let remote_clone = clone_on_host(&env, &remote_home, &origin_url, there, "devbox-clone");
    (World::connect(env, laptop, remote_home, remote_clone, via), origin)
}

/// A clone on the host, on a branch of its own, saved as a project there.
fn clone_on_host(env: &TestEnv, home: &Path, url: &str, kind: Kind, name: &str) -> PathBuf {
    let dir = env.path(name);
    let mut args = vec!["clone", "-q"];
    args.extend(kind.clone_args());
    args.extend([url, dir.to_str().unwrap()]);
    env.git_as(home, env.root.path(), &args);
    env.git_as(home, &dir, &["checkout", "-q", "-b", "devbox-home"]);
    env.run_as(home, &dir, &["project", "save"]).success();
    dir
}

fn is_shallow(env: &TestEnv, home: &Path, dir: &Path) -> bool {
    env.git_as(home, dir, &["rev-parse", "--is-shallow-repository"]).trim() == "true"
}

/// `git fsck` finds nothing wrong, and `git log` walks the history.
#[track_caller]
fn assert_valid(env: &TestEnv, home: &Path, dir: &Path) {
    let out =
        env.command_with_home("git", dir, home).args(["fsck", "--no-dangling", "--no-progress"]).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "git fsck in {}: {said}", dir.display());
    assert!(!env.git_as(home, dir, &["log", "--format=%H %s"]).trim().is_empty());
}

over_each!(a_shallow_clone_on_the_host_takes_threads_and_gives_them_back);

fn a_shallow_clone_on_the_host_takes_threads_and_gives_them_back(via: Via) {
    let (w, origin) = world(via, Kind::Full, Kind::Shallow);
    let env = &w.env;
    assert!(is_shallow(env, &w.remote_home, &w.remote_clone));

    // Each side says what it is recognised by.
    let there = w.run_remote(&["project", "list", "--json"]).success().json();
    let project = &there["projects"][0];
    assert_eq!((project["fingerprint_kind"].as_str(), project["shallow"].as_bool()), (Some("url"), Some(true)));
    assert_eq!(project["fingerprint"].as_str(), origin.to_str(), "{there}");
    w.run(&["project", "save"]).success();
    let here = w.run(&["project", "list", "--json"]).success().json();
    let project = &here["projects"][0];
    assert_eq!((project["fingerprint_kind"].as_str(), project["shallow"].as_bool()), (Some("roots"), Some(false)));
    assert_eq!(project["fingerprint"].as_str().unwrap().len(), 64, "{here}");
    assert!(w.run(&["project", "list"]).success().stdout.contains("(roots "));

    let found = w.run(&["destinations", "--json"]).success().json();
    assert_eq!(found["destinations"][0]["host"], "devbox", "{found}");
    assert_eq!(found["destinations"][0]["project"].as_str(), w.remote_clone.to_str());

    w.run(&["thread", "new", "--title", "Shallow host", "--branch", "feat/shallow"]).success();
    every_kind_of_change(env, &w.laptop);
    let before = env.carried_facts(&w.laptop);
    let out = w.run(&["1", "devbox", "--yes", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_eq!(env.carried_facts(&remote_wt), before, "the host has exactly the thread's state");
    assert!(is_shallow(env, &w.remote_home, &w.remote_clone), "the host's clone stays shallow");
    assert_valid(env, &w.remote_home, &remote_wt);

    // Work on the host, then bring it back.
    w.git_remote(&remote_wt, &["add", "-A"]);
    w.git_remote(&remote_wt, &["commit", "-q", "-m", "work on the dev box"]);
    write(&remote_wt, b"a.txt", b"edited on the dev box\n");
    write(&remote_wt, b"devbox-untracked.txt", b"untracked there\n");
    let remote_state = env.carried_facts(&remote_wt);
    w.run(&["1", "local", "--json"]).success();
    assert_eq!(env.carried_facts(&w.laptop), remote_state, "this computer has exactly the host's state");
    assert_eq!(env.git(&w.laptop, &["log", "-1", "--format=%s"]).trim(), "work on the dev box");
    assert!(!is_shallow(env, &env.home, &w.laptop), "this computer's clone stays complete");
    assert_valid(env, &env.home, &w.laptop);

    // A new commit here; out again, the host's branch moves forward to it.
    env.git(&w.laptop, &["add", "-A"]);
    env.git(&w.laptop, &["commit", "-q", "-m", "third trip"]);
    let head = env.git(&w.laptop, &["rev-parse", "HEAD"]);
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    assert_eq!(PathBuf::from(out["owner_worktree"].as_str().unwrap()), remote_wt, "the thread's worktree is reused");
    assert_eq!(w.git_remote(&w.remote_clone, &["rev-parse", "refs/heads/feat/shallow"]), head);
    assert_eq!(env.carried_facts(&remote_wt), env.carried_facts(&w.laptop));
    assert!(is_shallow(env, &w.remote_home, &w.remote_clone));
    assert_valid(env, &w.remote_home, &w.remote_clone);
}

#[test]
fn a_shallow_clone_here_hands_off_to_a_full_clone_and_back() {
    let (w, _origin) = world(Via::Openssh, Kind::Shallow, Kind::Full);
    let env = &w.env;
    assert!(is_shallow(env, &env.home, &w.laptop));
    w.run(&["thread", "new", "--branch", "feat/from-shallow"]).success();
    env.git(&w.laptop, &["commit", "-q", "--allow-empty", "-m", "made on the shallow clone"]);
    every_kind_of_change(env, &w.laptop);
    let before = env.carried_facts(&w.laptop);
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_eq!(env.carried_facts(&remote_wt), before);
    assert!(!is_shallow(env, &w.remote_home, &w.remote_clone), "the host's clone stays complete");
    assert_valid(env, &w.remote_home, &w.remote_clone);

    w.git_remote(&remote_wt, &["add", "-A"]);
    w.git_remote(&remote_wt, &["commit", "-q", "-m", "work on the dev box"]);
    write(&remote_wt, b"b.txt", b"edited on the dev box\n");
    let remote_state = env.carried_facts(&remote_wt);
    w.run(&["1", "local"]).success();
    assert_eq!(env.carried_facts(&w.laptop), remote_state);
    assert!(is_shallow(env, &env.home, &w.laptop), "this computer's clone stays shallow");
    assert_valid(env, &env.home, &w.laptop);
}

#[test]
fn projects_that_do_not_match_say_why_and_histories_that_do_not_meet_are_refused() {
    let (w, origin) = world(Via::Openssh, Kind::Full, Kind::Shallow);
    let env = &w.env;
    let home = &w.remote_home;
    // The host's shallow clone came from another URL (a copy of the origin);
    // the host also has an unrelated repository and a project whose directory is gone.
    let copy = env.path("origin-copy");
    env.git(env.root.path(), &["clone", "-q", "--bare", origin.to_str().unwrap(), copy.to_str().unwrap()]);
    env.git_as(home, &w.remote_clone, &["remote", "set-url", "origin", &url(&copy)]);
    let unrelated = env.path("unrelated");
    std::fs::create_dir_all(&unrelated).unwrap();
    env.git_as(home, &unrelated, &["init", "-q"]);
    env.git_as(home, &unrelated, &["commit", "-q", "--allow-empty", "-m", "another project"]);
    env.run_as(home, &unrelated, &["project", "save"]).success();
    let gone = env.path("gone");
    env.git_as(home, env.root.path(), &["init", "-q", gone.to_str().unwrap()]);
    env.run_as(home, &gone, &["project", "save"]).success();
    std::fs::remove_dir_all(&gone).unwrap();

    w.run(&["thread", "new", "--branch", "feat/nomatch"]).success();
    let found = w.run(&["destinations", "--json"]).success().json();
    assert_eq!(found["destinations"].as_array().unwrap().len(), 0, "{found}");
    let before = w.everything();
    let out = w.run(&["1", "devbox"]);
    out.fails_with(3, "devbox: no saved project for this repository");
    let text = &out.stderr;
    for (dir, why) in [
        (&w.remote_clone, "different remotes"),
        (&unrelated, "a different repository"),
        (&gone, "the directory is gone"),
    ] {
        let line = text.lines().find(|l| l.contains(dir.to_str().unwrap()));
        assert!(line.is_some_and(|l| l.contains(why)), "{} should say {why:?}:\n{text}", dir.display());
    }
    assert!(text.contains(copy.to_str().unwrap()) && text.contains(origin.to_str().unwrap()), "remotes named:\n{text}");
    for saved in [&w.remote_clone, &unrelated] {
        assert!(
            !text.lines().any(|l| l.contains("project save") && l.contains(saved.to_str().unwrap())),
            "suggests saving {}, which is saved:\n{text}",
            saved.display()
        );
    }
    assert_eq!(w.everything(), before);

    // Same URL, but the host cloned after the origin moved on: this computer
    // has neither the commit the host's history starts at nor does the host have the thread's.
    env.git_as(home, &w.remote_clone, &["remote", "set-url", "origin", &url(&origin)]);
    commit_file(env, &origin, "later.txt", "after this computer cloned\n");
    let later = clone_on_host(env, home, &url(&origin), Kind::Shallow, "devbox-later");
    w.run_remote(&["project", "forget", w.remote_clone.to_str().unwrap()]).success();
    let everything = || w.everything() + &env.git_as(home, &later, &["for-each-ref"]);
    let before = everything();
    w.run(&["1", "devbox"]).fails_with(4, "do not meet").fails_with(4, "git fetch");
    assert_eq!(everything(), before, "refused before any push");
    let found = w.run(&["destinations", "--all", "--json"]).success().json();
    assert_eq!(found["destinations"][0]["reason"], "histories do not meet", "{found}");
    // Fetched, this computer knows where the host's history starts; the thread's commit is older.
    env.git(&w.laptop, &["fetch", "-q"]);
    let before = everything();
    w.run(&["1", "devbox"]).fails_with(4, "is older than that").fails_with(4, "--unshallow");
    assert_eq!(everything(), before, "refused before any push");
    // On the host's history now, but the thread's first snapshot was taken below the cut.
    env.git(&w.laptop, &["merge", "-q", "--ff-only", "origin/main"]);
    let before = everything();
    w.run(&["1", "devbox"]).fails_with(4, "earlier snapshot").fails_with(4, "is older than that");
    assert_eq!(everything(), before, "refused before any push");
    // A thread whose history is built on the host's goes through, and the host stays a valid shallow clone.
    let second = env.path("laptop-second");
    env.git(&w.laptop, &["worktree", "add", "-q", "-b", "feat/second", second.to_str().unwrap(), "origin/main"]);
    commit_file(env, &second, "second.txt", "made here, on top of the host's history\n");
    env.run(&second, &["thread", "new"]).success();
    write(&second, b"a.txt", b"edited\n");
    let state = env.carried_facts(&second);
    let out = env.run(&second, &["2", "devbox", "--json"]).success().json();
    assert_eq!(env.carried_facts(&PathBuf::from(out["owner_worktree"].as_str().unwrap())), state);
    assert!(is_shallow(env, home, &later));
    assert_valid(env, home, &later);
    // Deepened as the refusal says, the host takes the first thread too.
    env.git_as(home, &later, &["fetch", "-q", "--unshallow"]);
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    assert!(PathBuf::from(out["owner_worktree"].as_str().unwrap()).join("later.txt").exists());
    assert_valid(env, home, &later);
}

#[test]
fn a_partial_clone_on_the_host_fetches_from_its_promisor_or_says_it_cannot() {
    let (w, origin) = world(Via::Openssh, Kind::Full, Kind::Partial);
    let env = &w.env;
    let home = &w.remote_home;
    let missing_on_host = |branch: &str| {
        env.git_as(home, &w.remote_clone, &["rev-list", "--objects", "--missing=print", &format!("origin/{branch}")])
            .contains('?')
    };
    assert!(missing_on_host("feature") && missing_on_host("feature2"), "the host's clone is partial");

    // The origin is reachable from the host: what the host lacks comes from there.
    env.git(&w.laptop, &["checkout", "-q", "-b", "feature", "origin/feature"]);
    w.run(&["thread", "new", "--branch", "feature"]).success();
    write(&w.laptop, b"a.txt", b"edited\n");
    let before = env.carried_facts(&w.laptop);
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_eq!(env.carried_facts(&remote_wt), before);
    assert_eq!(std::fs::read(remote_wt.join("feature.txt")).unwrap(), b"only on feature\n");

    // Unreachable: refused in the plan, naming the source, before anything moves.
    let second = env.path("laptop-feature2");
    env.git(&w.laptop, &["worktree", "add", "-q", "-b", "feature2", second.to_str().unwrap(), "origin/feature2"]);
    env.run(&second, &["thread", "new"]).success();
    let away = env.path("origin-away");
    std::fs::rename(&origin, &away).unwrap();
    let before = w.everything();
    w.run(&["2", "devbox", "--dry-run"]).fails_with(4, "promisor").fails_with(4, &url(&origin));
    w.run(&["2", "devbox"]).fails_with(4, "cannot be reached");
    assert_eq!(w.everything(), before);
    std::fs::rename(&away, &origin).unwrap();
    let out = w.run(&["2", "devbox", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_eq!(std::fs::read(remote_wt.join("feature2.txt")).unwrap(), b"only on feature2\n");
    assert!(!missing_on_host("feature2"));
}

/// Clients of the first protocol send one fingerprint (the roots, or `url:`
/// and the sha256 of the normalised URL) and nothing else; they still find
/// full and shallow projects, and fields a helper does not know are ignored.
#[test]
fn first_protocol_requests_still_find_full_and_shallow_projects() {
    let env = TestEnv::new();
    let origin = make_origin(&env);
    let home = make_home(&env.path("remote-home"), "devbox");
    let shallow = clone_on_host(&env, &home, &url(&origin), Kind::Shallow, "shallow-clone");
    let full = clone_on_host(&env, &home, &url(&origin), Kind::Full, "full-clone");
    let listed = env.run_as(&home, &full, &["project", "list", "--json"]).success().json();
    let roots = listed["projects"][1]["fingerprint"].as_str().unwrap().to_owned();
    let digest = {
        let out = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(origin.to_str().unwrap().as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        format!("url:{}", String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap())
    };
    let requests = [
        serde_json::json!({ "op": "hello", "params": { "protocol": 1, "from_the_future": true } }),
        serde_json::json!({ "op": "find_project", "params": { "fingerprint": roots, "subdirectory": "" } }),
        serde_json::json!({ "op": "find_project", "params": { "fingerprint": digest, "subdirectory": "" } }),
        serde_json::json!({ "op": "find_project", "params": { "fingerprint": "0".repeat(64), "subdirectory": "" } }),
        // Hostile commit ids are refused, not trusted.
        serde_json::json!({ "op": "find_project", "params": { "urls": [], "heads": ["../../etc"], "shallow": [7] } }),
        serde_json::json!({ "op": "find_project", "params": { "urls": [], "heads": ["-o", "x".repeat(4000)] } }),
    ];
    let input: String = requests.iter().map(|r| format!("{r}\n")).collect();
    let mut helper = env.command_with_home(crate::harness::BIN, &home, &home);
    helper.args(["remote", "serve"]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = helper.stderr(std::process::Stdio::null()).spawn().unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let answers: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(answers[0]["result"]["protocol"], 1, "{answers:?}");
    assert_eq!(answers[1]["result"]["project"].as_str(), full.to_str(), "roots find the full clone: {answers:?}");
    assert_eq!(answers[2]["result"]["project"].as_str(), shallow.to_str(), "a URL finds the shallow one: {answers:?}");
    assert_eq!(answers[3]["ok"], false);
    assert_eq!(answers[3]["error"]["code"], "no_matching_project");
    assert_eq!(answers[3]["error"]["exit_code"], 3);
    for hostile in &answers[4..] {
        assert_eq!(hostile["error"]["code"], "bad_request", "{hostile}");
    }
    assert_eq!(answers.len(), requests.len(), "the helper answered everything and did not stop");
}
