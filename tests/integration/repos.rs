//! Real repositories: submodules (nested, moved, dirty), Git LFS, sparse
//! checkouts and line-ending conversion travel exactly both ways, or are
//! refused before anything moves; a restore that fails verification leaves
//! nothing behind.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::handoff::{over_each, Via, World};
use crate::harness::{write, FileFact, TestEnv};

/// Recent git refuses `git submodule add` of a local path without it.
pub const FILE_PROTOCOL: &str = "protocol.file.allow=always";

over_each!(submodules_travel_exactly_both_ways);

/// What a user sees of a worktree and of every submodule in it.
#[derive(Debug, PartialEq, Eq)]
pub struct DeepFacts {
    /// `git submodule status --recursive`, without the describe column.
    submodules: Vec<String>,
    /// Per repository (top first): status, index, HEAD and branch.
    repos: Vec<(String, String, String, String, String)>,
    /// Every path but `.git` (at any depth), with bytes, modes, link targets.
    files: BTreeMap<Vec<u8>, FileFact>,
}

pub fn deep_facts(env: &TestEnv, home: &Path, dir: &Path) -> DeepFacts {
    let status = env.git_as(home, dir, &["submodule", "status", "--recursive"]);
    let submodules: Vec<String> =
        status.lines().map(|l| l.split(' ').filter(|w| !w.is_empty()).take(2).collect::<Vec<_>>().join(" ")).collect();
    let mut paths = vec![String::new()];
    paths.extend(status.lines().filter_map(|l| l.get(1..)?.split(' ').nth(1).map(str::to_owned)));
    let repos = paths
        .into_iter()
        .map(|p| {
            let repo = dir.join(&p);
            let out = env.command_with_home("git", &repo, home).args(["symbolic-ref", "-q", "HEAD"]).output().unwrap();
            (
                p.clone(),
                env.git_as(home, &repo, &["status", "--porcelain=v2", "--untracked-files=all", "-z"]),
                env.git_as(home, &repo, &["ls-files", "-s", "-z"]),
                env.git_as(home, &repo, &["rev-parse", "HEAD"]),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        })
        .collect();
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    DeepFacts { submodules, repos, files }
}

impl DeepFacts {
    /// One line per fact, for a readable difference.
    fn lines(&self) -> String {
        let mut out: Vec<String> = self.submodules.iter().map(|s| format!("submodule {s}")).collect();
        for (path, status, index, head, branch) in &self.repos {
            out.push(format!("[{path}] status {status:?}"));
            out.push(format!("[{path}] index {index:?}"));
            out.push(format!("[{path}] HEAD {} {}", head.trim(), branch.trim()));
        }
        for (path, fact) in &self.files {
            out.push(format!("{}: {:?}", String::from_utf8_lossy(path), fact));
        }
        out.join("\n")
    }
}

/// Assert two worktrees look the same to a user, showing only what differs.
#[track_caller]
fn assert_same(got: &DeepFacts, want: &DeepFacts, what: &str) {
    crate::harness::assert_unchanged(&want.lines(), &got.lines(), what);
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<Vec<u8>, FileFact>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n == ".git") {
            continue;
        }
        let rel = path.strip_prefix(root).unwrap().as_os_str().as_bytes().to_vec();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            out.insert(
                rel,
                FileFact::Symlink { target: std::fs::read_link(&path).unwrap().as_os_str().as_bytes().to_vec() },
            );
        } else if meta.is_dir() {
            out.insert(rel, FileFact::Dir);
            walk(root, &path, out);
        } else {
            let executable = meta.permissions().mode() & 0o111 != 0;
            out.insert(rel, FileFact::File { bytes: std::fs::read(&path).unwrap(), executable });
        }
    }
}

fn commit_all(env: &TestEnv, repo: &Path, message: &str) {
    env.git(repo, &["add", "-A"]);
    env.git(repo, &["commit", "-q", "-m", message]);
}

/// The laptop's repository gets `vendor/lib` (which holds `deep/inner`) and `vendor/other`.
pub fn with_submodules(env: &TestEnv, laptop: &Path) {
    let inner = env.committed_repo("origins/inner");
    let lib = env.committed_repo("origins/lib");
    env.git(&lib, &["-c", FILE_PROTOCOL, "submodule", "add", "-q", inner.to_str().unwrap(), "deep/inner"]);
    commit_all(env, &lib, "lib holds inner");
    let other = env.committed_repo("origins/other");
    env.git(laptop, &["-c", FILE_PROTOCOL, "submodule", "add", "-q", lib.to_str().unwrap(), "vendor/lib"]);
    env.git(laptop, &["-c", FILE_PROTOCOL, "submodule", "add", "-q", other.to_str().unwrap(), "vendor/other"]);
    env.git(laptop, &["-c", FILE_PROTOCOL, "submodule", "update", "--init", "--recursive", "-q"]);
    commit_all(env, laptop, "vendor lib and other");
}

