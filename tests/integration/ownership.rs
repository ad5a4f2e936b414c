//! One owner, always: machines told apart by their machine ids (not their
//! hostnames), git lock files a killed run left behind, handoffs from a
//! linked worktree, branches let go of by the worktrees a thread leaves,
//! and branch names that could not travel.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::handoff::{every_kind_of_change, Via, World};
use crate::harness::{os, write, TestEnv};

fn machine_id(home: &Path) -> String {
    std::fs::read_to_string(home.join(".local/state/git-codex-handoff/machine-id")).unwrap().trim().to_owned()
}

#[test]
fn two_machines_with_one_hostname_and_no_settings_hand_off_and_back() {
    let w = World::new(Via::Local);
    let env = &w.env;
    // Nothing set on either machine: both go by the one hostname, and neither has an id yet.
    for home in [&env.home, &w.remote_home] {
        env.git_as(home, home, &["config", "--global", "--unset", "codex-handoff.machine"]);
        std::fs::remove_dir_all(home.join(".local/state")).unwrap();
    }
    w.run(&["thread", "new", "--branch", "feat/same-name"]).success();
    every_kind_of_change(env, &w.laptop);
    let before = env.carried_facts(&w.laptop);
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_eq!(env.carried_facts(&remote_wt), before);

    let (laptop_id, devbox_id) = (machine_id(&env.home), machine_id(&w.remote_home));
    assert_ne!(laptop_id, devbox_id, "each machine made an id of its own on first use");
    let here = w.run(&["thread", "show", "1", "--json"]).success().json();
    let there = w.run_remote(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!(here["owner_machine"], there["owner_machine"], "one display name on both");
    assert_eq!((here["owner"].as_str(), here["owner_machine_id"].as_str()), (Some("devbox"), Some(devbox_id.as_str())));
    assert_eq!((there["owner"].as_str(), there["epoch"].as_u64()), (Some("local"), Some(1)));
    // The host's commit and files come back; before, this computer took itself for the owner.
    w.git_remote(&remote_wt, &["add", "-A"]);
    w.git_remote(&remote_wt, &["commit", "-q", "-m", "made on the host"]);
    write(&remote_wt, b"host-file.txt", b"written on the host\n");
    let state = env.carried_facts(&remote_wt);
    let back = w.run(&["1", "local", "--json"]).success().json();
    assert_eq!(back["already_there"], false);
    assert_eq!(back["epoch"], 2);
    assert_eq!(env.carried_facts(&w.laptop), state);
    assert_eq!(env.git(&w.laptop, &["log", "-1", "--format=%s"]).trim(), "made on the host");
    let here = w.run(&["thread", "show", "1", "--json"]).success().json();
    let there = w.run_remote(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!((here["owner"].as_str(), here["owner_machine_id"].as_str()), (Some("local"), Some(laptop_id.as_str())));
    assert_ne!(there["owner"], "local", "the host knows the thread left, though the owner has its name");
    assert_eq!(there["owner_machine_id"], laptop_id.as_str());
}

#[test]
fn a_host_that_answers_with_this_computers_machine_id_is_refused() {
    let w = World::new(Via::Local);
    w.run(&["thread", "new", "--branch", "feat/twin"]).success();
    // A copied home directory or a synced setting: the host claims this computer's id.
    w.git_remote(&w.remote_home, &["config", "--global", "codex-handoff.machineId", &machine_id(&w.env.home)]);
    let before = w.everything();
    w.run(&["1", "devbox"])
        .fails_with(4, "answered with this computer's own machine id")
        .fails_with(4, "machine-id")
        .fails_with(4, "codex-handoff.machineId");
    w.run(&["host", "check", "devbox"]).fails_with(4, "own machine id");
    assert_eq!(w.everything(), before, "nothing changed on either side");
    // Reset on the host, the handoff goes through.
    w.git_remote(&w.remote_home, &["config", "--global", "--unset", "codex-handoff.machineId"]);
    w.run(&["1", "devbox"]).success();
}

/// A lock file as a killed git (or gix) leaves it: there, and older than any live update.
fn stale_lock(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"").unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(60)).unwrap();
}

