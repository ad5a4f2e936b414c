//! Random dirty states, snapshotted and restored into a fresh worktree: the
//! restored worktree must look exactly like the source to a git user, and the
//! snapshot must not have changed the source.

use std::path::Path;

use crate::harness::{set_exec, symlink, write, Rng, TestEnv};

const PATHS: &[&[u8]] = &[
    b"a.txt",
    b"b.txt",
    b"x.sh",
    b"dir/c.txt",
    b"dir/sub/d.bin",
    b"space name.txt",
    "\u{e9}t\u{e9}/caf\u{e9}.txt".as_bytes(),
    "\u{65e5}\u{672c}/\u{8a9e}.md".as_bytes(),
    b"raw\xff\xfename.bin",
    b"deep/a/b/c/e.txt",
    b"link",
    b"dir/link2",
    b"-dash.txt",
    b"quote\"and'$(x).txt",
];

const STATES_PER_TEST: u64 = 50;

fn content(rng: &mut Rng) -> Vec<u8> {
    let binary = rng.chance(25);
    let max = if rng.chance(5) { 70_000 } else { 300 };
    let len = rng.below(max);
    let mut bytes = rng.bytes(len, binary);
    if binary && !bytes.is_empty() {
        bytes[0] = 0; // make git see it as binary
    }
    bytes
}

fn tracked(env: &TestEnv, repo: &Path) -> Vec<Vec<u8>> {
    let out = env.git_bytes(repo, &["ls-files", "-z"]);
    out.split(|b| *b == 0).filter(|p| !p.is_empty()).map(<[u8]>::to_vec).collect()
}

fn git_path(env: &TestEnv, repo: &Path, args: &[&str], path: &[u8]) {
    let mut cmd = env.command("git", repo);
    cmd.args(args).arg("--").arg(crate::harness::os(path)).env("GIT_LITERAL_PATHSPECS", "1");
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?} {:?}: {}",
        String::from_utf8_lossy(path),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Build a repository in a random state; returns a description for failure messages.
fn random_state(env: &TestEnv, repo: &Path, rng: &mut Rng) -> String {
    let mut log = Vec::new();
    let unborn = rng.chance(10);
    if rng.chance(50) {
        write(repo, b".gitignore", b"*.log\nignored/\n");
    }
    if !unborn {
        for path in PATHS {
            if rng.chance(60) {
                if path.ends_with(b"link") || path.ends_with(b"link2") {
                    symlink(repo, path, rng.pick::<&[u8]>(&[b"a.txt", b"missing", b"../dir"]));
                } else {
                    write(repo, path, &content(rng));
                    if rng.chance(20) {
                        set_exec(repo, path, true);
                    }
                }
            }
        }
        env.git(repo, &["add", "-A"]);
        env.git(repo, &["commit", "-q", "--allow-empty", "-m", "base"]);
        if rng.chance(10) {
            env.git(repo, &["checkout", "-q", "--detach"]);
            log.push("detached".to_owned());
        } else if rng.chance(10) {
            env.git(repo, &["checkout", "-q", "-b", "feature/x"]);
            log.push("branch feature/x".to_owned());
        }
    } else {
        log.push("unborn".to_owned());
    }

    let ops = 1 + rng.below(8);
    for _ in 0..ops {
        let files = tracked(env, repo);
        let any_path = rng.pick(PATHS).to_vec();
        let tracked_path = if files.is_empty() { any_path.clone() } else { rng.pick(&files).clone() };
        let op = rng.below(13);
        let name = String::from_utf8_lossy(&tracked_path).into_owned();
        match op {
            0 => {
                write(repo, &tracked_path, &content(rng));
                log.push(format!("modify {name}"));
            }
            1 => {
                write(repo, &tracked_path, &content(rng));
                git_path(env, repo, &["add", "-A"], &tracked_path);
                log.push(format!("modify+stage {name}"));
            }
            2 => {
                write(repo, &tracked_path, &content(rng));
                git_path(env, repo, &["add", "-A"], &tracked_path);
                write(repo, &tracked_path, &content(rng));
                log.push(format!("partially staged {name}"));
            }
            3 if !files.is_empty() => {
                if rng.chance(50) {
                    git_path(env, repo, &["rm", "-q", "--cached", "-f", "-r"], &tracked_path);
                    log.push(format!("staged delete, kept as untracked {name}"));
                } else {
                    git_path(env, repo, &["rm", "-q", "-f", "-r"], &tracked_path);
                    log.push(format!("staged delete {name}"));
                }
            }
            4 if !files.is_empty() => {
                let p = repo.join(crate::harness::os(&tracked_path));
                let _ = std::fs::remove_file(&p);
                log.push(format!("unstaged delete {name}"));
            }
            5 => {
                let mut p = any_path.clone();
                p.extend_from_slice(b".new");
                write(repo, &p, &content(rng));
                log.push(format!("untracked {}", String::from_utf8_lossy(&p)));
            }
            6 => {
                let mut p = b"new/".to_vec();
                p.extend_from_slice(&any_path);
                write(repo, &p, &content(rng));
                git_path(env, repo, &["add"], &p);
                log.push(format!("new staged {}", String::from_utf8_lossy(&p)));
            }
            7 => {
                write(repo, b"build.log", b"ignored\n");
                write(repo, b"ignored/x.txt", b"ignored\n");
                log.push("ignored files".to_owned());
            }
            8 => {
                let p = repo.join(crate::harness::os(&tracked_path));
                if p.symlink_metadata().is_ok_and(|m| m.is_file()) {
                    use std::os::unix::fs::PermissionsExt;
                    let exec = p.metadata().unwrap().permissions().mode() & 0o111 != 0;
                    set_exec(repo, &tracked_path, !exec);
                    if rng.chance(50) {
                        git_path(env, repo, &["add"], &tracked_path);
                    }
                    log.push(format!("chmod {name}"));
                }
            }
            9 => {
                symlink(repo, &tracked_path, rng.pick::<&[u8]>(&[b"b.txt", b"nowhere/\xc3\xa9"]));
                if rng.chance(50) {
                    git_path(env, repo, &["add", "-A"], &tracked_path);
                }
                log.push(format!("symlink {name}"));
            }
            10 => {
                let mut p = b"ita/".to_vec();
                p.extend_from_slice(&any_path);
                write(repo, &p, &content(rng));
                git_path(env, repo, &["add", "-N"], &p);
                log.push(format!("intent-to-add {}", String::from_utf8_lossy(&p)));
            }
            11 if !files.is_empty() => {
                let mut inner = tracked_path.clone();
                inner.extend_from_slice(b"/inner.txt");
                write(repo, &inner, &content(rng));
                if rng.chance(50) {
                    git_path(env, repo, &["add", "-A"], &tracked_path);
                }
                log.push(format!("file to directory {name}"));
            }
            12 if !files.is_empty() && !unborn => {
                let mut to = b"moved/".to_vec();
                to.extend_from_slice(&tracked_path);
                let to_path = repo.join(crate::harness::os(&to));
                std::fs::create_dir_all(to_path.parent().unwrap()).unwrap();
                let mut cmd = env.command("git", repo);
                cmd.args(["mv", "-k", "--"]).arg(crate::harness::os(&tracked_path)).arg(crate::harness::os(&to));
                cmd.env("GIT_LITERAL_PATHSPECS", "1");
                let _ = cmd.output().unwrap();
                log.push(format!("git mv {name}"));
            }
            _ => {}
        }
    }
    log.join(", ")
}