fn submodules_travel_exactly_both_ways(via: Via) {
    let w = World::with_laptop(via, with_submodules);
    let env = &w.env;
    // The host's clone has vendor/lib (and inner) from its origin, but not vendor/other yet.
    w.git_remote(
        &w.remote_clone,
        &["-c", FILE_PROTOCOL, "submodule", "update", "--init", "--recursive", "-q", "vendor/lib"],
    );
    w.run(&["thread", "new", "--title", "Submodules", "--branch", "feat/sub"]).success();

    // A commit that exists only on this computer, and uncommitted work at every level.
    let lib = w.laptop.join("vendor/lib");
    write(&lib, b"lib-only-here.txt", b"committed in the submodule, here only\n");
    commit_all(env, &lib, "a commit only the laptop has");
    write(&lib, b"a.txt", b"edited in the submodule\n");
    write(&lib, b"staged.txt", b"staged in the submodule\n");
    env.git(&lib, &["add", "staged.txt"]);
    write(&lib, b"untracked.txt", b"untracked in the submodule\n");
    write(&lib.join("deep/inner"), b"a.txt", b"edited in the nested submodule\n");
    write(&w.laptop, b"a.txt", b"edited at the top\n");
    let before = deep_facts(env, &env.home, &w.laptop);

    // vendor/other is not initialised on the host: refused up front, nothing anywhere changes.
    let everything = w.everything();
    w.run(&["1", "devbox"])
        .fails_with(4, "submodule vendor/other is not initialised")
        .fails_with(4, "submodule update --init");
    crate::harness::assert_unchanged(&everything, &w.everything(), "a refused handoff");

    w.git_remote(&w.remote_clone, &["-c", FILE_PROTOCOL, "submodule", "update", "--init", "-q", "vendor/other"]);
    // The plan names the submodule change as such.
    let out = w.run(&["1", "devbox", "--dry-run", "--json"]);
    let plan = out.success().json()["plan"].clone();
    let subs = plan["changes"]["submodules"].as_array().expect("submodule changes in the plan").clone();
    let lib_change = subs.iter().find(|s| s["path"] == "vendor/lib").expect("vendor/lib in the plan");
    assert_eq!((lib_change["new_commits"].as_u64(), lib_change["unstaged"].as_u64()), (Some(1), Some(1)), "{plan}");
    assert_eq!((lib_change["staged"].as_u64(), lib_change["untracked"].as_u64()), (Some(1), Some(1)), "{plan}");
    assert!(subs.iter().any(|s| s["path"] == "vendor/lib/deep/inner"), "{plan}");
    assert_eq!(plan["changes"]["unstaged"], 1, "only a.txt: a submodule is not a directory of bytes: {plan}");
    assert!(out.stderr.contains("vendor/lib: 1 new commit"), "{}", out.stderr);

    let connections = w.connections();
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    if let Some(before) = connections {
        assert_eq!(w.connections().unwrap(), before + 1, "submodules travel over the handoff's one connection");
    }
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_same(&deep_facts(env, &w.remote_home, &remote_wt), &before, "the host's copy of the thread");
    assert_same(&deep_facts(env, &env.home, &w.laptop), &before, "the handoff, here,");
    let host_lib = remote_wt.join("vendor/lib");
    assert_eq!(w.git_remote(&host_lib, &["log", "-1", "--format=%s"]).trim(), "a commit only the laptop has");
    // The host's submodule clone points at the submodule's own origin, not at a local copy.
    let origin = w.git_remote(&host_lib, &["config", "remote.origin.url"]);
    assert_eq!(origin.trim(), env.path("origins/lib").to_str().unwrap());
    assert!(!w.git_remote(&w.remote_clone, &["for-each-ref", "refs/codex-handoff/incoming/"]).contains("incoming"));

    // Work on the host: a commit only the host has, and new edits, in the submodule.
    write(&host_lib, b"host-only.txt", b"committed on the host\n");
    w.git_remote(&host_lib, &["add", "-A"]);
    w.git_remote(&host_lib, &["commit", "-q", "-m", "a commit only the host has"]);
    write(&host_lib, b"a.txt", b"edited in the submodule on the host\n");
    write(&host_lib.join("deep/inner"), b"host-untracked.txt", b"new on the host\n");
    let host_state = deep_facts(env, &w.remote_home, &remote_wt);

    let connections = w.connections();
    let out = w.run(&["1", "local", "--json"]).success().json();
    if let Some(before) = connections {
        assert_eq!(w.connections().unwrap(), before + 1, "one connection for the hand-back too");
    }
    assert_eq!(PathBuf::from(out["owner_worktree"].as_str().unwrap()), w.laptop, "the original worktree is reused");
    assert_same(&deep_facts(env, &env.home, &w.laptop), &host_state, "the hand-back");
    assert_eq!(env.git(&lib, &["log", "-1", "--format=%s"]).trim(), "a commit only the host has");

    // And out again, into the host's worktree it left.
    write(&lib.join("deep/inner"), b"third.txt", b"third trip\n");
    let before = deep_facts(env, &env.home, &w.laptop);
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    assert_eq!(PathBuf::from(out["owner_worktree"].as_str().unwrap()), remote_wt);
    assert_same(&deep_facts(env, &w.remote_home, &remote_wt), &before, "the second handoff");
}

