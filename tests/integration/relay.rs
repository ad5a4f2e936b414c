//! Host to host: `git codex-handoff 1 devbox2` while devbox owns the
//! thread, over two real OpenSSH servers on 127.0.0.1 with a HOME each.
//! The thread goes laptop → devbox → devbox2 → laptop with a dirty state
//! and a transcript that grows on every machine: exact at every hop, one
//! owner, this computer's files untouched by the relay, home on the
//! thread's branch, and the `worktree` / `owner_worktree` fields right on
//! every machine after every direction. Then the crash matrix of the hop.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::handoff::{every_kind_of_change, Via, World};
use crate::harness::{make_home, write, Run, TestEnv, BIN};
use crate::sshd::Sshd;

/// This computer, devbox (the world's host) and devbox2: each host its own sshd, HOME and clone.
pub struct Hosts {
    pub w: World,
    pub home2: PathBuf,
    pub clone2: PathBuf,
    /// Kept running while the test lasts (`None` over the `local` transport).
    _sshd2: Option<Sshd>,
}

impl Hosts {
    pub fn new(via: Via) -> Hosts {
        Hosts::with_laptop(via, |_, _| {})
    }

    /// Hosts whose laptop repository gets `setup` on top of the base commit, before the hosts clone it.
    pub fn with_laptop(via: Via, setup: impl FnOnce(&TestEnv, &Path)) -> Hosts {
        let w = World::with_laptop(via, setup);
        let env = &w.env;
        let home2 = make_home(&env.path("devbox2-home"), "devbox2");
        let clone2 = env.path("devbox2-clone");
        env.git_as(&home2, env.root.path(), &["clone", "-q", w.laptop.to_str().unwrap(), clone2.to_str().unwrap()]);
        env.git_as(&home2, &clone2, &["checkout", "-q", "-b", "devbox2-home"]);
        env.run_as(&home2, &clone2, &["project", "save"]).success();
        let sshd2 = match via {
            Via::Local => {
                w.run(&["host", "add", "devbox2", home2.to_str().unwrap(), "--transport", "local"]).success();
                None
            }
            Via::Openssh | Via::Ssh2 => {
                let sshd2 = Sshd::start(env, &home2);
                let config = env.home.join(".ssh/config");
                let mut text = std::fs::read_to_string(&config).unwrap();
                text += &sshd2.client_block("devbox2");
                std::fs::write(&config, text).unwrap();
                w.run(&["host", "add", "devbox2", "devbox2", "--transport", via.transport(), "--helper", BIN])
                    .success();
                Some(sshd2)
            }
        };
        Hosts { w, home2, clone2, _sshd2: sshd2 }
    }

    fn env(&self) -> &TestEnv {
        &self.w.env
    }

    /// `thread show --json` on this computer (in `dir`), on devbox and on
    /// devbox2 (null where the thread never was).
    fn shows(&self, dir: &Path, uuid: &str) -> [Value; 3] {
        let env = self.env();
        let show = |run: Run| if run.code == 3 { Value::Null } else { run.success().json() };
        [
            show(env.run(dir, &["thread", "show", uuid, "--json"])),
            show(env.run_as(&self.w.remote_home, &self.w.remote_clone, &["thread", "show", uuid, "--json"])),
            show(env.run_as(&self.home2, &self.clone2, &["thread", "show", uuid, "--json"])),
        ]
    }

    fn transcript(&self, machine: usize, uuid: &str) -> PathBuf {
        let repo = [&self.w.laptop, &self.w.remote_clone, &self.clone2][machine];
        repo.join(".git/codex-handoff/transcripts").join(uuid)
    }
}

/// What `thread show` on one machine says of where the thread lives.
#[track_caller]
fn lives(show: &Value, worktree: Option<&Path>, owner_worktree: &Path, what: &str) {
    let path = |p: &Path| Value::from(p.to_str().unwrap());
    assert_eq!(show["worktree"], worktree.map_or(Value::Null, path), "{what}: worktree\n{show}");
    assert_eq!(show["owner_worktree"], path(owner_worktree), "{what}: owner_worktree\n{show}");
}

