//! What the benchmarks share: the figures file that `make bench` sums up at
//! the end, medians, and the generated repositories.

pub mod repos;
pub mod rollout;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `target/bench-data`, where generated repositories are cached and figures collected.
pub fn data_dir(bin: &str) -> PathBuf {
    // The bin path is <target>/<profile>/git-codex-handoff.
    let target = Path::new(bin).parent().and_then(Path::parent).expect("target dir");
    let data = target.join("bench-data");
    std::fs::create_dir_all(&data).expect("bench-data directory");
    data
}

/// Record one figure of the summary table (`scripts/bench-summary.sh`
/// prints them after all benchmarks ran): what, the figure now, the goal,
/// and whether it is met.
pub fn record(bin: &str, figure: &str, now: &str, goal: &str, met: bool) {
    let line = format!("{figure}\t{now}\t{goal}\t{}\n", if met { "met" } else { "NOT met" });
    let file = data_dir(bin).join("figures.tsv");
    let mut out = std::fs::OpenOptions::new().create(true).append(true).open(file).expect("figures file");
    out.write_all(line.as_bytes()).expect("write figures");
}

/// `BENCH_QUICK=1`: small sizes and few runs, a smoke test of the benchmarks themselves.
pub fn quick() -> bool {
    std::env::var_os("BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0")
}

/// `BENCH_ONLY=<part>`: run only that part of a benchmark (unset: all of it).
pub fn only(part: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |v| v.is_empty() || v.split(',').any(|p| p == part))
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