#[cfg(feature = "test-faults")]
over_each!(a_failed_verification_leaves_nothing_behind);

/// Everything of one machine a failed handoff could leave behind: refs (the
/// module repositories' too), worktrees, branches, the files of its clone
/// and of its worktree root. A departing machine pins the submodule
/// snapshots it took (chained to the earlier ones): those refs are left out.
fn one_side(env: &TestEnv, home: &Path, clone: &Path) -> String {
    let mut out = String::new();
    let mut git_dirs = vec![clone.join(".git")];
    let mut pending = vec![clone.join(".git/modules")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.join("HEAD").is_file() {
                pending.push(path.join("modules"));
                git_dirs.push(path);
            } else if path.is_dir() {
                pending.push(path);
            }
        }
    }
    for (n, git_dir) in git_dirs.iter().enumerate() {
        let refs = env.git_as(home, git_dir, &["for-each-ref", "--format=%(refname) %(objectname)"]);
        let refs: String = refs
            .lines()
            .filter(|l| n == 0 || !l.starts_with("refs/codex-handoff/threads/"))
            .map(|l| format!("{l}\n"))
            .collect();
        out += &format!("{}:\n{refs}", git_dir.display());
    }
    out += &env.git_as(home, clone, &["worktree", "list", "--porcelain"]);
    out += &deep_facts(env, home, clone).lines();
    let worktrees = home.join(".codex/worktrees");
    if worktrees.exists() {
        out += &format!("\n{:?}", crate::harness::files(&worktrees).keys().collect::<Vec<_>>());
    }
    out
}

