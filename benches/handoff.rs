//! Handoff benchmark, side by side in one run over a real sshd on 127.0.0.1:
//! `git codex-handoff <N> devbox` into a new worktree (fresh), into the
//! worktree the thread left there (reused), back here (hand-back); the
//! plain-git way of moving the same work (stash create, push, ssh + `git
//! worktree add` + `stash apply`); and the floor, one `ssh devbox "git -C
//! <clone> worktree add --detach <dir> <commit>"`, which no handoff into a
//! new worktree can beat (DESIGN.md §5). Medians, ratios, and the SSH
//! connections each way opens per run (the goal: one per handoff).
//!
//! Two repositories: one of git's own size (generated, flat) and one shaped
//! like a clone of a real project (generated: deep trees, sizes from bytes
//! to megabytes, a long history; `BENCH_REAL_REPO=<clone>` measures a real
//! clone instead). Each of our rows is measured over the `openssh`
//! transport and, where built, over `ssh2`. Then a large change (150 MiB
//! of new untracked files, `large.rs`) and a thread with a 100 MiB Codex
//! rollout go out and back.
//!
//! Prints figures only; it never asserts timings. `BENCH_QUICK=1` makes a
//! smoke run (small repositories, 3 runs); `BENCH_ONLY=flat,real,large,rollout`
//! picks parts. Generated repositories are cached under
//! `target/bench-data/` and cloned into a fresh fixture on every run. The
//! fixture lives in `$TMPDIR`: writing the files of a new worktree is a
//! large share of the fresh case, so the file system there matters (e.g.
//! `TMPDIR=/dev/shm` takes a slow disk out of the figures).

// The integration tests' fixtures: isolated HOMEs, the real binary, an sshd.
#[allow(dead_code)]
#[path = "../tests/integration/harness.rs"]
mod harness;
// Its #[test]s are not built here, which leaves their imports unused.
#[allow(dead_code, unused_imports)]
#[path = "../tests/integration/sshd.rs"]
mod sshd;
#[allow(dead_code)]
mod support;
// The large-change row and the memory watch it uses (they need `World`).
#[path = "support/large.rs"]
mod large;
#[path = "support/rss.rs"]
mod rss;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::{make_home, write, TestEnv, BIN};
use sshd::{shell_quote, Sshd, HOST};
use support::{median, ms, record, repos};

/// The same dev box, reached with the `ssh2` transport.
const SSH2_HOST: &str = "devbox-ssh2";

/// Untracked files each run adds: one at the top, one beside the first changed file.
const NOTES: &str = "NOTES.txt";

/// Both sides of the handoff: the laptop clone and the dev box behind sshd.
struct World {
    env: TestEnv,
    sshd: Sshd,
    laptop: PathBuf,
    remote_home: PathBuf,
    remote_clone: PathBuf,
    runs: usize,
    /// The tracked files each run changes, with their committed bytes.
    dirty: Vec<(String, Vec<u8>)>,
    /// The untracked file beside the first of them.
    scratch: String,
}

/// The median of one way, and its SSH connections per run.
struct Row {
    way: String,
    median: Duration,
    connections: f64,
}

