//! Handoff benchmark: `git codex-handoff <N> devbox` against the plain-git way
//! of moving the same work (stash create, push, ssh + `git worktree add` +
//! `stash apply`), over a real sshd on 127.0.0.1, on a repository of roughly
//! git's own size (DESIGN.md §5: one SSH connection per handoff; the goal is
//! at most half the plain-git time). Each of our rows is measured over the
//! `openssh` transport (the system ssh) and, where built, over `ssh2`
//! (libssh2 in-process), both reaching the same sshd through the same
//! `~/.ssh/config`.
//!
//! Prints figures only; it never asserts timings. `BENCH_QUICK=1` makes a
//! smoke run (a small repository, 3 runs); `BENCH_ONLY=rollout` runs only
//! the large-rollout row. The generated repository is cached
//! under `target/bench-data/` and cloned into a fresh fixture on every run.
//! The fixture lives in `$TMPDIR`: writing the files of a new worktree is a
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

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use harness::{make_home, write, Rng, TestEnv, BIN};
use sshd::{shell_quote, Sshd, HOST};

/// The same dev box, reached with the `ssh2` transport.
const SSH2_HOST: &str = "devbox-ssh2";

/// Lines per generated file (about 3 KB each, like git's sources).
const LINES: usize = 60;

struct Size {
    files: usize,
    commits: usize,
    runs: usize,
}

/// Both sides of the handoff: the laptop clone and the dev box behind sshd.
struct World {
    env: TestEnv,
    sshd: Sshd,
    laptop: PathBuf,
    remote_home: PathBuf,
    remote_clone: PathBuf,
    size: Size,
}

/// The median of one way, and its SSH connections per run.
struct Row {
    way: String,
    median: Duration,
    connections: f64,
}

fn main() {
    let started = Instant::now();
    let quick = std::env::var_os("BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0");
    if std::env::var_os("BENCH_ONLY").is_some_and(|v| v == "rollout") {
        transcript_memory(if quick { 10 } else { 100 });
        return;
    }
    let size =
        if quick { Size { files: 400, commits: 300, runs: 3 } } else { Size { files: 4000, commits: 3000, runs: 7 } };
    let env = TestEnv::new();
    println!("nproc: {}", std::thread::available_parallelism().map_or(0, |n| n.get()));
    println!("{}", env.git(env.root.path(), &["version"]).trim());

    let cache = cached_repository(&env, &size);
    let w = World::new(env, &cache, size);
    let setup = started.elapsed();
    println!(
        "repository: {} files, {} commits ({}); fixture ready after {:.1} s",
        w.git(&w.laptop, &["ls-files"]).lines().count(),
        w.git(&w.laptop, &["rev-list", "--count", "HEAD"]).trim(),
        if quick { "BENCH_QUICK" } else { "about git's size" },
        setup.as_secs_f64()
    );
    println!("fixture: {}", w.env.root.path().display());
    println!("each run: 3 tracked files changed (1 staged), 2 untracked added; {} runs after 1 warm-up", w.size.runs);

    let (fresh, plain) = w.fresh_and_plain();
    let mut rows = Vec::new();
    for (way, host) in w.transports() {
        let (repeat, back) = w.repeat(host, way);
        rows.extend([repeat, back]);
    }

    println!();
    println!("{:<34} {:>10} {:>9} {:>9}", "way", "median ms", "conn/run", "vs plain");
    for row in fresh.iter().chain(&rows).chain([&plain]) {
        let ratio = ms(row.median) / ms(plain.median);
        println!("{:<34} {:>10.1} {:>9.1} {:>8.2}x", row.way, ms(row.median), row.connections, ratio);
    }
    println!("goal: ours <= 0.5x plain git, 1 connection");
    println!("plain git does not carry the untracked files (`git stash create` has no -u); ours does");
    transcript_memory(if quick { 10 } else { 100 });
    println!("total: {:.1} s", started.elapsed().as_secs_f64());
}