#[cfg(feature = "test-faults")]
fn a_failed_verification_leaves_nothing_behind(via: Via) {
    let w = World::with_laptop(via, with_submodules);
    let env = &w.env;
    w.git_remote(&w.remote_clone, &["-c", FILE_PROTOCOL, "submodule", "update", "--init", "--recursive", "-q"]);
    w.run(&["thread", "new", "--branch", "feat/verify"]).success();
    write(&w.laptop, b"a.txt", b"the thread's edit\n");
    write(&w.laptop.join("vendor/lib"), b"a.txt", b"the thread's edit in the submodule\n");

    // To the host: its restore differs, so nothing of it stays there.
    let host_before = one_side(env, &w.remote_home, &w.remote_clone);
    let here_before = one_side(env, &env.home, &w.laptop);
    w.git_remote(&w.remote_home, &["config", "--global", "codex-handoff.testFault", "verify-mismatch"]);
    let out = w.run(&["1", "devbox"]);
    out.fails_with(1, "does not match snapshot").fails_with(1, "codex-handoff-fault.txt");
    assert!(out.stderr.contains("were removed"), "{}", out.stderr);
    crate::harness::assert_unchanged(
        &host_before,
        &one_side(env, &w.remote_home, &w.remote_clone),
        "a failed restore on the host",
    );
    crate::harness::assert_unchanged(&here_before, &one_side(env, &env.home, &w.laptop), "a failed handoff, here,");
    let here = w.run(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!((here["owner"].as_str(), here["epoch"].as_u64()), (Some("local"), Some(0)), "the thread stays here");

    w.git_remote(&w.remote_home, &["config", "--global", "--unset", "codex-handoff.testFault"]);
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    write(&remote_wt, b"b.txt", b"edited on the host\n");

    // Back into the original worktree, which this computer then puts back as it was.
    env.git(&w.laptop, &["config", "--global", "codex-handoff.testFault", "verify-mismatch"]);
    let here_before = one_side(env, &env.home, &w.laptop);
    w.run(&["1", "local"]).fails_with(1, "codex-handoff-fault.txt").fails_with(1, "back as the thread had left it");
    crate::harness::assert_unchanged(&here_before, &one_side(env, &env.home, &w.laptop), "a failed hand-back");
    let here = w.run(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!((here["owner"].as_str(), here["epoch"].as_u64()), (Some("devbox"), Some(1)), "the host keeps it");

    // Back into a new worktree on a new branch: both are removed again.
    write(&w.laptop, b"local-only.txt", b"not the thread's\n");
    let here_before = one_side(env, &env.home, &w.laptop);
    w.run(&["1", "local", "--branch", "feat/verify-2"])
        .fails_with(1, "codex-handoff-fault.txt")
        .fails_with(1, "were removed");
    crate::harness::assert_unchanged(
        &here_before,
        &one_side(env, &env.home, &w.laptop),
        "a failed hand-back into a new worktree",
    );

    env.git(&w.laptop, &["config", "--global", "--unset", "codex-handoff.testFault"]);
    w.run(&["1", "local", "--branch", "feat/verify-2"]).success();
}

over_each!(lfs_files_arrive_as_the_user_sees_them);

/// A URL on loopback where nothing listens: git-lfs reaching for its server fails at once.
fn dead_lfs_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}/nothing-here.git/info/lfs")
}

/// The laptop's repository gets Git LFS files (under `assets/`) whose server is unreachable.
pub fn with_lfs(env: &TestEnv, laptop: &Path) {
    env.git(laptop, &["lfs", "install", "--skip-repo"]);
    write(laptop, b".lfsconfig", format!("[lfs]\n\turl = {}\n", dead_lfs_url()).as_bytes());
    env.git(laptop, &["lfs", "track", "assets/**"]);
    write(laptop, b"assets/big.bin", &crate::harness::Rng::new(7).bytes(200_000, true));
    write(laptop, b"assets/old.bin", b"an LFS file whose content this computer will not have\n");
    commit_all(env, laptop, "LFS files");
}

pub fn lfs_objects(clone: &Path) -> Vec<String> {
    let mut found: Vec<String> = crate::harness::files(&clone.join(".git/lfs/objects"))
        .into_iter()
        .filter(|(_, f)| matches!(f, FileFact::File { .. }))
        .map(|(p, _)| String::from_utf8_lossy(&p).rsplit('/').next().unwrap().to_owned())
        .collect();
    found.sort();
    found
}