fn main() {
    // Started by a host as the helper's wrapper: be only that.
    if let Some(code) = rss::wrapper_main() {
        std::process::exit(code);
    }
    let started = Instant::now();
    let quick = support::quick();
    let runs = if quick { 3 } else { 7 };
    println!("nproc: {}", std::thread::available_parallelism().map_or(0, |n| n.get()));
    println!(
        "{}",
        std::str::from_utf8(&std::process::Command::new("git").arg("version").output().unwrap().stdout).unwrap().trim()
    );
    println!("each run: 3 tracked files changed (1 staged), 2 untracked added; {runs} runs after 1 warm-up");
    if support::only("flat") {
        let shape = if quick { repos::flat(400, 300) } else { repos::flat(4000, 3000) };
        compare(&shape.label.clone(), |env, data| shape.cached(env, data), runs, false);
    }
    if support::only("real") {
        match std::env::var_os("BENCH_REAL_REPO").filter(|p| !p.is_empty()) {
            Some(clone) => {
                let label = format!("clone of {}", Path::new(&clone).display());
                compare(&label, |_, _| PathBuf::from(&clone), runs, true);
            }
            None => {
                let shape = if quick { repos::real(300, 500) } else { repos::real(3072, 20_000) };
                compare(&shape.label.clone(), |env, data| shape.cached(env, data), runs, true);
            }
        }
    }
    if support::only("large") {
        let env = TestEnv::new();
        let source = match std::env::var_os("BENCH_REAL_REPO").filter(|p| !p.is_empty()) {
            Some(clone) => PathBuf::from(clone),
            None => {
                let shape = if quick { repos::real(300, 500) } else { repos::real(3072, 20_000) };
                shape.cached(&env, &support::data_dir(BIN))
            }
        };
        large::large_change(&World::new(env, &source, runs), quick);
    }
    if support::only("rollout") {
        support::rollout::transcript_trips(if quick { 10 } else { 100 });
    }
    println!("total: {:.1} s", started.elapsed().as_secs_f64());
}

/// Every way on one repository; `real` holds the result to the floor too.
fn compare(label: &str, repository: impl FnOnce(&TestEnv, &Path) -> PathBuf, runs: usize, real: bool) {
    let started = Instant::now();
    let env = TestEnv::new();
    let source = repository(&env, &support::data_dir(BIN));
    let w = World::new(env, &source, runs);
    println!();
    println!(
        "repository ({label}): {} files, {} commits, {:.0} MiB checked out; fixture {} ready after {:.1} s",
        w.git(&w.laptop, &["ls-files"]).lines().count(),
        w.git(&w.laptop, &["rev-list", "--count", "HEAD"]).trim(),
        checked_out_bytes(&w) as f64 / 1_048_576.0,
        w.env.root.path().display(),
        started.elapsed().as_secs_f64()
    );

    let (fresh, plain, floor) = w.fresh_plain_floor();
    let mut reused = Vec::new();
    for (way, host) in w.transports() {
        let (out, back) = w.repeat(host, way);
        reused.push((out, back));
    }

    println!("{:<34} {:>10} {:>9} {:>9} {:>9}", "way", "median ms", "conn/run", "vs plain", "vs floor");
    let all = fresh.iter().chain(reused.iter().flat_map(|(a, b)| [a, b])).chain([&plain, &floor]);
    for row in all {
        println!(
            "{:<34} {:>10.1} {:>9.1} {:>8.2}x {:>8.2}x",
            row.way,
            ms(row.median),
            row.connections,
            ms(row.median) / ms(plain.median),
            ms(row.median) / ms(floor.median)
        );
    }
    println!(
        "goal: fresh <= 0.5x plain git{}, reused and hand-back <= 0.35x; 1 connection",
        if real { " and <= 1.3x the floor" } else { "" }
    );
    println!("plain git does not carry the untracked files (`git stash create` has no -u); ours does");

    let vs = |row: &Row, base: &Row| ms(row.median) / ms(base.median);
    let others = |pick: &dyn Fn(&Row) -> f64, rows: &[&Row]| {
        let shown: Vec<String> =
            rows.iter().skip(1).map(|r| format!("{}: {:.2}x", transport_of(&r.way), pick(r))).collect();
        if shown.is_empty() {
            String::new()
        } else {
            format!(" ({})", shown.join(", "))
        }
    };
    let fresh_rows: Vec<&Row> = fresh.iter().collect();
    let (ratio, to_floor) = (vs(fresh_rows[0], &plain), vs(fresh_rows[0], &floor));
    record(
        BIN,
        &format!("fresh handoff vs plain git, {label}"),
        &format!("{ratio:.2}x, {to_floor:.2}x the floor{}", others(&|r: &Row| vs(r, &plain), &fresh_rows)),
        if real { "<= 0.5x, <= 1.3x the floor" } else { "<= 0.5x" },
        ratio <= 0.5 && (!real || to_floor <= 1.3),
    );
    let outs: Vec<&Row> = reused.iter().map(|(a, _)| a).collect();
    let backs: Vec<&Row> = reused.iter().map(|(_, b)| b).collect();
    let (out, back) = (vs(outs[0], &plain), vs(backs[0], &plain));
    record(
        BIN,
        &format!("reused worktree / hand-back vs plain git, {label}"),
        &format!("{out:.2}x / {back:.2}x{}", others(&|r: &Row| vs(r, &plain), &outs)),
        "<= 0.35x",
        out <= 0.35 && back <= 0.35,
    );
    let connections: Vec<f64> =
        fresh.iter().chain(reused.iter().flat_map(|(a, b)| [a, b])).map(|r| r.connections).collect();
    record(
        BIN,
        &format!("SSH connections per handoff, {label}"),
        &format!("{:.1}", connections.iter().cloned().fold(0.0, f64::max)),
        "1",
        connections.iter().all(|c| *c <= 1.0),
    );
}

