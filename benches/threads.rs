//! Thread store benchmark: `thread list --json`, `thread show 500` and
//! `thread new` in a repository that has 1,000 threads, each made by
//! `thread new` (the store is cached under `target/bench-data/` and copied
//! afresh for every run of the benchmark).
//!
//! Prints figures only; it never asserts timings. `BENCH_QUICK=1` makes a
//! smoke run (100 threads).

#[allow(dead_code)]
#[path = "../tests/integration/harness.rs"]
mod harness;
#[allow(dead_code)]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::{write, TestEnv, BIN};
use support::{median, ms, record};

const RUNS: usize = 9;

fn main() {
    let threads = if support::quick() { 100 } else { 1000 };
    let env = TestEnv::new();
    let cache = cached_store(&env, threads);
    let repo = env.path("repo");
    let copied = env.command("cp", env.root.path()).args(["-a"]).arg(&cache).arg(&repo).status().unwrap();
    assert!(copied.success(), "copying the thread store failed");
    let middle = (threads / 2).to_string();

    // A new thread, and the list right after that change to the store.
    let (mut news, mut colds) = (Vec::new(), Vec::new());
    for _ in 0..=RUNS {
        news.push(time(|| run(&env, &repo, &["thread", "new", "--title", "bench", "--json"])));
        colds.push(time(|| run(&env, &repo, &["thread", "list", "--json"])));
    }
    let (new, cold) = (median(news.split_off(1)), median(colds.split_off(1)));
    // At rest.
    let list = best_of(|| run(&env, &repo, &["thread", "list", "--json"]));
    let show = best_of(|| run(&env, &repo, &["thread", "show", &middle, "--json"]));
    let listed = run(&env, &repo, &["thread", "list", "--json"]);
    let count = serde_json::from_str::<serde_json::Value>(&listed).unwrap()["threads"].as_array().unwrap().len();
    assert_eq!(count, threads + RUNS + 1, "thread list lost threads");

    println!();
    println!("{threads} threads");
    println!("{:<34} {:>10}  goal", "command", "median ms");
    let rows = [
        ("thread list --json", list, 50.0),
        ("thread list --json, after a change", cold, 50.0),
        (&*format!("thread show {middle}"), show, 20.0),
        ("thread new", new, 60.0),
    ];
    for (command, took, goal) in &rows {
        println!("{command:<34} {:>10.1}  < {goal} ms", ms(*took));
    }
    record(
        BIN,
        &format!("`thread list --json`, {threads} threads"),
        &format!("{:.0} ms (after a change: {:.0} ms)", ms(list), ms(cold)),
        "< 50 ms",
        ms(list) < 50.0 && ms(cold) < 50.0,
    );
    record(
        BIN,
        &format!("`thread show {middle}` / `thread new`, {threads} threads"),
        &format!("{:.0} ms / {:.0} ms", ms(show), ms(new)),
        "< 20 ms / < 60 ms",
        ms(show) < 20.0 && ms(new) < 60.0,
    );
}

/// A repository with `threads` threads made by `thread new`, generated once.
fn cached_store(env: &TestEnv, threads: usize) -> PathBuf {
    let data = support::data_dir(BIN);
    let repo = data.join(format!("threads-{threads}"));
    let marker = data.join(format!("threads-{threads}.ok"));
    if marker.exists() && repo.join(".git").is_dir() {
        println!("thread store: reused {}", repo.display());
        return repo;
    }
    let started = Instant::now();
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(&repo).unwrap();
    env.git(&repo, &["init", "-q", "-b", "main"]);
    write(&repo, b"README.md", b"threads\n");
    env.git(&repo, &["add", "README.md"]);
    env.git(&repo, &["commit", "-q", "-m", "base"]);
    for n in 1..=threads {
        run(env, &repo, &["thread", "new", "--title", &format!("thread {n}"), "--branch", &format!("work/{n}")]);
    }
    std::fs::write(&marker, b"").unwrap();
    println!("thread store: generated {} in {:.1} s", repo.display(), started.elapsed().as_secs_f64());
    repo
}

fn run(env: &TestEnv, dir: &Path, args: &[&str]) -> String {
    let out = env.run(dir, args);
    out.success();
    out.stdout
}

/// The median of RUNS runs after a warm-up.
fn best_of(f: impl Fn() -> String) -> Duration {
    f();
    median((0..RUNS).map(|_| time(&f)).collect())
}

fn time(f: impl Fn() -> String) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}