fn lfs_files_arrive_as_the_user_sees_them(via: Via) {
    let w = World::with_laptop(via, with_lfs);
    let env = &w.env;
    w.run(&["thread", "new", "--branch", "feat/lfs"]).success();
    // Every kind of change to LFS files.
    let rng = &mut crate::harness::Rng::new(11);
    write(&w.laptop, b"assets/big.bin", &rng.bytes(150_000, true));
    write(&w.laptop, b"assets/staged.bin", &rng.bytes(30_000, true));
    env.git(&w.laptop, &["add", "assets/staged.bin"]);
    write(&w.laptop, b"assets/untracked.bin", &rng.bytes(20_000, true));
    // old.bin's content is not here: its working copy is the pointer.
    let pointer = env.git_bytes(&w.laptop, &["cat-file", "blob", "HEAD:assets/old.bin"]);
    let oid = String::from_utf8_lossy(&pointer)
        .lines()
        .find_map(|l| l.strip_prefix("oid sha256:").map(str::to_owned))
        .unwrap();
    std::fs::remove_file(w.laptop.join(".git/lfs/objects").join(&oid[0..2]).join(&oid[2..4]).join(&oid)).unwrap();
    write(&w.laptop, b"assets/old.bin", &pointer);
    // As a checkout without the content leaves it (git's cached stat included).
    env.git(&w.laptop, &["add", "assets/old.bin"]);

    // The host's user has no git-lfs filter (the system's is switched off): refused before anything moves.
    let filter = ["filter.lfs.process", "filter.lfs.smudge", "filter.lfs.clean"];
    for key in filter {
        w.git_remote(&w.remote_home, &["config", "--global", key, ""]);
    }
    w.git_remote(&w.remote_home, &["config", "--global", "filter.lfs.required", "false"]);
    let everything = w.everything();
    w.run(&["1", "devbox"]).fails_with(4, "uses Git LFS, but git-lfs is not set up").fails_with(4, "git lfs install");
    crate::harness::assert_unchanged(&everything, &w.everything(), "a refused handoff");

    for key in filter.iter().chain(&["filter.lfs.required"]) {
        w.git_remote(&w.remote_home, &["config", "--global", "--unset", key]);
    }
    w.git_remote(&w.remote_clone, &["lfs", "install", "--skip-repo"]);
    let before = deep_facts(env, &env.home, &w.laptop);
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_same(&deep_facts(env, &w.remote_home, &remote_wt), &before, "the host's copy of the thread");
    let pointer_there = std::fs::read(remote_wt.join("assets/old.bin")).unwrap();
    assert_eq!(pointer_there, pointer, "a pointer at the source stays a pointer");
    assert!(lfs_objects(&w.remote_clone).len() >= 4, "the objects the thread needs are in the host's LFS storage");
    assert!(!w.remote_clone.join(".git/lfs/logs").exists(), "git-lfs reached for its server on the host");

    // The host changes an LFS file and adds one; this computer lacks only those.
    write(&remote_wt, b"assets/big.bin", &rng.bytes(100_000, true));
    write(&remote_wt, b"assets/host.bin", &rng.bytes(10_000, true));
    w.git_remote(&remote_wt, &["add", "assets/host.bin"]);
    let host_state = deep_facts(env, &w.remote_home, &remote_wt);
    let out = w.run(&["1", "local", "--json"]).success().json();
    assert_eq!(PathBuf::from(out["owner_worktree"].as_str().unwrap()), w.laptop);
    assert_same(&deep_facts(env, &env.home, &w.laptop), &host_state, "the hand-back");
    assert!(!w.laptop.join(".git/lfs/logs").exists(), "git-lfs reached for its server here");
}

over_each!(sparse_checkouts_keep_their_patterns_and_files);

/// The laptop's repository gets directories to leave out, and a cone-mode sparse checkout of `src/a`.
fn with_sparse_checkout(env: &TestEnv, laptop: &Path) {
    for dir in ["src/a", "src/b", "docs"] {
        write(laptop, format!("{dir}/one.txt").as_bytes(), format!("one in {dir}\n").as_bytes());
        write(laptop, format!("{dir}/deeper/two.txt").as_bytes(), format!("two in {dir}\n").as_bytes());
    }
    commit_all(env, laptop, "directories");
    env.git(laptop, &["sparse-checkout", "set", "--cone", "src/a"]);
}

/// What `git sparse-checkout` shows, and which index entries are left out (`ls-files -t`).
fn sparse_facts(env: &TestEnv, home: &Path, dir: &Path) -> (String, String, String) {
    (
        env.git_as(home, dir, &["sparse-checkout", "list"]),
        env.git_as(home, dir, &["config", "--get", "core.sparseCheckoutCone"]),
        env.git_as(home, dir, &["ls-files", "-t", "-z"]),
    )
}

fn sparse_checkouts_keep_their_patterns_and_files(via: Via) {
    let w = World::with_laptop(via, with_sparse_checkout);
    let env = &w.env;
    assert!(!w.laptop.join("src/b").exists() && w.laptop.join("src/a/one.txt").exists(), "the laptop is sparse");
    w.run(&["thread", "new", "--branch", "feat/sparse"]).success();
    write(&w.laptop, b"src/a/one.txt", b"edited inside the cone\n");
    write(&w.laptop, b"src/a/new.txt", b"untracked inside the cone\n");
    env.git(&w.laptop, &["add", "src/a/new.txt"]);
    write(&w.laptop, b"docs/outside.txt", b"untracked, outside the cone\n");
    write(&w.laptop, b"a.txt", b"edited at the top\n");
    let before = (deep_facts(env, &env.home, &w.laptop), sparse_facts(env, &env.home, &w.laptop));

    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_same(&deep_facts(env, &w.remote_home, &remote_wt), &before.0, "the host's copy of the thread");
    assert_eq!(sparse_facts(env, &w.remote_home, &remote_wt), before.1, "the same patterns, the same entries left out");
    assert!(!remote_wt.join("src/b").exists(), "only the sparse files are written");
    // Only the thread's worktree is sparse there.
    assert!(w.remote_clone.join("src/b/one.txt").exists());

    // The host switches to non-cone patterns and edits; the hand-back follows.
    w.git_remote(&remote_wt, &["sparse-checkout", "set", "--no-cone", "/*", "!/src/", "/src/b/"]);
    write(&remote_wt, b"src/b/one.txt", b"edited on the host\n");
    let host_state = (deep_facts(env, &w.remote_home, &remote_wt), sparse_facts(env, &w.remote_home, &remote_wt));
    assert!(!remote_wt.join("src/a/deeper").exists() && remote_wt.join("docs/one.txt").exists());
    let out = w.run(&["1", "local", "--json"]).success().json();
    assert_eq!(PathBuf::from(out["owner_worktree"].as_str().unwrap()), w.laptop, "the original worktree is reused");
    assert_same(&deep_facts(env, &env.home, &w.laptop), &host_state.0, "the hand-back");
    assert_eq!(sparse_facts(env, &env.home, &w.laptop), host_state.1);
}