/// "ours fresh (new worktree), ssh2" -> "ssh2".
fn transport_of(way: &str) -> &str {
    way.rsplit(", ").next().unwrap_or(way)
}

fn checked_out_bytes(w: &World) -> u64 {
    w.git(&w.laptop, &["ls-tree", "-r", "-l", "HEAD"])
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).and_then(|s| s.parse::<u64>().ok()))
        .sum()
}

impl World {
    /// The laptop and the dev box each clone the repository (as a team's
    /// machines clone one upstream); the dev box's clone is a saved
    /// project, reached over sshd with `host add devbox devbox --helper BIN`.
    fn new(env: TestEnv, source: &Path, runs: usize) -> World {
        let remote_home = make_home(&env.path("remote-home"), "devbox");
        let laptop = env.path("laptop");
        let remote_clone = remote_home.join("src/project");
        let source = source.to_str().unwrap();
        env.git(env.root.path(), &["clone", "-q", source, laptop.to_str().unwrap()]);
        env.git_as(&remote_home, env.root.path(), &["clone", "-q", source, remote_clone.to_str().unwrap()]);
        // The clone's own checkout stays off the thread's branches.
        env.git_as(&remote_home, &remote_clone, &["checkout", "-q", "-b", "devbox-home"]);
        env.run_as(&remote_home, &remote_clone, &["project", "save"]).success();
        // Files written in the index's second are racily clean and would be
        // re-hashed by the first status on each side: refresh a second later.
        std::thread::sleep(Duration::from_millis(1100));
        env.git(&laptop, &["update-index", "-q", "--refresh"]);
        env.git_as(&remote_home, &remote_clone, &["update-index", "-q", "--refresh"]);

        // Three small tracked files spread over the tree.
        let small: Vec<String> = env
            .git(&laptop, &["ls-tree", "-r", "-l", "HEAD"])
            .lines()
            .filter_map(|l| {
                let (meta, path) = l.split_once('\t')?;
                let size: u64 = meta.split_whitespace().nth(3)?.parse().ok()?;
                (size < 64 << 10 && meta.starts_with("100644")).then(|| path.to_owned())
            })
            .collect();
        let n = small.len();
        let dirty: Vec<(String, Vec<u8>)> = [1, n / 2 + 3, n - 7]
            .into_iter()
            .map(|i| (small[i].clone(), std::fs::read(laptop.join(&small[i])).unwrap()))
            .collect();
        let scratch = match dirty[0].0.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/scratch.c"),
            None => "scratch.c".to_owned(),
        };