/// A handoff of a thread whose Codex rollout is large, out to the host and
/// back: wall time and the peak resident memory of this computer's process
/// and of the helper on each trip (the `local` transport makes the helper a
/// child we can watch). Rollouts are streamed and rewritten line by line, so
/// neither should grow with the rollout (the goal: under 64 MiB); git's own
/// processes (which pack the blob) are not counted.
fn transcript_memory(megabytes: usize) {
    let env = TestEnv::new();
    let laptop = env.init_repo("laptop");
    write(&laptop, b"a.txt", b"a\n");
    env.git(&laptop, &["add", "a.txt"]);
    env.git(&laptop, &["commit", "-q", "-m", "base"]);
    let remote_home = make_home(&env.path("remote-home"), "devbox");
    let clone = env.path("devbox-clone");
    env.git_as(&remote_home, env.root.path(), &["clone", "-q", laptop.to_str().unwrap(), clone.to_str().unwrap()]);
    env.git_as(&remote_home, &clone, &["checkout", "-q", "-b", "devbox-home"]);
    env.run_as(&remote_home, &clone, &["project", "save"]);
    env.run(&laptop, &["host", "add", "devbox", remote_home.to_str().unwrap(), "--transport", "local"]);

    let id = "0199f3a2-7b1c-7d2e-9f00-0000000000aa";
    let rollout = env.home.join(".codex/sessions/2026/11/24").join(format!("rollout-2026-11-24T08-00-00-{id}.jsonl"));
    write_large_rollout(&rollout, id, &laptop, megabytes);
    env.run(&laptop, &["thread", "new", "--codex-session", id, "--branch", "feat/big"]);
    let size_mb = std::fs::metadata(&rollout).unwrap().len() as f64 / 1_048_576.0;

    println!();
    println!("{size_mb:.0} MiB Codex rollout (paginated; every 40th line names the working directory; one 8 MiB line)");
    println!("{:<26} {:>10} {:>12} {:>12}", "trip", "s", "client MiB", "helper MiB");
    for (trip, to) in [("out (client departs)", "devbox"), ("back (client arrives)", "local")] {
        let (took, client, helper, code) = watch(&env, &laptop, &["1", to, "--yes"]);
        println!(
            "{:<26} {:>10.2} {:>12.1} {:>12.1}{}",
            trip,
            took.as_secs_f64(),
            client as f64 / 1024.0,
            helper as f64 / 1024.0,
            if code == 0 { String::new() } else { format!("  (exit {code})") }
        );
    }
    let back = std::fs::metadata(&rollout).map_or(0.0, |m| m.len() as f64 / 1_048_576.0);
    println!("goal: under 64 MiB resident on both sides; back home: {back:.0} MiB in the same file");
}

/// A rollout in Codex's paginated form: turns of a few lines, the working
/// directory in every turn's turn_context and thread settings.
fn write_large_rollout(path: &Path, id: &str, cwd: &Path, megabytes: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let cwd = cwd.display();
    writeln!(
        file,
        "{{\"timestamp\":\"2026-11-24T08:00:00.000Z\",\"ordinal\":0,\"type\":\"session_meta\",\"payload\":{{\"id\":\"{id}\",\
         \"timestamp\":\"2026-11-24T08:00:00.000Z\",\"cwd\":\"{cwd}\",\"runtime_workspace_roots\":[\"{cwd}\"],\"source\":\"exec\",\
         \"history_mode\":\"paginated\"}}}}"
    )
    .unwrap();
    let mut rng = Rng::new(7);
    let mut ordinal = 1u64;
    let big: String = "A".repeat(8 << 20);
    let mut written = emit(
        &mut file,
        &mut ordinal,
        format!("\"type\":\"response_item\",\"payload\":{{\"type\":\"image\",\"data\":\"{big}\"}}"),
    );
    while written < megabytes << 20 {
        if ordinal.is_multiple_of(40) {
            written += emit(
                &mut file,
                &mut ordinal,
                format!("\"type\":\"turn_context\",\"payload\":{{\"cwd\":\"{cwd}\",\"model\":\"m\"}}"),
            );
            written += emit(
                &mut file,
                &mut ordinal,
                format!("\"type\":\"event_msg\",\"payload\":{{\"type\":\"thread_settings_applied\",\"thread_settings\":{{\"cwd\":\"{cwd}\",\"runtime_workspace_roots\":[\"{cwd}\"]}}}}"),
            );
        }
        let text: String = rng.bytes(900, false).into_iter().map(char::from).filter(|c| *c != '\n').collect();
        written += emit(
            &mut file,
            &mut ordinal,
            format!("\"type\":\"response_item\",\"payload\":{{\"type\":\"message\",\"text\":\"{text}\"}}"),
        );
    }
}

/// One rollout line with the next ordinal; returns its length.
fn emit(file: &mut impl Write, ordinal: &mut u64, body: String) -> usize {
    let text = format!("{{\"timestamp\":\"2026-11-24T08:00:01.000Z\",\"ordinal\":{ordinal},{body}}}\n");
    file.write_all(text.as_bytes()).unwrap();
    *ordinal += 1;
    text.len()
}