#[test]
fn git_lock_files_a_killed_run_left_are_removed_with_a_message() {
    let w = World::new(Via::Local);
    w.run(&["thread", "new", "--branch", "feat/locks"]).success();
    let uuid = w.run(&["thread", "show", "1", "--json"]).success().json()["uuid"].as_str().unwrap().to_owned();
    let left = [
        w.remote_clone.join(".git/packed-refs.lock"),
        w.laptop.join(".git/packed-refs.lock"),
        w.remote_clone.join(format!(".git/refs/codex-handoff/incoming/{uuid}/snapshot.lock")),
    ];
    for lock in &left {
        stale_lock(lock);
    }
    // git itself is blocked by them.
    let blocked = w.env.git_with_env(&w.laptop, &["update-ref", "-d", "refs/heads/feat/locks-nothing"], &[]);
    assert!(!blocked.status.success());
    let out = w.run(&["1", "devbox", "--progress"]);
    out.success();
    for lock in &left {
        assert!(!lock.exists(), "{} is still there", lock.display());
        assert!(
            out.stderr.contains(&lock.display().to_string()),
            "the removal of {} is reported:\n{}",
            lock.display(),
            out.stderr
        );
    }
    assert!(out.stderr.contains("removed the stale lock file"), "{}", out.stderr);
    // And on the way back, on both sides.
    stale_lock(&w.remote_clone.join(".git/packed-refs.lock"));
    stale_lock(&w.laptop.join(".git/refs/notes/codex-handoff.lock"));
    w.run(&["1", "local"]).success();
    assert!(!w.remote_clone.join(".git/packed-refs.lock").exists());
    assert!(!w.laptop.join(".git/refs/notes/codex-handoff.lock").exists());
}

#[test]
fn the_first_handoff_from_a_linked_worktree_works() {
    let w = World::new(Via::Local);
    let linked = w.env.path("laptop-linked");
    w.env.git(&w.laptop, &["worktree", "add", "-q", "-b", "linked", linked.to_str().unwrap()]);
    w.env.run(&linked, &["thread", "new"]).success();
    write(&linked, b"from-the-linked-worktree.txt", b"here\n");
    let before = w.env.carried_facts(&linked);
    // Nothing was computed before: this is the repository's first handoff.
    assert!(w.env.git_with_env(&w.laptop, &["config", "codex-handoff.fingerprint"], &[]).stdout.is_empty());
    let out = w.env.run(&linked, &["1", "devbox", "--json"]).success().json();
    assert_eq!(w.env.carried_facts(&PathBuf::from(out["owner_worktree"].as_str().unwrap())), before);
    assert_eq!(out["branch"], "linked");
}

fn is_detached(w: &World, home: &Path, worktree: &Path) -> bool {
    let mut cmd = w.env.command_with_home("git", worktree, home);
    cmd.args(["symbolic-ref", "-q", "HEAD"]);
    cmd.status().unwrap().code() == Some(1)
}