        // The remote side gets no system config either, like the laptop side.
        let sshd = Sshd::start_with_env(&env, &remote_home, &[("GIT_CONFIG_NOSYSTEM", "1")]);
        let remote_home = sshd.remote_home().to_owned(); // canonical, as the helper sees it
        let remote_clone = remote_home.join("src/project");
        sshd.install_user_config(&env);
        env.run(&laptop, &["host", "add", HOST, HOST, "--transport", "openssh", "--helper", BIN]).success();
        if cfg!(feature = "ssh2") {
            env.run(&laptop, &["host", "add", SSH2_HOST, HOST, "--transport", "ssh2", "--helper", BIN]).success();
        }
        World { env, sshd, laptop, remote_home, remote_clone, runs, dirty, scratch }
    }

    /// The transports measured, by name and host name.
    fn transports(&self) -> Vec<(&'static str, &'static str)> {
        let mut all = vec![("openssh", HOST)];
        if cfg!(feature = "ssh2") {
            all.push(("ssh2", SSH2_HOST));
        }
        all
    }

    /// Fresh handoffs (a new thread, so a new worktree on the host, each
    /// run) over each transport, the plain-git way and the floor,
    /// interleaved so drift affects all alike.
    fn fresh_plain_floor(&self) -> (Vec<Row>, Row, Row) {
        let transports = self.transports();
        let mut ours = vec![(Vec::new(), 0); transports.len()];
        let (mut plain, mut plain_conn) = (Vec::new(), 0);
        let (mut floor, mut floor_conn) = (Vec::new(), 0);
        let commit = self.git(&self.laptop, &["rev-parse", "HEAD"]).trim().to_owned();
        for run in 0..=self.runs {
            // Each way carries its own bytes, so none finds another's
            // objects already on the host.
            for ((way, host), (times, connections)) in transports.iter().zip(ours.iter_mut()) {
                self.clean(&self.laptop);
                self.make_dirty(&self.laptop, &format!("{way} {run}"));
                let thread = self.new_thread(&format!("bench/fresh-{way}-{run}"));
                let mut there = PathBuf::new();
                let (t, c) = self.measure(|| there = self.handoff(thread, host));
                if run > 0 {
                    times.push(t);
                    *connections += c;
                } else {
                    // Once, untimed: the figures are of handoffs that really carry the state.
                    let env = &self.env;
                    assert_eq!(env.carried_facts(&there), env.carried_facts(&self.laptop), "{way} lost state");
                }
            }

            self.clean(&self.laptop);
            self.make_dirty(&self.laptop, &format!("plain {run}"));
            let (t, c) = self.measure(|| self.plain_git(run));
            if run > 0 {
                plain.push(t);
                plain_conn += c;
            } else {
                let there = self.remote_home.join(format!("plain-worktrees/{run}"));
                let status = |dir: &Path| self.git(dir, &["status", "--porcelain", "--untracked-files=no"]);
                assert_eq!(status(&there), status(&self.laptop), "plain git lost tracked state");
            }

            let (t, c) = self.measure(|| self.floor(run, &commit));
            if run > 0 {
                floor.push(t);
                floor_conn += c;
            }
        }
        self.clean(&self.laptop);
        let runs = self.runs as f64;
        let rows = transports
            .iter()
            .zip(ours)
            .map(|((way, _), (times, connections))| Row {
                way: format!("ours fresh (new worktree), {way}"),
                median: median(times),
                connections: connections as f64 / runs,
            })
            .collect();
        (
            rows,
            Row {
                way: "plain git (stash+push+ssh)".into(),
                median: median(plain),
                connections: plain_conn as f64 / runs,
            },
            Row {
                way: "the floor (ssh + worktree add)".into(),
                median: median(floor),
                connections: floor_conn as f64 / runs,
            },
        )
    }

    /// One thread handed out and back again and again: the host reuses its
    /// worktree, this machine the thread's worktree here.
    fn repeat(&self, host: &str, way: &str) -> (Row, Row) {
        let thread = self.new_thread(&format!("bench/repeat-{way}"));
        let (mut out, mut back) = (Vec::new(), Vec::new());
        let (mut out_conn, mut back_conn) = (0, 0);
        let mut here = self.laptop.clone();
        let mut there = None;
        for run in 0..=self.runs {
            self.make_dirty(&here, &format!("repeat {run}"));
            let (t, c) = self.measure(|| {
                let wt = self.handoff(thread, host);
                // From the second trip on, the host's worktree is reused.
                assert!(there.is_none() || there.as_ref() == Some(&wt), "the host did not reuse its worktree");
                there = Some(wt);
            });
            if run > 0 {
                out.push(t);
                out_conn += c;
            }
            let (t, c) = self.measure(|| here = self.handoff(thread, "local"));
            if run > 0 {
                back.push(t);
                back_conn += c;
            }
        }
        let runs = self.runs as f64;
        (
            Row {
                way: format!("ours repeat (reused), {way}"),
                median: median(out),
                connections: out_conn as f64 / runs,
            },
            Row {
                way: format!("ours hand-back (local), {way}"),
                median: median(back),
                connections: back_conn as f64 / runs,
            },
        )
    }

    /// `git codex-handoff <thread> <to> --yes`; returns the destination worktree.
    fn handoff(&self, thread: u64, to: &str) -> PathBuf {
        let out = self.env.run(&self.laptop, &[&thread.to_string(), to, "--yes", "--json"]);
        PathBuf::from(out.success().json()["owner_worktree"].as_str().expect("owner_worktree in the handoff's JSON"))
    }

    /// The same work moved with plain git: the stash commit W and the branch
    /// pushed to the dev box's clone (one connection), then one ssh that adds
    /// a new worktree on the branch and applies W with its index.
    fn plain_git(&self, run: usize) {
        let stash = self.git(&self.laptop, &["stash", "create"]);
        let stash = stash.trim();
        assert!(!stash.is_empty(), "nothing to stash");
        let branch = format!("plain/{run}");
        let url = format!("{HOST}:{}", self.remote_clone.display());
        let refspecs = [format!("HEAD:refs/heads/{branch}"), format!("{stash}:refs/bench/stash-{run}")];
        self.git(&self.laptop, &["push", "-q", &url, &refspecs[0], &refspecs[1]]);

        let clone = shell_quote(&self.remote_clone.display().to_string());
        let path = shell_quote(&self.remote_home.join(format!("plain-worktrees/{run}")).display().to_string());
        let script = format!(
            "git -C {clone} worktree add -q {path} {branch} && git -C {path} stash apply -q --index {stash}",
            branch = shell_quote(&branch)
        );
        self.ssh(&script);
    }

    /// The floor: the commit checked out into a new worktree there, over one connection.
    fn floor(&self, run: usize, commit: &str) {
        let clone = shell_quote(&self.remote_clone.display().to_string());
        let path = shell_quote(&self.remote_home.join(format!("floor-worktrees/{run}")).display().to_string());
        self.ssh(&format!("git -C {clone} worktree add -q --detach {path} {commit}"));
    }

    fn ssh(&self, script: &str) {
        let out = self.sshd.ssh(&self.env).args([HOST, "--", script]).output().unwrap();
        assert!(out.status.success(), "{script} over ssh failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Wall time of `f` and the SSH connections it opened.
    fn measure(&self, f: impl FnOnce()) -> (Duration, usize) {
        let before = self.sshd.accepted_connections();
        let start = Instant::now();
        f();
        let elapsed = start.elapsed();
        (elapsed, self.sshd.accepted_connections() - before)
    }

    fn new_thread(&self, branch: &str) -> u64 {
        let out = self.env.run(&self.laptop, &["thread", "new", "--branch", branch, "--json"]);
        out.success().json()["number"].as_u64().expect("thread number")
    }

    /// A small change: 3 tracked files edited (one of them staged), 2
    /// untracked files added; `tag` makes its bytes unique.
    fn make_dirty(&self, dir: &Path, tag: &str) {
        for (n, (file, committed)) in self.dirty.iter().enumerate() {
            let mut bytes = committed.clone();
            bytes.extend_from_slice(format!("// {tag}\n").as_bytes());
            write(dir, file.as_bytes(), &bytes);
            if n == 0 {
                self.git(dir, &["add", "--", file]);
            }
        }
        write(dir, NOTES.as_bytes(), format!("untracked notes, {tag}\n").as_bytes());
        write(dir, self.scratch.as_bytes(), format!("/* untracked, {tag} */\n").as_bytes());
    }

    /// Undo `make_dirty` (the laptop is on main, whose tree it never changes).
    fn clean(&self, dir: &Path) {
        self.git(dir, &["reset", "-q", "--hard"]);
        for untracked in [NOTES, &self.scratch] {
            let _ = std::fs::remove_file(dir.join(untracked));
        }
    }

    fn git(&self, dir: &Path, args: &[&str]) -> String {
        self.env.git(dir, args)
    }
}