fn append(path: &Path, text: &[u8]) {
    use std::io::Write;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::OpenOptions::new().append(true).create(true).open(path).unwrap().write_all(text).unwrap();
}

fn head_branch(env: &TestEnv, home: &Path, dir: &Path) -> Option<String> {
    let out = env.command_with_home("git", dir, home).args(["symbolic-ref", "-q", "--short", "HEAD"]).output().unwrap();
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Everything of this computer's repository a relay must leave alone: every
/// worktree's files, index, HEAD and refs (the tool's own refs aside), the
/// list of worktrees, and the thread's transcript file here.
fn this_computer(env: &TestEnv, laptop: &Path, transcript: &Path) -> String {
    let mut out = format!("{:?}", env.untouchables(laptop));
    out += &env.git(laptop, &["worktree", "list", "--porcelain"]);
    out += &format!("{:?}", std::fs::read(transcript).ok());
    out
}

#[test]
fn laptop_devbox_devbox2_and_home_over_two_sshds() {
    journey(Via::Openssh);
}

#[cfg(feature = "ssh2")]
#[test]
fn laptop_devbox_devbox2_and_home_over_two_sshds_with_libssh2() {
    journey(Via::Ssh2);
}

fn journey(via: Via) {
    let t = Hosts::new(via);
    let (env, laptop) = (t.env(), t.w.laptop.clone());
    let thread = env.run(&laptop, &["thread", "new", "--title", "Login", "--branch", "feature/login", "--json"]);
    let uuid = thread.success().json()["uuid"].as_str().unwrap().to_owned();
    every_kind_of_change(env, &laptop);
    append(&t.transcript(0, &uuid), b"{\"turn\": 1, \"on\": \"laptop\"}\n");
    let state = env.carried_facts(&laptop);

    // laptop -> devbox
    let out = env.run(&laptop, &["1", "devbox", "--yes", "--json"]).success().json();
    assert!(out["worktree"].is_null(), "the thread lives elsewhere now: {out}");
    let devbox_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert!(devbox_wt.starts_with(t.w.remote_home.join(".codex/worktrees")), "{}", devbox_wt.display());
    assert_eq!(env.carried_facts(&devbox_wt), state, "exact on devbox");
    assert_eq!(std::fs::read(t.transcript(1, &uuid)).unwrap(), std::fs::read(t.transcript(0, &uuid)).unwrap());
    let [here, devbox, _] = t.shows(&laptop, &uuid);
    lives(&here, None, &devbox_wt, "laptop after laptop -> devbox");
    lives(&devbox, Some(&devbox_wt), &devbox_wt, "devbox after laptop -> devbox");
    assert_eq!((here["owner"].as_str(), devbox["owner"].as_str()), (Some("devbox"), Some("local")));

    // Work on devbox: a commit, new changes, and a transcript past a MiB (it travels beside the packs).
    let git1 = |args: &[&str]| t.w.git_remote(&devbox_wt, args);
    git1(&["add", "-A"]);
    git1(&["commit", "-q", "-m", "login form on devbox"]);
    write(&devbox_wt, b"a.txt", b"alpha, edited on devbox\n");
    write(&devbox_wt, b"staged-on-devbox.txt", b"staged there\n");
    git1(&["add", "staged-on-devbox.txt"]);
    write(&devbox_wt, b"untracked-on-devbox.txt", b"untracked there\n");
    let big: Vec<u8> = (0..40_000)
        .flat_map(|i| format!("{{\"turn\": 2, \"line\": {i}, \"on\": \"devbox\"}}\n").into_bytes())
        .collect();
    append(&t.transcript(1, &uuid), &big);
    let state = env.carried_facts(&devbox_wt);
    let devbox_head = git1(&["rev-parse", "HEAD"]);
    // Something of this computer's own in the thread's old worktree here: the relay leaves it be.
    write(&laptop, b"notes-to-self.txt", b"mine, not the thread's\n");
    let untouched = this_computer(env, &laptop, &t.transcript(0, &uuid));

    // devbox -> devbox2, through this computer.
    let plan = env.run(&laptop, &["1", "devbox2", "--dry-run"]);
    assert!(
        plan.success().stderr.contains("from devbox to devbox2 (through this computer; no files here change)"),
        "{}",
        plan.stderr
    );
    let out = env.run(&laptop, &["1", "devbox2", "--yes", "--json"]).success().json();
    assert_eq!(
        (out["host"].as_str(), out["epoch"].as_u64(), out["branch"].as_str()),
        (Some("devbox2"), Some(2), Some("feature/login"))
    );
    assert!(out["worktree"].is_null(), "{out}");
    let devbox2_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert!(devbox2_wt.starts_with(t.home2.join(".codex/worktrees")), "{}", devbox2_wt.display());
    assert_eq!(env.carried_facts(&devbox2_wt), state, "exact on devbox2");
    assert_eq!(t.w.git_remote(&devbox2_wt, &["rev-parse", "HEAD"]), devbox_head);
    assert_eq!(head_branch(env, &t.home2, &devbox2_wt).as_deref(), Some("feature/login"));
    assert_eq!(std::fs::read(t.transcript(2, &uuid)).unwrap(), std::fs::read(t.transcript(1, &uuid)).unwrap());
    assert_eq!(this_computer(env, &laptop, &t.transcript(0, &uuid)), untouched, "the relay changed something here");
    let [here, devbox, devbox2] = t.shows(&laptop, &uuid);
    lives(&here, None, &devbox2_wt, "laptop after devbox -> devbox2");
    lives(&devbox, None, &devbox2_wt, "devbox after devbox -> devbox2");
    lives(&devbox2, Some(&devbox2_wt), &devbox2_wt, "devbox2 after devbox -> devbox2");
    // One owner, recorded alike everywhere; devbox let go of it and of the branch.
    assert_eq!((here["owner"].as_str(), devbox2["owner"].as_str()), (Some("devbox2"), Some("local")));
    assert_eq!(devbox["owner_machine"], "devbox2");
    for show in [&here, &devbox, &devbox2] {
        assert_eq!((show["epoch"].as_u64(), &show["snapshot"]), (Some(2), &here["snapshot"]), "{show}");
    }
    assert_eq!(head_branch(env, &t.w.remote_home, &devbox_wt), None, "devbox's worktree let go of the branch");
    assert_eq!(env.carried_facts(&devbox_wt), state, "devbox's worktree stays as it was");

    std::fs::remove_file(laptop.join("notes-to-self.txt")).unwrap();

    // Work on devbox2, then home.
    let git2 = |args: &[&str]| env.git_as(&t.home2, &devbox2_wt, args);
    git2(&["add", "-A"]);
    git2(&["commit", "-q", "-m", "login tests on devbox2"]);
    write(&devbox2_wt, b"b.txt", b"beta, edited on devbox2\n");
    write(&devbox2_wt, b"untracked-on-devbox2.txt", b"untracked on devbox2\n");
    append(&t.transcript(2, &uuid), b"{\"turn\": 3, \"on\": \"devbox2\"}\n");
    let state = env.carried_facts(&devbox2_wt);
    let devbox2_head = git2(&["rev-parse", "HEAD"]);

    let out = env.run(&laptop, &["1", "local", "--yes", "--json"]).success().json();
    assert_eq!((out["host"].as_str(), out["epoch"].as_u64()), (Some("local"), Some(3)));
    assert_eq!(out["worktree"], laptop.to_str().unwrap(), "home into the thread's own worktree");
    assert_eq!(out["owner_worktree"], out["worktree"]);
    assert_eq!(env.carried_facts(&laptop), state, "exact at home");
    assert_eq!(head_branch(env, &env.home, &laptop).as_deref(), Some("feature/login"), "home on the branch");
    assert_eq!(env.git(&laptop, &["rev-parse", "feature/login"]), devbox2_head, "the branch moved forward");
    assert_eq!(std::fs::read(t.transcript(0, &uuid)).unwrap(), std::fs::read(t.transcript(2, &uuid)).unwrap());
    let [here, _, devbox2] = t.shows(&laptop, &uuid);
    lives(&here, Some(&laptop), &laptop, "laptop after devbox2 -> laptop");
    lives(&devbox2, None, &laptop, "devbox2 after devbox2 -> laptop");
    assert_eq!((here["owner"].as_str(), devbox2["owner_machine"].as_str()), (Some("local"), Some("laptop")));
    assert_eq!(head_branch(env, &t.home2, &devbox2_wt), None, "devbox2's worktree let go of the branch");
}

/// With the project in a subdirectory on every machine, the "now on" line
/// and every `worktree` field name that subdirectory.
#[test]
fn a_project_in_a_subdirectory_is_named_with_it_everywhere() {
    let t = Hosts::new(Via::Local);
    let env = t.env();
    let web = t.w.laptop.join("packages/web");
    write(&web, b"index.js", b"console.log('web')\n");
    env.git(&t.w.laptop, &["add", "-A"]);
    env.git(&t.w.laptop, &["commit", "-q", "-m", "web package"]);
    for (home, clone) in [(&t.w.remote_home, &t.w.remote_clone), (&t.home2, &t.clone2)] {
        env.git_as(home, clone, &["fetch", "-q", t.w.laptop.to_str().unwrap(), "main"]);
        env.git_as(home, clone, &["merge", "-q", "--ff-only", "FETCH_HEAD"]);
        env.run_as(home, clone, &["project", "forget", clone.to_str().unwrap()]).success();
        env.run_as(home, &clone.join("packages/web"), &["project", "save"]).success();
    }
    let thread = env.run(&web, &["thread", "new", "--branch", "feat/web", "--json"]).success().json();
    let uuid = thread["uuid"].as_str().unwrap().to_owned();
    assert_eq!(thread["worktree"], web.to_str().unwrap(), "{thread}");
    write(&web, b"index.js", b"console.log('edited')\n");

    let out = env.run(&web, &["1", "devbox"]);
    out.success();
    let devbox_web = env.run(&web, &["thread", "show", "1", "--json"]).success().json()["owner_worktree"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(devbox_web.ends_with("/packages/web"), "{devbox_web}");
    assert!(out.stdout.contains(&format!("is now on devbox (epoch 1): {devbox_web} on feat/web")), "{}", out.stdout);
    assert_eq!(std::fs::read(Path::new(&devbox_web).join("index.js")).unwrap(), b"console.log('edited')\n");
    let [_, devbox, _] = t.shows(&web, &uuid);
    lives(&devbox, Some(Path::new(&devbox_web)), Path::new(&devbox_web), "devbox");

    let out = env.run(&web, &["1", "devbox2", "--json"]).success().json();
    let devbox2_web = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert!(devbox2_web.starts_with(&t.home2) && devbox2_web.ends_with("packages/web"), "{out}");
    let [here, devbox, devbox2] = t.shows(&web, &uuid);
    lives(&here, None, &devbox2_web, "laptop");
    lives(&devbox, None, &devbox2_web, "devbox");
    lives(&devbox2, Some(&devbox2_web), &devbox2_web, "devbox2");

    let out = env.run(&web, &["1", "local"]);
    assert!(
        out.success().stdout.contains(&format!("is now on this computer (epoch 3): {} on feat/web", web.display())),
        "{}",
        out.stdout
    );
    let [here, _, devbox2] = t.shows(&web, &uuid);
    lives(&here, Some(&web), &web, "laptop, home");
    lives(&devbox2, None, &web, "devbox2, after it left");
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// The process running the command, on this computer.
    Client,
    /// The helper on devbox, which the thread leaves.
    Source,
    /// The helper on devbox2, where it goes.
    Destination,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    step: &'static str,
    side: Side,
    /// What the rerun reports it did (its progress on stderr).
    rerun_says: &'static str,
}

const fn case(step: &'static str, side: Side, rerun_says: &'static str) -> Case {
    Case { step, side, rerun_says }
}

const AGAIN: &str = "pushing to devbox2";
const NOT_ARRIVED: &str = "an earlier handoff to devbox2 had not arrived there; thread #";
const ARRIVED: &str = "an earlier handoff from devbox to devbox2 had finished there; recording it here";
const LET_GO: &str = "finishing the earlier handoff: telling devbox to let go";

const CLIENT: &[Case] = &[
    case("relay-begun", Side::Client, AGAIN),
    case("relay-departed", Side::Client, AGAIN),
    case("relay-fetched", Side::Client, NOT_ARRIVED),
    case("relay-pushed", Side::Client, NOT_ARRIVED),
    case("relay-receiving", Side::Client, ARRIVED),
    case("relay-received", Side::Client, ARRIVED),
    case("relay-recorded", Side::Client, LET_GO),
    case("relay-released", Side::Client, LET_GO),
];

const HELPERS: &[Case] = &[
    case("depart-snapshotted", Side::Source, AGAIN),
    case("before-restore", Side::Destination, NOT_ARRIVED),
    case("arrival-worktree-added", Side::Destination, "that an interrupted arrival had begun"),
    case("arrival-restored", Side::Destination, "that an interrupted arrival had begun"),
    case("arrival-committed", Side::Destination, "finished recording the interrupted arrival"),
    case("before-release", Side::Source, LET_GO),
    case("release-recorded", Side::Source, LET_GO),
];

#[cfg(feature = "test-faults")]
#[test]
fn a_kill_at_every_step_of_the_hop_on_this_computer_then_a_rerun_converges() {
    let t = Hosts::new(Via::Openssh);
    for (i, case) in CLIENT.iter().enumerate() {
        crash_case(&t, i + 1, case);
    }
}

#[cfg(feature = "test-faults")]
#[test]
fn a_kill_at_every_step_of_the_hop_on_either_host_then_a_rerun_converges() {
    let t = Hosts::new(Via::Openssh);
    for (i, case) in HELPERS.iter().enumerate() {
        crash_case(&t, i + 1, case);
    }
}

/// Thread `n`, in a worktree of its own here: to devbox, work there, then
/// to devbox2 killed at the case's step, then the same command again.
#[cfg(feature = "test-faults")]
fn crash_case(t: &Hosts, n: usize, case: &Case) {
    let env = t.env();
    let what = format!("{case:?}");
    let wt = env.path(&format!("laptop-wt-{n}"));
    env.git(&t.w.laptop, &["worktree", "add", "-q", "--detach", wt.to_str().unwrap(), "HEAD"]);
    let (number, branch) = (n.to_string(), format!("relay-{n}"));
    let made = env.run(&wt, &["thread", "new", "--title", case.step, "--branch", &branch, "--json"]);
    let uuid = made.success().json()["uuid"].as_str().unwrap().to_owned();
    every_kind_of_change(env, &wt);
    let out = env.run(&wt, &[&number, "devbox", "--yes", "--json"]).success().json();
    let devbox_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    t.w.git_remote(&devbox_wt, &["add", "-A"]);
    t.w.git_remote(&devbox_wt, &["commit", "-q", "-m", "work on devbox"]);
    write(&devbox_wt, b"a.txt", b"edited on devbox\n");
    write(&devbox_wt, b"devbox-untracked.txt", b"untracked on devbox\n");
    let state = env.carried_facts(&devbox_wt);
    let untouched = this_computer(env, &wt, &t.transcript(0, &uuid));

    let args = [number.as_str(), "devbox2", "--yes"];
    let crashed = run_with_fault(t, &wt, &args, case);
    match case.side {
        // git reports its subcommand's death by SIGKILL as 128 + 9.
        Side::Client => assert_eq!(crashed.code, 137, "{what}: not killed\n{}", crashed.stderr),
        Side::Source | Side::Destination => {
            assert_eq!(crashed.code, 1, "{what}: the helper was not killed\n{}", crashed.stderr);
            assert!(crashed.stderr.contains("stopped during"), "{what}: {}", crashed.stderr);
            assert!(crashed.stderr.contains("again"), "{what}: the help says to run it again: {}", crashed.stderr);
        }
    }
    let rerun = env.run(&wt, &[number.as_str(), "devbox2", "--yes", "--json", "--progress"]);
    assert!(
        rerun.stderr.contains(case.rerun_says),
        "{what}: the rerun should say {:?}:\n{}",
        case.rerun_says,
        rerun.stderr
    );
    assert_eq!(rerun.code, 0, "{what}: the rerun must finish\n{}", rerun.stderr);
    let out = rerun.json();
    assert!(out["worktree"].is_null(), "{what}: {out}");

    // One owner, recorded alike on all three machines; devbox2 holds exactly devbox's state.
    let [here, devbox, devbox2] = t.shows(&wt, &uuid);
    assert_eq!((here["owner"].as_str(), devbox2["owner"].as_str()), (Some("devbox2"), Some("local")), "{what}");
    assert_eq!(devbox["owner_machine"], "devbox2", "{what}: devbox let go");
    for show in [&here, &devbox, &devbox2] {
        assert_eq!((show["epoch"].as_u64(), &show["snapshot"]), (Some(2), &here["snapshot"]), "{what}: {show}");
    }
    let devbox2_wt = PathBuf::from(devbox2["worktree"].as_str().unwrap());
    assert_eq!(out["owner_worktree"], devbox2["worktree"], "{what}");
    lives(&here, None, &devbox2_wt, &what);
    assert_eq!(env.carried_facts(&devbox2_wt), state, "{what}: exact on devbox2");
    assert_eq!(head_branch(env, &t.home2, &devbox2_wt), Some(branch.clone()), "{what}");
    assert_eq!(this_computer(env, &wt, &t.transcript(0, &uuid)), untouched, "{what}: this computer changed");
    nothing_left_over(t, &what);

    // And it travels on: home, with what was done on devbox2.
    write(&devbox2_wt, b"after-the-crash.txt", b"written on devbox2 after the rerun\n");
    let state = env.carried_facts(&devbox2_wt);
    env.run(&wt, &[number.as_str(), "local", "--yes"]).success();
    assert_eq!(env.carried_facts(&wt), state, "{what}: home with devbox2's state");
    assert_eq!(head_branch(env, &env.home, &wt), Some(branch), "{what}: home on the branch");
    nothing_left_over(t, &what);
}

/// Run `git codex-handoff <args>` with the fault armed on the case's side.
#[cfg(feature = "test-faults")]
fn run_with_fault(t: &Hosts, dir: &Path, args: &[&str], case: &Case) -> Run {
    let env = t.env();
    let mut cmd = env.command("git", dir);
    cmd.arg("codex-handoff").args(args);
    let home = match case.side {
        Side::Client => {
            cmd.env("CODEX_HANDOFF_TEST_FAULT", case.step);
            None
        }
        Side::Source => Some(&t.w.remote_home),
        Side::Destination => Some(&t.home2),
    };
    if let Some(home) = home {
        env.git_as(home, home, &["config", "--global", "codex-handoff.testFault", case.step]);
    }
    let out = Run::from(cmd.output().unwrap());
    if let Some(home) = home {
        env.git_as(home, home, &["config", "--global", "--unset", "codex-handoff.testFault"]);
    }
    out
}

/// No lock file, marker, half-built worktree or ref of an unfinished handoff on any of the three machines.
#[cfg(feature = "test-faults")]
fn nothing_left_over(t: &Hosts, what: &str) {
    let env = t.env();
    for (home, repo) in [(&env.home, &t.w.laptop), (&t.w.remote_home, &t.w.remote_clone), (&t.home2, &t.clone2)] {
        let git_dir = repo.join(".git");
        let pending: Vec<_> = std::fs::read_dir(git_dir.join("codex-handoff/pending")).into_iter().flatten().collect();
        assert!(pending.is_empty(), "{what}: markers left in {}: {pending:?}", repo.display());
        let refs = env.git_as(
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
        let list = env.git_as(home, repo, &["worktree", "list", "--porcelain"]);
        assert!(!list.contains("prunable") && !list.contains("\nlocked"), "{what}: {list}");
        for dir in std::fs::read_dir(home.join(".codex/worktrees")).into_iter().flatten().flatten() {
            for wt in std::fs::read_dir(dir.path()).unwrap().flatten() {
                let path = wt.path();
                assert!(
                    list.contains(&format!("worktree {}\n", path.display())),
                    "{what}: half-built {}",
                    path.display()
                );
            }
        }
        let mut locks = Vec::new();
        find_locks(&git_dir, &mut locks);
        assert!(locks.is_empty(), "{what}: lock files left: {locks:?}");
    }
}

#[cfg(feature = "test-faults")]
fn find_locks(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            find_locks(&path, out);
        } else if path.extension().is_some_and(|e| e == "lock") {
            out.push(path);
        }
    }
}

/// The destination restores the thread but it does not verify there: the
/// destination says it does not have it, so the thread stays on the host it
/// was on, nothing of the relay stays here, and the same command then works.
#[cfg(feature = "test-faults")]
#[test]
fn a_restore_that_does_not_verify_on_the_destination_leaves_the_thread_where_it_was() {
    let t = Hosts::new(Via::Local);
    let env = t.env();
    let laptop = t.w.laptop.clone();
    let made = env.run(&laptop, &["thread", "new", "--branch", "feat/verify", "--json"]);
    let uuid = made.success().json()["uuid"].as_str().unwrap().to_owned();
    every_kind_of_change(env, &laptop);
    let out = env.run(&laptop, &["1", "devbox", "--yes", "--json"]).success().json();
    let devbox_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    let state = env.carried_facts(&devbox_wt);

    env.git_as(&t.home2, &t.home2, &["config", "--global", "codex-handoff.testFault", "verify-mismatch"]);
    let failed = env.run(&laptop, &["1", "devbox2", "--yes"]);
    env.git_as(&t.home2, &t.home2, &["config", "--global", "--unset", "codex-handoff.testFault"]);
    failed.fails_with(1, "devbox2:");
    let [here, devbox, devbox2] = t.shows(&laptop, &uuid);
    assert_eq!((here["owner"].as_str(), here["epoch"].as_u64()), (Some("devbox"), Some(1)), "{}", failed.stderr);
    assert_eq!((devbox["owner"].as_str(), devbox["epoch"].as_u64()), (Some("local"), Some(1)));
    assert!(devbox2.is_null(), "devbox2 keeps nothing of it: {devbox2}");
    assert!(!laptop.join(".git/codex-handoff/pending/relay-".to_owned() + &uuid + ".json").exists(), "marker left");
    assert_eq!(env.git(&laptop, &["for-each-ref", "refs/codex-handoff/incoming"]), "", "incoming refs left here");
    assert_eq!(env.carried_facts(&devbox_wt), state, "devbox's worktree is as it was");

    let out = env.run(&laptop, &["1", "devbox2", "--yes", "--json"]).success().json();
    let devbox2_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_eq!(env.carried_facts(&devbox2_wt), state);
    assert_eq!(out["epoch"], 2);
}

/// Submodule snapshots (a commit made on devbox in a submodule, and changes
/// at every level) and Git LFS objects devbox2 lacks go from devbox to
/// devbox2 through this computer's module repositories and object store;
/// this computer's worktrees and LFS storage keep nothing of them.
#[test]
fn submodules_and_lfs_objects_go_from_host_to_host() {
    use crate::repos::{deep_facts, lfs_objects, with_lfs, with_submodules, FILE_PROTOCOL};
    let t = Hosts::with_laptop(Via::Local, |env, laptop| {
        with_submodules(env, laptop);
        with_lfs(env, laptop);
    });
    let env = t.env();
    let laptop = t.w.laptop.clone();
    for (home, clone) in [(&t.w.remote_home, &t.w.remote_clone), (&t.home2, &t.clone2)] {
        env.git_as(home, clone, &["-c", FILE_PROTOCOL, "submodule", "update", "--init", "--recursive", "-q"]);
        env.git_as(home, clone, &["lfs", "install", "--skip-repo"]);
    }
    let thread = env.run(&laptop, &["thread", "new", "--branch", "feat/deep", "--json"]).success().json();
    let uuid = thread["uuid"].as_str().unwrap().to_owned();
    write(&laptop.join("vendor/lib"), b"a.txt", b"edited in the submodule here\n");
    let out = env.run(&laptop, &["1", "devbox", "--json"]).success().json();
    let devbox_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());

    // On devbox: a commit in the submodule, changes in the nested one, and a new LFS file.
    let lib = devbox_wt.join("vendor/lib");
    write(&lib, b"made-on-devbox.txt", b"committed in the submodule on devbox\n");
    t.w.git_remote(&lib, &["add", "-A"]);
    t.w.git_remote(&lib, &["commit", "-q", "-m", "a submodule commit only devbox has"]);
    write(&lib.join("deep/inner"), b"a.txt", b"edited in the nested submodule on devbox\n");
    write(&devbox_wt, b"assets/made-on-devbox.bin", &crate::harness::Rng::new(5).bytes(60_000, true));
    t.w.git_remote(&devbox_wt, &["add", "assets/made-on-devbox.bin"]);
    let state = deep_facts(env, &t.w.remote_home, &devbox_wt);
    let objects_here = lfs_objects(&laptop);
    let untouched = (deep_facts(env, &env.home, &laptop), this_computer(env, &laptop, &t.transcript(0, &uuid)));

    let out = env.run(&laptop, &["1", "devbox2", "--yes", "--json"]).success().json();
    let devbox2_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_eq!(deep_facts(env, &t.home2, &devbox2_wt), state, "exact on devbox2, submodules and LFS files too");
    let new_object = lfs_objects(&t.w.remote_clone).into_iter().find(|o| !lfs_objects(&t.clone2).contains(o));
    assert_eq!(new_object, None, "devbox2 has every LFS object devbox has");
    assert_eq!(lfs_objects(&laptop), objects_here, "no LFS object was stored here");
    let after = (deep_facts(env, &env.home, &laptop), this_computer(env, &laptop, &t.transcript(0, &uuid)));
    assert!(after == untouched, "the relay changed something here");
    let refs = env.git(&laptop.join("vendor/lib"), &["for-each-ref", "refs/codex-handoff/incoming"]);
    assert_eq!(refs, "", "nothing of it stays in the module repository here");

    // And home, exactly.
    let out = env.run(&laptop, &["1", "local", "--yes", "--json"]).success().json();
    assert_eq!(out["worktree"], laptop.to_str().unwrap());
    assert_eq!(deep_facts(env, &env.home, &laptop), state, "home, submodules and LFS files too");
}