/// Run the binary (directly, so its pid is the client's) and sample the
/// peak resident memory of it and of its helper child until it exits.
fn watch(env: &TestEnv, dir: &Path, args: &[&str]) -> (Duration, u64, u64, i32) {
    let mut client = env.command(BIN, dir);
    client.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    let started = Instant::now();
    let mut child = client.spawn().unwrap();
    let pid = child.id();
    let (mut client_peak, mut helper_peak) = (0u64, 0u64);
    while child.try_wait().unwrap().is_none() {
        client_peak = client_peak.max(vm_hwm_kib(pid));
        for helper in children(pid) {
            helper_peak = helper_peak.max(vm_hwm_kib(helper));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = started.elapsed();
    let code = child.wait().unwrap().code().unwrap_or(-1);
    (took, client_peak, helper_peak, code)
}

/// The high-water mark of a process's resident memory (KiB), 0 once it is gone.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The helper runs as a child of the client; git children are not ours to count.
fn children(pid: u32) -> Vec<u32> {
    let list = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    list.split_whitespace()
        .filter_map(|c| c.parse().ok())
        .filter(|c| std::fs::read_to_string(format!("/proc/{c}/cmdline")).is_ok_and(|cmd| cmd.contains("remote")))
        .collect()
}

/// A bare repository of `size.files` files in nested directories and
/// `size.commits` commits touching 1-3 files each, made by fast-import (one
/// pack, seconds). Reused while its marker matches its HEAD.
fn cached_repository(env: &TestEnv, size: &Size) -> PathBuf {
    // The bin path is <target>/<profile>/git-codex-handoff.
    let target = Path::new(BIN).parent().and_then(Path::parent).expect("target dir");
    let data = target.join("bench-data");
    let name = format!("handoff-{}-{}", size.files, size.commits);
    let repo = data.join(format!("{name}.git"));
    let marker = data.join(format!("{name}.ok"));
    let head = env
        .command("git", &data)
        .args(["--git-dir", repo.to_str().unwrap(), "rev-parse", "-q", "--verify", "HEAD"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if head.is_some() && std::fs::read_to_string(&marker).ok() == head {
        println!("repository: reused {}", repo.display());
        return repo;
    }

    let start = Instant::now();
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(&repo).unwrap();
    env.git(&repo, &["init", "-q", "--bare", "-b", "main"]);
    let mut child = env.command("git", &repo).args(["fast-import", "--quiet"]).stdin(Stdio::piped()).spawn().unwrap();
    let mut stream = std::io::BufWriter::new(child.stdin.take().unwrap());
    let mut versions = vec![0usize; size.files];
    let mut rng = Rng::new(42);
    for c in 0..size.commits {
        let msg = format!("commit {c}\n");
        // Fixed dates keep the generated history (and its HEAD) reproducible.
        let date = 1_600_000_000 + c * 600;
        write!(stream, "commit refs/heads/main\ncommitter Bench <bench@example.com> {date} +0000\n").unwrap();
        write!(stream, "data {}\n{msg}", msg.len()).unwrap();
        // The first commit adds every file; each later one edits 1-3 of them.
        let touched: Vec<usize> = if c == 0 {
            (0..size.files).collect()
        } else {
            (0..1 + rng.below(3)).map(|_| rng.below(size.files)).collect()
        };
        for i in touched {
            if c > 0 {
                versions[i] += 1;
            }
            let content = content(i, versions[i]);
            write!(stream, "M 100644 inline {}\ndata {}\n{content}\n", path(i), content.len()).unwrap();
        }
    }
    drop(stream);
    assert!(child.wait().unwrap().success(), "git fast-import failed");
    std::fs::write(&marker, env.git(&repo, &["rev-parse", "HEAD"])).unwrap();
    println!("repository: generated {} in {:.1} s", repo.display(), start.elapsed().as_secs_f64());
    repo
}

impl World {
    /// The laptop and the dev box each clone the cached repository (as a
    /// team's machines clone one upstream); the dev box's clone is a saved
    /// project, reached over sshd with `host add devbox devbox --helper BIN`.
    fn new(env: TestEnv, cache: &Path, size: Size) -> World {
        let remote_home = make_home(&env.path("remote-home"), "devbox");
        let laptop = env.path("laptop");
        let remote_clone = remote_home.join("src/project");
        let cache = cache.to_str().unwrap();
        env.git(env.root.path(), &["clone", "-q", cache, laptop.to_str().unwrap()]);
        env.git_as(&remote_home, env.root.path(), &["clone", "-q", cache, remote_clone.to_str().unwrap()]);
        // The clone's own checkout stays off the thread's branches.
        env.git_as(&remote_home, &remote_clone, &["checkout", "-q", "-b", "devbox-home"]);
        env.run_as(&remote_home, &remote_clone, &["project", "save"]).success();
        // Files written in the index's second are racily clean and would be
        // re-hashed by the first status on each side: refresh a second later.
        std::thread::sleep(Duration::from_millis(1100));
        env.git(&laptop, &["update-index", "-q", "--refresh"]);
        env.git_as(&remote_home, &remote_clone, &["update-index", "-q", "--refresh"]);

        // The remote side gets no system config either, like the laptop side.
        let sshd = Sshd::start_with_env(&env, &remote_home, &[("GIT_CONFIG_NOSYSTEM", "1")]);
        let remote_home = sshd.remote_home().to_owned(); // canonical, as the helper sees it
        let remote_clone = remote_home.join("src/project");
        sshd.install_user_config(&env);
        env.run(&laptop, &["host", "add", HOST, HOST, "--transport", "openssh", "--helper", BIN]).success();
        if cfg!(feature = "ssh2") {
            env.run(&laptop, &["host", "add", SSH2_HOST, HOST, "--transport", "ssh2", "--helper", BIN]).success();
        }
        World { env, sshd, laptop, remote_home, remote_clone, size }
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
    /// run) over each transport, and the plain-git way, interleaved so drift
    /// affects all alike.
    fn fresh_and_plain(&self) -> (Vec<Row>, Row) {
        let transports = self.transports();
        let mut ours = vec![(Vec::new(), 0); transports.len()];
        let (mut plain, mut plain_conn) = (Vec::new(), 0);
        for run in 0..=self.size.runs {
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
        }
        self.clean(&self.laptop);
        let runs = self.size.runs as f64;
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
        for run in 0..=self.size.runs {
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
        let runs = self.size.runs as f64;
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
        PathBuf::from(out.success().json()["worktree"].as_str().expect("worktree in the handoff's JSON"))
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
        let out = self.sshd.ssh(&self.env).args([HOST, "--", &script]).output().unwrap();
        assert!(out.status.success(), "plain git over ssh failed: {}", String::from_utf8_lossy(&out.stderr));
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
        for (n, i) in self.dirty_files().into_iter().enumerate() {
            let file = path(i);
            write(dir, file.as_bytes(), format!("{}// {tag}\n", content(i, 0)).as_bytes());
            if n == 0 {
                self.git(dir, &["add", "--", &file]);
            }
        }
        write(dir, b"NOTES.txt", format!("untracked notes, {tag}\n").as_bytes());
        write(dir, b"lib0/mod1/scratch.c", format!("/* untracked, {tag} */\n").as_bytes());
    }

    /// Undo `make_dirty` (the laptop is on main, whose tree it never changes).
    fn clean(&self, dir: &Path) {
        self.git(dir, &["reset", "-q", "--hard"]);
        for untracked in ["NOTES.txt", "lib0/mod1/scratch.c"] {
            let _ = std::fs::remove_file(dir.join(untracked));
        }
    }

    fn dirty_files(&self) -> [usize; 3] {
        let n = self.size.files;
        [1, n / 2 + 3, n - 7]
    }

    fn git(&self, dir: &Path, args: &[&str]) -> String {
        self.env.git(dir, args)
    }
}

/// Nested directories two to three levels deep, 50 files per module.
fn path(i: usize) -> String {
    let sub = if i.is_multiple_of(4) { "sub/" } else { "" };
    format!("lib{}/mod{}/{sub}f{i:04}.c", i / 500, (i / 50) % 10)
}

/// Distinct text per file; version `v` changes one line, so later versions
/// delta well against earlier ones, as real edits do.
fn content(i: usize, v: usize) -> String {
    let mut s = String::with_capacity(LINES * 56);
    for l in 0..LINES {
        s += &format!("int f{i}_{l}(int x) {{ return x * {} + {l}; }}", (i * 31 + l * 7) % 1009);
        if v > 0 && l == v % LINES {
            s += &format!(" /* v{v} */");
        }
        s.push('\n');
    }
    s
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
