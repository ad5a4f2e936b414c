//! The thread store as a user meets it: new, list, show, log, snapshot,
//! resolution of THREAD, notes readable by plain git, gc safety, locks,
//! discovery (-C, GIT_DIR), JSON output and errors.

use std::path::Path;

use crate::harness::{write, TestEnv};

fn new_thread(env: &TestEnv, repo: &Path, title: &str) -> serde_json::Value {
    env.run(repo, &["thread", "new", "--title", title, "--json"]).success().json()
}

#[test]
fn new_list_show_have_the_documented_json_shapes() {
    let env = TestEnv::new();
    let repo = env.committed_repo("repo");
    let thread = new_thread(&env, &repo, "Fix the parser");
    assert_eq!(thread["number"], 1);
    assert_eq!(thread["title"], "Fix the parser");
    assert_eq!(thread["branch"], "main");
    assert_eq!(thread["owner"], "local");
    assert_eq!(thread["owner_machine"], "laptop");
    assert_eq!(thread["status"], "idle");
    assert_eq!(thread["epoch"], 0);
    let uuid = thread["uuid"].as_str().unwrap().to_owned();
    assert_eq!(uuid.len(), 36);
    let snapshot = thread["snapshot"].as_str().unwrap().to_owned();
    assert_eq!(env.git(&repo, &["rev-parse", &format!("refs/codex-handoff/threads/{uuid}")]).trim(), snapshot);

    let second = new_thread(&env, &repo, "Second");
    assert_eq!(second["number"], 2);

    let list = env.run(&repo, &["thread", "list", "--json"]).success().json();
    let threads = list["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 2);
    assert_eq!(threads[0]["uuid"], uuid.as_str());
    for field in ["number", "uuid", "title", "branch", "owner", "owner_machine", "status", "epoch", "snapshot"] {
        assert!(threads[1].get(field).is_some(), "thread list lacks {field}");
    }

    // THREAD as a number, a full UUID and a 6-digit prefix.
    for spec in ["1", uuid.as_str(), &uuid[..6]] {
        let shown = env.run(&repo, &["thread", "show", spec, "--json"]).success().json();
        assert_eq!(shown["uuid"], uuid.as_str(), "thread show {spec}");
    }
    let human = env.run(&repo, &["thread", "show", "1"]).success().stdout.clone();
    assert!(human.contains("Fix the parser") && human.contains(&uuid), "{human}");
}

#[test]
fn detached_and_unborn_threads() {
    let env = TestEnv::new();
    let repo = env.committed_repo("repo");
    env.git(&repo, &["checkout", "-q", "--detach"]);
    let thread = new_thread(&env, &repo, "detached");
    assert!(thread["branch"].is_null(), "{thread}");

    let unborn = env.init_repo("unborn");
    write(&unborn, b"new.txt", b"x\n");
    let thread = new_thread(&env, &unborn, "unborn");
    assert_eq!(thread["branch"], "main");
    assert!(thread["head"].is_null(), "{thread}");
}

#[test]
fn unknown_and_bad_threads_are_clear_errors() {
    let env = TestEnv::new();
    let repo = env.committed_repo("repo");
    new_thread(&env, &repo, "t");
    env.run(&repo, &["thread", "show", "7"]).fails_with(3, "no thread 7");
    let out = env.run(&repo, &["thread", "show", "7", "--json"]);
    assert_eq!(out.code, 3);
    let doc = out.json();
    assert_eq!(doc["error"]["code"], "thread_not_found");
    assert!(doc["error"]["help"].as_str().unwrap().contains("thread list"));
    // Any other text is a title or a Codex thread name.
    env.run(&repo, &["thread", "show", "not-a-thread!"]).fails_with(3, "no thread not-a-thread!");
    env.run(&repo, &["thread", "show", "abc"]).fails_with(3, "no thread abc");
    assert_eq!(env.run(&repo, &["thread", "show", "t", "--json"]).success().json()["number"], 1, "by title");
    // Usage errors: exit 2, JSON under --json.
    env.run(&repo, &["thread", "show"]).fails_with(2, "THREAD");
    let out = env.run(&repo, &["thread", "show", "--json"]);
    assert_eq!(out.code, 2);
    assert_eq!(out.json()["error"]["code"], "usage");
}

#[test]
fn an_ambiguous_prefix_lists_the_candidates() {
    let env = TestEnv::new();
    let repo = env.committed_repo("repo");
    let thread = new_thread(&env, &repo, "first");
    let uuid = thread["uuid"].as_str().unwrap();
    let snapshot = thread["snapshot"].as_str().unwrap();
    // A second thread whose UUID shares the first 8 digits, made with plain git.
    let twin = format!("{}ffff-ffff-4fff-8fff-ffffffffffff", &uuid[..8]);
    let note = env.git(&repo, &["notes", "--ref", "codex-handoff", "show", snapshot]);
    let mut state: serde_json::Value = serde_json::from_str(&note).unwrap();
    state["uuid"] = twin.clone().into();
    state["number"] = 2.into();
    let tree = env.git(&repo, &["rev-parse", &format!("{snapshot}^{{tree}}")]);
    let commit = env.git(&repo, &["commit-tree", "-m", "twin", tree.trim()]);
    let commit = commit.trim();
    env.git(&repo, &["notes", "--ref", "codex-handoff", "add", "-m", &state.to_string(), commit]);
    env.git(&repo, &["update-ref", &format!("refs/codex-handoff/threads/{twin}"), commit]);

    let out = env.run(&repo, &["thread", "show", &uuid[..8]]);
    out.fails_with(2, "matches several threads").fails_with(2, uuid).fails_with(2, &twin);
    // More digits pick one.
    let shown = env.run(&repo, &["thread", "show", &uuid[..12], "--json"]).success().json();
    assert_eq!(shown["uuid"], uuid);
}

#[test]
fn snapshots_chain_and_survive_gc_and_are_readable_with_plain_git() {
    let env = TestEnv::new();
    let repo = env.committed_repo("repo");
    let first = new_thread(&env, &repo, "chain")["snapshot"].as_str().unwrap().to_owned();
    write(&repo, b"a.txt", b"two\n");
    let second = env.run(&repo, &["thread", "snapshot", "1", "--json"]).success().json();
    let second = second["snapshot"].as_str().unwrap().to_owned();
    write(&repo, b"b.txt", b"untracked\n");
    let third = env.run(&repo, &["thread", "snapshot", "1"]).success().stdout.trim().to_owned();
    assert_eq!(third.len(), 40, "thread snapshot prints the snapshot id: {third}");
    assert_ne!(first, second);
    assert_ne!(second, third);

    let log = env.run(&repo, &["thread", "log", "1", "--json"]).success().json();
    let entries: Vec<&str> =
        log["entries"].as_array().unwrap().iter().map(|e| e["snapshot"].as_str().unwrap()).collect();
    assert_eq!(entries, vec![third.as_str(), second.as_str(), first.as_str()]);

    // Plain git reads the state.
    let note = env.git(&repo, &["notes", "--ref", "codex-handoff", "show", &second]);
    let state: serde_json::Value = serde_json::from_str(&note).unwrap();
    assert_eq!(state["schema"], 3);
    assert_eq!(state["number"], 1);
    assert_eq!(state["owner_machine"], "laptop");
    let id = std::fs::read_to_string(env.home.join(".local/state/git-codex-handoff/machine-id")).unwrap();
    assert_eq!(state["owner_machine_id"], id.trim(), "ownership is recorded by machine id");

    // gc keeps every snapshot, and fsck finds nothing the store needs unreachable.
    env.git(&repo, &["gc", "-q", "--prune=now"]);
    for id in [&first, &second, &third] {
        env.git(&repo, &["cat-file", "-e", &format!("{id}^{{tree}}")]);
        env.git(&repo, &["notes", "--ref", "codex-handoff", "show", id]);
    }
    let fsck = env.git(&repo, &["fsck", "--unreachable", "--no-progress"]);
    for id in [&first, &second, &third] {
        assert!(!fsck.contains(id.as_str()), "fsck reports {id} unreachable: {fsck}");
    }
    let log = env.run(&repo, &["thread", "log", "1", "--json"]).success().json();
    assert_eq!(log["entries"].as_array().unwrap().len(), 3);
}

#[test]
fn new_with_branch_moves_head_only() {
    let env = TestEnv::new();
    let repo = env.committed_repo("repo");
    write(&repo, b"a.txt", b"dirty\n");
    env.git(&repo, &["add", "a.txt"]);
    write(&repo, b"u.txt", b"untracked\n");
    let status = env.git(&repo, &["status", "--porcelain=v2", "-z"]);
    let head = env.git(&repo, &["rev-parse", "HEAD"]);
    let thread = env.run(&repo, &["thread", "new", "--branch", "work/parser", "--json"]).success().json();
    assert_eq!(thread["branch"], "work/parser");
    assert_eq!(env.git(&repo, &["symbolic-ref", "HEAD"]).trim(), "refs/heads/work/parser");
    assert_eq!(env.git(&repo, &["rev-parse", "HEAD"]), head);
    assert_eq!(env.git(&repo, &["status", "--porcelain=v2", "-z"]), status);
    // A branch name git rejects is a usage error that changes nothing.
    env.run(&repo, &["thread", "new", "--branch", "bad..name"]).fails_with(2, "not a valid branch name");
    assert_eq!(env.git(&repo, &["symbolic-ref", "HEAD"]).trim(), "refs/heads/work/parser");
}

#[test]
fn a_busy_thread_is_refused_and_a_stale_lock_is_taken_over() {
    use std::os::fd::AsRawFd;
    let env = TestEnv::new();
    let repo = env.committed_repo("repo");
    let thread = new_thread(&env, &repo, "locked");
    let uuid = thread["uuid"].as_str().unwrap();
    let locks = repo.join(".git/codex-handoff/locks");
    std::fs::create_dir_all(&locks).unwrap();
    let lock = locks.join(format!("{uuid}.lock"));
    // Held by a live process (this test), as the tool holds it: an OS lock on the file.
    std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let held = std::fs::File::open(&lock).unwrap();
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    let before = env.git(&repo, &["for-each-ref"]);
    env.run(&repo, &["thread", "snapshot", "1"]).fails_with(4, "is busy").fails_with(4, "pid");
    assert_eq!(env.git(&repo, &["for-each-ref"]), before);
    // The same file, left by a process that is gone (nobody holds it), empty or not.
    drop(held);
    for left in [&b""[..], b"12345\n", b"garbage"] {
        std::fs::write(&lock, left).unwrap();
        env.run(&repo, &["thread", "snapshot", "1"]).success();
        assert!(!lock.exists(), "the lock is released afterwards");
    }
}

#[test]
fn repository_discovery_follows_git() {
    let env = TestEnv::new();
    let repo = env.committed_repo("repo");
    new_thread(&env, &repo, "found");
    std::fs::create_dir_all(repo.join("sub/dir")).unwrap();
    // From a subdirectory, with -C, with an alias, and with GIT_DIR/GIT_WORK_TREE.
    let sub = repo.join("sub/dir");
    let list = env.run(&sub, &["thread", "list", "--all", "--json"]).success().json();
    assert_eq!(list["threads"].as_array().unwrap().len(), 1);
    let mut cmd = env.command("git", env.root.path());
    cmd.args(["-C", repo.to_str().unwrap(), "codex-handoff", "thread", "list", "--json"]);
    let out = crate::harness::Run::from(cmd.output().unwrap());
    assert_eq!(out.success().json()["threads"].as_array().unwrap().len(), 1);
    env.git(&repo, &["config", "alias.ho", "codex-handoff"]);
    let mut cmd = env.command("git", &repo);
    cmd.args(["ho", "thread", "list", "--json"]);
    let out = crate::harness::Run::from(cmd.output().unwrap());
    assert_eq!(out.success().json()["threads"].as_array().unwrap().len(), 1);
    let mut cmd = env.command("git", env.root.path());
    cmd.args(["codex-handoff", "thread", "show", "1", "--json"])
        .env("GIT_DIR", repo.join(".git"))
        .env("GIT_WORK_TREE", &repo);
    let out = crate::harness::Run::from(cmd.output().unwrap());
    assert_eq!(out.success().json()["title"], "found");
    // Outside any repository: exit 3 with a hint.
    let outside = env.path("nowhere");
    std::fs::create_dir_all(&outside).unwrap();
    let mut cmd = env.command("git", &outside);
    cmd.args(["codex-handoff", "thread", "list"]).env("GIT_CEILING_DIRECTORIES", env.root.path());
    let out = crate::harness::Run::from(cmd.output().unwrap());
    out.fails_with(3, "not a git repository").fails_with(3, "git -C");
}

#[test]
fn a_thread_in_a_linked_worktree_restores_elsewhere() {
    let env = TestEnv::new();
    let repo = env.committed_repo("repo");
    let linked = env.path("linked");
    env.git(&repo, &["worktree", "add", "-q", "-b", "topic", linked.to_str().unwrap()]);
    write(&linked, b"a.txt", b"changed in the linked worktree\n");
    write(&linked, b"new.txt", b"new\n");
    env.git(&linked, &["add", "new.txt"]);
    let thread = new_thread(&env, &linked, "linked");
    assert_eq!(thread["branch"], "topic");
    assert_eq!(thread["worktree"], linked.to_str().unwrap());
    // topic is checked out in `linked`: restoring on it is refused, detached works.
    let target = env.path("restored");
    env.run(&repo, &["thread", "restore", "1", target.to_str().unwrap()])
        .fails_with(4, "branch topic is checked out in another worktree");
    assert!(!target.exists());
    env.run(&repo, &["thread", "restore", "1", target.to_str().unwrap(), "--detach"]).success();
    assert_eq!(
        env.git(&target, &["status", "--porcelain=v2", "-z"]),
        env.git(&linked, &["status", "--porcelain=v2", "-z"])
    );
}

/// `thread list` reads the notes once and keeps what it read beside the
/// repository; what it shows follows every change to the notes and refs,
/// however made, and a damaged or missing keep changes nothing.
#[test]
fn the_list_follows_notes_and_refs_changed_by_anyone() {
    let env = TestEnv::new();
    let repo = env.committed_repo("repo");
    for title in ["One", "Two", "Three"] {
        new_thread(&env, &repo, title);
    }
    let titles = || -> Vec<String> {
        let list = env.run(&repo, &["thread", "list", "--json"]).success().json();
        list["threads"].as_array().unwrap().iter().map(|t| t["title"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(titles(), ["One", "Two", "Three"]);
    // A note rewritten with plain git: the list shows it at once.
    let second = env.run(&repo, &["thread", "show", "2", "--json"]).success().json();
    let snapshot = second["snapshot"].as_str().unwrap();
    let note = env.git(&repo, &["notes", "--ref", "codex-handoff", "show", snapshot]);
    let file = env.path("note.json");
    std::fs::write(&file, note.replace("\"Two\"", "\"Two, renamed\"")).unwrap();
    env.git(&repo, &["notes", "--ref", "codex-handoff", "add", "-f", "-F", file.to_str().unwrap(), snapshot]);
    assert_eq!(titles(), ["One", "Two, renamed", "Three"]);
    assert_eq!(env.run(&repo, &["thread", "show", "2", "--json"]).success().json()["title"], "Two, renamed");
    // A thread's ref removed with plain git: gone from the list.
    let third = env.run(&repo, &["thread", "show", "3", "--json"]).success().json();
    env.git(&repo, &["update-ref", "-d", &format!("refs/codex-handoff/threads/{}", third["uuid"].as_str().unwrap())]);
    assert_eq!(titles(), ["One", "Two, renamed"]);
    // What was kept, damaged or gone.
    let kept = repo.join(".git/codex-handoff/threads.cache");
    assert!(kept.is_file(), "the list keeps what it read");
    std::fs::write(&kept, b"{\"notes\":\"not this\",\"notes_of\":{\"x\":").unwrap();
    assert_eq!(titles(), ["One", "Two, renamed"]);
    std::fs::remove_file(&kept).unwrap();
    assert_eq!(titles(), ["One", "Two, renamed"]);
    assert_eq!(new_thread(&env, &repo, "Four")["number"], 3);
    // Refs packed by git, then one of them moved on: shown by number as they are now.
    env.git(&repo, &["pack-refs", "--all"]);
    assert_eq!(titles(), ["One", "Two, renamed", "Four"]);
    let show = |n: &str| env.run(&repo, &["thread", "show", n, "--json"]).success().json();
    assert_eq!(show("3")["title"], "Four");
    let moved = env.run(&repo, &["thread", "snapshot", "3", "--json"]).success().json();
    assert_eq!(show("3")["snapshot"], moved["snapshot"]);
    assert_eq!(show("1")["title"], "One");
}

/// A snapshot of a worktree nobody touched since git refreshed its index is
/// answered without git status; whatever changed since is still found:
/// untracked files (ignored ones left out), an edit that kept the file's
/// size and modification time, a new executable bit, a file turned symlink.
#[test]
fn snapshots_of_a_resting_worktree_find_every_change() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let repo = env.init_repo("repo");
    write(&repo, b".gitignore", b"*.log\n");
    write(&repo, b"src/lib/a.txt", b"alpha\n");
    write(&repo, b"src/b.txt", b"bravo\n");
    write(&repo, b"c.txt", b"charlie\n");
    env.git(&repo, &["add", "."]);
    env.git(&repo, &["commit", "-q", "-m", "base"]);
    let rest = || {
        // Files older than the index by a second: none of them is racily clean.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        env.git(&repo, &["update-index", "-q", "--refresh"]);
    };
    // Directories unchanged for over a second are remembered as listed: their changes must still show.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    rest();
    env.run(&repo, &["thread", "new", "--title", "resting"]).success();
    let files_of = |snapshot: &serde_json::Value| -> String {
        let id = snapshot["snapshot"].as_str().unwrap();
        env.git(&repo, &["ls-tree", "-r", id])
    };
    let snap = || env.run(&repo, &["thread", "snapshot", "1", "--json"]).success().json();
    let committed = env.git(&repo, &["ls-tree", "-r", "HEAD"]);
    assert_eq!(files_of(&snap()), committed, "a clean worktree is its commit");

    write(&repo, b"src/lib/debug.log", b"ignored\n");
    std::fs::create_dir_all(repo.join("build/out")).unwrap();
    write(&repo, b"build/out/x.log", b"ignored too\n");
    assert_eq!(files_of(&snap()), committed, "ignored files stay out");

    write(&repo, b"src/lib/new.txt", b"untracked\n");
    assert!(files_of(&snap()).contains("src/lib/new.txt"), "an untracked file is in the snapshot");
    std::fs::remove_file(repo.join("src/lib/new.txt")).unwrap();
    rest();
    assert_eq!(files_of(&snap()), committed);

    // Same size, modification time put back: only its ctime and content tell.
    let a = repo.join("src/b.txt");
    let mtime = std::fs::metadata(&a).unwrap().modified().unwrap();
    write(&repo, b"src/b.txt", b"BRAVO\n");
    std::fs::OpenOptions::new().write(true).open(&a).unwrap().set_modified(mtime).unwrap();
    let files = files_of(&snap());
    let blob = env.git(&repo, &["rev-parse", &format!("{}:src/b.txt", snap()["snapshot"].as_str().unwrap())]);
    assert_ne!(files, committed);
    assert_eq!(env.git(&repo, &["cat-file", "blob", blob.trim()]), "BRAVO\n");
    env.git(&repo, &["checkout", "--", "src/b.txt"]);
    rest();
    assert_eq!(files_of(&snap()), committed);

    std::fs::set_permissions(repo.join("c.txt"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(files_of(&snap()).contains("100755 blob"), "the executable bit is in the snapshot");
    std::fs::set_permissions(repo.join("c.txt"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::remove_file(repo.join("src/lib/a.txt")).unwrap();
    std::os::unix::fs::symlink("../b.txt", repo.join("src/lib/a.txt")).unwrap();
    assert!(files_of(&snap()).contains("120000 blob"), "a file turned symlink is in the snapshot");
    std::fs::remove_file(repo.join("src/lib/a.txt")).unwrap();
    env.git(&repo, &["checkout", "--", "src/lib/a.txt"]);
    rest();
    assert_eq!(files_of(&snap()), committed);

    // Out of the index, still on disk: untracked now, though its directory did not change.
    env.git(&repo, &["rm", "-q", "--cached", "src/b.txt"]);
    let snapshot = snap();
    assert!(files_of(&snapshot).contains("src/b.txt"), "a file the index let go of is in the working files");
    let index = env.git(&repo, &["rev-parse", &format!("{}^2^{{tree}}", snapshot["snapshot"].as_str().unwrap())]);
    assert!(!env.git(&repo, &["ls-tree", "-r", index.trim()]).contains("src/b.txt"), "and not in the index");
}

/// The index a snapshot records is the tree `git write-tree` writes, also
/// when the index's cached trees are gone or partly invalid, in the orders
/// git sorts names by (`a.c` before `a/`, `a-b` before `a/`), with
/// executables and symbolic links.
#[test]
fn snapshots_record_the_index_tree_git_writes() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let repo = env.init_repo("repo");
    for path in ["a.c", "a/b.txt", "a-b", "a/z/deep.txt", "b/a.txt", "ab/x"] {
        write(&repo, path.as_bytes(), path.as_bytes());
    }
    std::fs::set_permissions(repo.join("a-b"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("a/b.txt", repo.join("link")).unwrap();
    env.git(&repo, &["add", "."]);
    env.git(&repo, &["commit", "-q", "-m", "base"]);
    env.run(&repo, &["thread", "new", "--title", "trees"]).success();
    let index_tree = |snapshot: &serde_json::Value| {
        let id = snapshot["snapshot"].as_str().unwrap();
        env.git(&repo, &["rev-parse", &format!("{id}^2^{{tree}}")])
    };
    let snap = || env.run(&repo, &["thread", "snapshot", "1", "--json"]).success().json();
    // No cached trees at all (a mixed reset drops them), then some invalid after `git add`.
    env.git(&repo, &["reset", "-q"]);
    let untouched = index_tree(&snap());
    assert_eq!(untouched, env.git(&repo, &["rev-parse", "HEAD^{tree}"]));
    write(&repo, b"a/z/new.txt", b"new");
    write(&repo, b"a/b.txt", b"changed");
    write(&repo, b"a0", b"after a/ in tree order");
    env.git(&repo, &["add", "a/z/new.txt", "a/b.txt", "a0"]);
    let staged = index_tree(&snap());
    let written_by_git = env.git(&repo, &["write-tree"]);
    assert_eq!(staged, written_by_git);
    assert_ne!(staged, untouched);
    assert!(env.git(&repo, &["ls-tree", "-r", staged.trim()]).contains("120000 blob"));
}

/// A file git recorded within the clock tick it was last written in
/// ("racily clean"), or whose recorded size git zeroed, is judged by its
/// content: here its stat data is made to match the new bytes exactly while
/// the index still names the old blob, and the snapshot holds the new bytes.
#[test]
fn racily_clean_files_are_judged_by_their_content() {
    let env = TestEnv::new();
    let repo = env.init_repo("repo");
    write(&repo, b"dir/a.txt", b"one\n");
    write(&repo, b"b.txt", b"bee\n");
    env.git(&repo, &["add", "."]);
    env.git(&repo, &["commit", "-q", "-m", "base"]);
    env.run(&repo, &["thread", "new", "--title", "racy"]).success();
    let snap_file = |path: &str| {
        let snapshot = env.run(&repo, &["thread", "snapshot", "1", "--json"]).success().json();
        env.git(&repo, &["show", &format!("{}:{path}", snapshot["snapshot"].as_str().unwrap())])
    };
    // Just written and added: racily clean, and clean.
    assert_eq!(snap_file("dir/a.txt"), "one\n");

    for zero_size in [false, true] {
        write(&repo, b"dir/a.txt", b"two\n");
        // Modified "later" than the index file is written: racy to git and to us, whatever the clock does.
        let file = repo.join("dir/a.txt");
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(30);
        std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_modified(later).unwrap();
        // The index keeps the blob of "one\n" with the stat data of "two\n".
        let index_path = repo.join(".git/index");
        let mut index = gix::index::File::at(&index_path, gix::hash::Kind::Sha1, false, Default::default()).unwrap();
        let meta = gix::index::fs::Metadata::from_path_no_follow(&file).unwrap();
        let position = index.entry_index_by_path(b"dir/a.txt".into()).unwrap();
        let entry = &mut index.entries_mut()[position];
        entry.stat = gix::index::entry::Stat::from_fs(&meta).unwrap();
        if zero_size {
            entry.stat.size = 0;
        }
        index.write(Default::default()).unwrap();
        assert_eq!(snap_file("dir/a.txt"), "two\n", "zero size: {zero_size}");
        let status = env.git(&repo, &["status", "--porcelain"]);
        assert_eq!(status, " M dir/a.txt\n", "git agrees");
        env.git(&repo, &["checkout", "--", "dir/a.txt"]);
    }
}

/// A snapshot answered in this process (no git status) holds exactly what
/// git would put in a tree of the working files, and the plan counts what
/// git status counts: an edit of the same size, a deleted file, a lost
/// executable bit, a link pointed elsewhere, a staged file edited again,
/// untracked files (an ignored one left out).
#[test]
fn in_process_snapshots_hold_what_git_would() {
    use std::os::unix::fs::PermissionsExt;
    let w = crate::handoff::World::new(crate::handoff::Via::Local);
    let (env, repo) = (&w.env, &w.laptop);
    write(repo, b".gitignore", b"*.log\n");
    write(repo, b"one.txt", b"one\n");
    write(repo, b"dir/two.txt", b"two\n");
    write(repo, b"dir/run.sh", b"#!/bin/sh\n");
    write(repo, b"gone.txt", b"gone\n");
    write(repo, b"dir/sub/three.txt", b"three\n");
    std::fs::set_permissions(repo.join("dir/run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("one.txt", repo.join("pointer")).unwrap();
    env.git(repo, &["add", "."]);
    env.git(repo, &["commit", "-q", "-m", "files"]);
    w.run(&["thread", "new", "--title", "quick"]).success();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.git(repo, &["update-index", "-q", "--refresh"]);

    write(repo, b"one.txt", b"ONE\n");
    std::fs::remove_file(repo.join("gone.txt")).unwrap();
    std::fs::set_permissions(repo.join("dir/run.sh"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::remove_file(repo.join("pointer")).unwrap();
    std::os::unix::fs::symlink("dir/two.txt", repo.join("pointer")).unwrap();
    write(repo, b"dir/two.txt", b"two, staged\n");
    env.git(repo, &["add", "dir/two.txt"]);
    write(repo, b"dir/two.txt", b"two, staged, then edited\n");
    write(repo, b"dir/sub/new.txt", b"untracked\n");
    write(repo, b"top.txt", b"untracked too\n");
    write(repo, b"dir/debug.log", b"ignored\n");

    let snapshot = w.run(&["thread", "snapshot", "1", "--json"]).success().json();
    let id = snapshot["snapshot"].as_str().unwrap();
    // What git makes of the same worktree: all of it added to a copy of the index.
    let copy = env.path("index-copy");
    std::fs::copy(repo.join(".git/index"), &copy).unwrap();
    let with_copy = |args: &[&str]| {
        let out = env.command("git", repo).args(args).env("GIT_INDEX_FILE", &copy).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    with_copy(&["add", "-A"]);
    assert_eq!(env.git(repo, &["rev-parse", &format!("{id}^{{tree}}")]), with_copy(&["write-tree"]));
    assert_eq!(env.git(repo, &["rev-parse", &format!("{id}^2^{{tree}}")]), env.git(repo, &["write-tree"]));

    let plan = w.run(&["1", "devbox", "--dry-run", "--json"]).success().json();
    let status = env.git(repo, &["status", "--porcelain=v2", "--untracked-files=all"]);
    let count = |pick: &dyn Fn(&str) -> bool| status.lines().filter(|l| pick(l)).count();
    let changes = &plan["plan"]["changes"];
    assert_eq!(changes["staged"], count(&|l| l.starts_with("1 ") && !l[2..].starts_with('.')), "{status}");
    assert_eq!(changes["unstaged"], count(&|l| l.starts_with("1 ") && !l[3..].starts_with('.')), "{status}");
    assert_eq!(changes["untracked"], 2, "{status}");
    assert_eq!(count(&|l| l.starts_with("? ")), 2);
}