fn run_states(first_seed: u64) {
    let env = TestEnv::new();
    for seed in first_seed..first_seed + STATES_PER_TEST {
        let mut rng = Rng::new(seed * 7919);
        let src = env.init_repo(&format!("src-{seed}"));
        let description = random_state(&env, &src, &mut rng);
        let before = env.facts(&src);
        let untouchables = env.untouchables(&src);

        let out = env.run(&src, &["thread", "new", "--title", "round trip", "--json"]);
        out.success();
        assert_eq!(env.untouchables(&src), untouchables, "seed {seed} ({description}): snapshot changed the source");
        assert_eq!(env.facts(&src), before, "seed {seed} ({description}): snapshot changed what git status shows");

        // Carry it to another repository, as a handoff would.
        let mirror = env.path(&format!("mirror-{seed}.git"));
        env.git(env.root.path(), &["clone", "-q", "--mirror", src.to_str().unwrap(), mirror.to_str().unwrap()]);
        let wt = env.path(&format!("wt-{seed}"));
        let out = env.run(&mirror, &["thread", "restore", "1", wt.to_str().unwrap(), "--json"]);
        assert_eq!(out.code, 0, "seed {seed} ({description}): restore failed: {}", out.stderr);

        let want = env.carried_facts(&src);
        let got = env.carried_facts(&wt);
        assert_eq!(got.status, want.status, "seed {seed} ({description}): git status differs");
        assert_eq!(got.index, want.index, "seed {seed} ({description}): index differs");
        assert_eq!(got.files, want.files, "seed {seed} ({description}): files differ");
        let _ = std::fs::remove_dir_all(&src);
        let _ = std::fs::remove_dir_all(&wt);
        let _ = std::fs::remove_dir_all(&mirror);
    }
}

#[test]
fn random_states_round_trip_1() {
    run_states(1);
}

#[test]
fn random_states_round_trip_2() {
    run_states(1 + STATES_PER_TEST);
}

#[test]
fn random_states_round_trip_3() {
    run_states(1 + 2 * STATES_PER_TEST);
}

#[test]
fn random_states_round_trip_4() {
    run_states(1 + 3 * STATES_PER_TEST);
}