over_each!(line_endings_and_index_settings_travel);

/// The laptop's repository converts line endings (`* text=auto eol=crlf`,
/// and `core.autocrlf` under `plain/`), with a split index in version 4
/// and fsmonitor set; its files are checked out converted.
fn with_line_endings(env: &TestEnv, laptop: &Path) {
    write(laptop, b".gitattributes", b"* text=auto eol=crlf\n");
    write(laptop, b"plain/.gitattributes", b"* !eol\n");
    write(laptop, b"plain/auto.txt", b"line one\nline two\n");
    for (key, value) in
        [("core.autocrlf", "true"), ("core.splitIndex", "true"), ("index.version", "4"), ("core.fsmonitor", "true")]
    {
        env.git(laptop, &["config", key, value]);
    }
    commit_all(env, laptop, "line endings");
    env.git(laptop, &["add", "--renormalize", "."]);
    env.git(laptop, &["commit", "-q", "--allow-empty", "-m", "renormalize"]);
    env.git(laptop, &["rm", "-q", "-r", "--cached", "."]);
    env.git(laptop, &["reset", "-q", "--hard"]);
    assert_eq!(std::fs::read(laptop.join("b.txt")).unwrap(), b"beta\r\n", "checked out with CRLF");
    assert_eq!(std::fs::read(laptop.join("plain/auto.txt")).unwrap(), b"line one\r\nline two\r\n");
}

fn line_endings_and_index_settings_travel(via: Via) {
    let w = World::with_laptop(via, with_line_endings);
    let env = &w.env;
    w.run(&["thread", "new", "--branch", "feat/eol"]).success();
    write(&w.laptop, b"a.txt", b"edited\r\nwith CRLF\r\n");
    write(&w.laptop, b"crlf-untracked.txt", b"untracked\r\nwith CRLF\r\n");
    // A tool wrote LF here: clean to git, yet checkout elsewhere would write CRLF.
    write(&w.laptop, b"lf-untracked.txt", b"untracked\nwith LF\n");
    write(&w.laptop, b"plain/auto.txt", b"line one\r\nedited\r\n");
    write(&w.laptop, b"plain/lf.txt", b"staged\nwith LF\n");
    env.git(&w.laptop, &["add", "plain/lf.txt"]);
    let before = deep_facts(env, &env.home, &w.laptop);

    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_same(&deep_facts(env, &w.remote_home, &remote_wt), &before, "the host's copy of the thread");
    assert_eq!(
        w.git_remote(&remote_wt, &["config", "core.autocrlf"]).trim(),
        "true",
        "the worktree converts as the laptop's"
    );
    assert_eq!(
        w.git_remote(&w.remote_clone, &["config", "--default", "unset", "core.autocrlf"]).trim(),
        "unset",
        "the host's own clone keeps its settings"
    );

    write(&remote_wt, b"b.txt", b"edited on the host\r\n");
    write(&remote_wt, b"host-lf.txt", b"written with LF on the host\n");
    let host_state = deep_facts(env, &w.remote_home, &remote_wt);
    let out = w.run(&["1", "local", "--json"]).success().json();
    assert_eq!(PathBuf::from(out["owner_worktree"].as_str().unwrap()), w.laptop);
    assert_same(&deep_facts(env, &env.home, &w.laptop), &host_state, "the hand-back");
    assert_eq!(std::fs::read(w.laptop.join("host-lf.txt")).unwrap(), b"written with LF on the host\n");
}