#[test]
fn a_worktree_the_thread_leaves_lets_go_of_the_branch_and_it_is_taken_again_on_return() {
    let w = World::new(Via::Local);
    let env = &w.env;
    w.run(&["thread", "new", "--branch", "feat/free"]).success();
    write(&w.laptop, b"a.txt", b"the thread's edit\n");
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    w.git_remote(&remote_wt, &["add", "-A"]);
    w.git_remote(&remote_wt, &["commit", "-q", "-m", "on the host"]);
    write(&remote_wt, b"b.txt", b"unstaged on the host\n");
    let host_state = env.carried_facts(&remote_wt);
    let tip = w.git_remote(&remote_wt, &["rev-parse", "HEAD"]);
    w.run(&["1", "local"]).success();

    // The host's worktree: detached at the same commit, files and index as they were.
    assert!(is_detached(&w, &w.remote_home, &remote_wt), "the host's worktree still holds the branch");
    assert_eq!(w.git_remote(&remote_wt, &["rev-parse", "HEAD"]), tip);
    assert_eq!(env.carried_facts(&remote_wt), host_state);
    // So the host's own clone may check the branch out (and leave it again).
    w.git_remote(&w.remote_clone, &["checkout", "-q", "feat/free"]);
    w.git_remote(&w.remote_clone, &["checkout", "-q", "devbox-home"]);
    // This computer's own worktree (the user's, not made by a handoff) keeps its branch.
    assert_eq!(env.git(&w.laptop, &["symbolic-ref", "HEAD"]).trim(), "refs/heads/feat/free");

    // The next trip reuses the host's worktree and takes the branch again.
    write(&w.laptop, b"c.txt", b"third trip\n");
    let before = env.carried_facts(&w.laptop);
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    assert_eq!(PathBuf::from(out["owner_worktree"].as_str().unwrap()), remote_wt);
    assert_eq!(w.git_remote(&remote_wt, &["symbolic-ref", "HEAD"]).trim(), "refs/heads/feat/free");
    assert_eq!(env.carried_facts(&remote_wt), before);
    assert!(!is_detached(&w, &env.home, &w.laptop), "the user's own worktree is never detached");

    // A worktree a handoff made on this computer lets go too when the thread leaves it.
    write(&w.laptop, b"not-the-threads.txt", b"changed while away\n");
    let back = w.run(&["1", "local", "--branch", "feat/free-2", "--json"]).success().json();
    let made_here = PathBuf::from(back["owner_worktree"].as_str().unwrap());
    assert!(made_here.starts_with(env.home.join(".codex/worktrees")), "{}", made_here.display());
    w.run(&["1", "devbox"]).success();
    assert!(is_detached(&w, &env.home, &made_here), "the worktree made here let go of feat/free-2");
    // Back again into it: it takes the branch again.
    let back = w.run(&["1", "local", "--json"]).success().json();
    assert_eq!(PathBuf::from(back["owner_worktree"].as_str().unwrap()), made_here);
    assert_eq!(env.git(&made_here, &["symbolic-ref", "HEAD"]).trim(), "refs/heads/feat/free-2");
    w.run(&["1", "devbox"]).success();
    let checked_out = env.git(&w.laptop, &["worktree", "list", "--porcelain"]);
    assert!(!checked_out.contains("branch refs/heads/feat/free-2\n"), "{checked_out}");
}

#[test]
fn branch_names_git_refuses_or_that_cannot_travel_change_nothing() {
    let env = TestEnv::new();
    let repo = env.committed_repo("repo");
    let refs = env.git(&repo, &["for-each-ref"]);
    for bad in ["HEAD", "@{-1}", "a..b", "x.lock", "-x", "with space"] {
        env.run(&repo, &["thread", "new", &format!("--branch={bad}")]).fails_with(2, "not a valid branch name");
        env.run(&repo, &["1", "devbox", &format!("--branch={bad}")]).fails_with(2, "not a valid branch name");
    }
    assert_eq!(env.git(&repo, &["for-each-ref"]), refs, "no branch and no thread was made");
    assert_eq!(env.git(&repo, &["symbolic-ref", "HEAD"]).trim(), "refs/heads/main");

    // A branch whose name is not UTF-8 would arrive renamed: refused before anything changes.
    let mut checkout = env.command("git", &repo);
    checkout.args(["checkout", "-q", "-b"]).arg(os(b"lat\xffn"));
    assert!(checkout.status().unwrap().success());
    env.run(&repo, &["thread", "new"]).fails_with(4, "not valid UTF-8").fails_with(4, "git branch -m");
    assert!(!env.git(&repo, &["for-each-ref"]).contains("codex-handoff"));
}

#[test]
fn a_thread_whose_branch_became_non_utf8_is_refused_before_anything_changes() {
    let w = World::new(Via::Local);
    w.run(&["thread", "new", "--branch", "latin"]).success();
    let mut rename = w.env.command("git", &w.laptop);
    rename.args(["branch", "-m", "latin"]).arg(os(b"lat\xffn"));
    assert!(rename.status().unwrap().success());
    let before = w.everything();
    w.run(&["1", "devbox"]).fails_with(4, "not valid UTF-8");
    assert_eq!(w.everything(), before);
}

#[test]
fn a_thread_noted_before_machine_ids_still_travels() {
    let w = World::new(Via::Local);
    let env = &w.env;
    w.run(&["thread", "new", "--branch", "feat/old-note"]).success();
    // Its note as the previous schema wrote it: machines named only by their display names.
    let snapshot = w.run(&["thread", "show", "1", "--json"]).success().json()["snapshot"].as_str().unwrap().to_owned();
    let mut state: serde_json::Value =
        serde_json::from_str(&env.git(&w.laptop, &["notes", "--ref", "codex-handoff", "show", &snapshot])).unwrap();
    let fields = state.as_object_mut().unwrap();
    fields.remove("owner_machine_id");
    fields.remove("source_machine_id");
    fields.insert("schema".into(), 1.into());
    let old_note = env.path("old-note.json");
    std::fs::write(&old_note, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    env.git(&w.laptop, &["notes", "--ref", "codex-handoff", "add", "-f", "-F", old_note.to_str().unwrap(), &snapshot]);
    let shown = w.run(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!((shown["owner"].as_str(), shown["owner_machine_id"].as_str()), (Some("local"), None));

    write(&w.laptop, b"a.txt", b"edited under the old note\n");
    let before = env.carried_facts(&w.laptop);
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_eq!(env.carried_facts(&remote_wt), before);
    let here = w.run(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!(here["owner"], "devbox");
    assert_eq!(here["owner_machine_id"], machine_id(&w.remote_home).as_str(), "the new note records the id");
    write(&remote_wt, b"b.txt", b"from the host\n");
    let state = env.carried_facts(&remote_wt);
    w.run(&["1", "local"]).success();
    assert_eq!(env.carried_facts(&w.laptop), state, "the untouched original worktree is reused");
}

/// A client of the first protocol (no machine ids) may still find projects,
/// but is not handed a thread: it would record owners by hostname.
#[test]
fn a_client_without_machine_ids_is_not_handed_a_thread() {
    let w = World::new(Via::Local);
    let repo =
        w.env.git_as(&w.remote_home, &w.remote_clone, &["rev-parse", "--path-format=absolute", "--git-common-dir"]);
    let uuid = "0b5c6f0e-3c1e-4a57-9a7e-4f3f1f8a9b10";
    let requests = [
        serde_json::json!({ "op": "hello", "params": { "protocol": 1 } }),
        serde_json::json!({ "op": "begin", "params": { "repo": repo.trim(), "uuid": uuid } }),
        serde_json::json!({ "op": "hello", "params": { "protocol": 2 } }),
        serde_json::json!({ "op": "begin", "params": { "repo": repo.trim(), "uuid": uuid } }),
    ];
    let input: String = requests.iter().map(|r| format!("{r}\n")).collect();
    let mut helper = w.env.command_with_home(crate::harness::BIN, &w.remote_home, &w.remote_home);
    helper.args(["remote", "serve"]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = helper.stderr(std::process::Stdio::null()).spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let answers: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(answers[0]["result"]["protocol"], 1);
    assert_eq!(answers[0]["result"]["machine_id"], machine_id(&w.remote_home).as_str());
    assert_eq!(answers[1]["error"]["code"], "client_incompatible", "{answers:?}");
    assert_eq!(answers[1]["error"]["exit_code"], 6);
    assert_eq!(answers[3]["ok"], true, "a client with machine ids may begin: {answers:?}");
}
