//! Snapshot benchmark: `git codex-handoff thread snapshot` against the plain-git
//! way of capturing the same state, on a large committed worktree (DESIGN.md §5:
//! a clean 100k-file snapshot takes no longer than `git stash create`).
//!
//! Prints figures only; it never asserts timings. `BENCH_FILES=2000` makes a
//! quick smoke run. The generated repository is cached under
//! `target/bench-data/` and reused while its marker matches its HEAD.

// The figures file `make bench` sums up (support uses the tests' harness).
#[allow(dead_code)]
#[path = "../tests/integration/harness.rs"]
mod harness;
#[allow(dead_code)]
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const OURS: &str = env!("CARGO_BIN_EXE_git-codex-handoff");
const FILES_PER_DIR: usize = 100;
const RUNS: usize = 7;
/// Files changed (and files added) by the dirty case.
const DIRTY: usize = 100;

struct Bench {
    repo: PathBuf,
    home: PathBuf,
    files: usize,
}

fn main() {
    let quick = if support::quick() { Some(2000) } else { None };
    let files: usize = std::env::var("BENCH_FILES").ok().and_then(|v| v.parse().ok()).or(quick).unwrap_or(100_000);
    // The bin path is <target>/<profile>/git-codex-handoff.
    let target = Path::new(OURS).parent().and_then(Path::parent).expect("target dir");
    let data = target.join("bench-data");
    let home = data.join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join(".gitconfig"), "[user]\n\tname = Bench\n\temail = bench@example.com\n").unwrap();
    let bench = Bench { repo: data.join(format!("repo-{files}")), home, files };
    std::fs::create_dir_all(&bench.repo).unwrap(); // every command runs in it

    println!("nproc: {}", std::thread::available_parallelism().map_or(0, |n| n.get()));
    println!("{}", bench.git_out(&["version"]).trim());
    println!("files: {files}");

    let marker = data.join(format!("repo-{files}.ok"));
    let head = bench.git_try(&["rev-parse", "-q", "--verify", "HEAD"]);
    if head.is_some() && std::fs::read_to_string(&marker).ok() == head {
        println!("repository: reused {}", bench.repo.display());
        bench.restore(); // in case an earlier run stopped inside the dirty case
    } else {
        let start = Instant::now();
        bench.generate();
        std::fs::write(&marker, bench.git_out(&["rev-parse", "HEAD"])).unwrap();
        println!("repository: generated {} in {:.1} s", bench.repo.display(), start.elapsed().as_secs_f64());
    }
    assert!(bench.git_out(&["status", "--porcelain"]).is_empty(), "the benchmark repository is not clean");
    bench.new_thread();

    let mut rows = Vec::new();
    rows.push(("clean", bench.compare(|b| b.git(&["stash", "create"]))));

    bench.make_dirty();
    rows.push(("dirty", bench.compare(Bench::plain_git_capture)));
    bench.restore();

    println!();
    println!("{:<6} {:>10} {:>10} {:>7}  goal", "case", "ours ms", "git ms", "ratio");
    for (case, (ours, git)) in &rows {
        println!("{case:<6} {:>10.1} {:>10.1} {:>6.2}x  <= 0.8x", ms(*ours), ms(*git), ms(*ours) / ms(*git));
    }
    let (ours, git) = rows[0].1;
    let ratio = ms(ours) / ms(git);
    support::record(
        OURS,
        &format!("snapshot of a clean {files}-file worktree vs `git stash create`"),
        &format!("{ratio:.2}x ({:.0} ms vs {:.0} ms)", ms(ours), ms(git)),
        "<= 0.8x",
        ratio <= 0.8,
    );
}

impl Bench {
    /// Median wall times of our snapshot and of `baseline`, runs interleaved so
    /// that drift (page cache, other load) affects both alike.
    fn compare(&self, baseline: impl Fn(&Self)) -> (Duration, Duration) {
        let ours = || self.ours(&["thread", "snapshot", "1"]);
        ours();
        baseline(self); // warm-up
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            a.push(time(ours));
            b.push(time(|| baseline(self)));
        }
        (median(a), median(b))
    }

    /// What our snapshot records, the plain-git way: a stash commit (HEAD,
    /// index, tracked changes) plus a tree of all files from a temporary index.
    fn plain_git_capture(&self) {
        self.git(&["stash", "create"]);
        let tmp = self.repo.join(".git/bench-index");
        std::fs::copy(self.repo.join(".git/index"), &tmp).unwrap();
        let tmp = tmp.to_str().unwrap();
        self.git_with_index(&["add", "-A"], tmp);
        self.git_with_index(&["write-tree"], tmp);
    }

    /// A committed repository of `files` small distinct files, 100 per directory.
    /// fast-import writes one pack instead of 100k loose objects.
    fn generate(&self) {
        let _ = std::fs::remove_dir_all(&self.repo);
        std::fs::create_dir_all(&self.repo).unwrap();
        self.git(&["init", "-q", "-b", "main"]);
        let mut child =
            self.cmd("git", &["fast-import", "--quiet"]).stdin(Stdio::piped()).spawn().expect("git fast-import");
        let mut stream = std::io::BufWriter::new(child.stdin.take().unwrap());
        let msg = "benchmark worktree\n";
        write!(stream, "commit refs/heads/main\ncommitter Bench <bench@example.com> 0 +0000\n").unwrap();
        write!(stream, "data {}\n{msg}", msg.len()).unwrap();
        for i in 0..self.files {
            let content = content(i);
            write!(stream, "M 100644 inline {}\ndata {}\n{content}\n", path(i), content.len()).unwrap();
        }
        drop(stream);
        assert!(child.wait().unwrap().success(), "git fast-import failed");

        // Write the files ourselves, then let the index (written a second
        // later) pick up their stat data: no entry is racily clean, so neither
        // side pays for re-hashing files in the timed runs.
        for i in 0..self.files {
            let file = self.repo.join(path(i));
            if i % FILES_PER_DIR == 0 {
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            }
            std::fs::write(file, content(i)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(1100));
        self.git(&["reset", "-q"]);
    }

    /// Start thread #1 on a fresh store, so reruns do not depend on what an
    /// older build left in it.
    fn new_thread(&self) {
        let refs = self.git_out(&[
            "for-each-ref",
            "--format=delete %(refname)",
            "refs/codex-handoff/",
            "refs/notes/codex-handoff",
        ]);
        let mut child = self.cmd("git", &["update-ref", "--stdin"]).stdin(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(refs.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "git update-ref failed");
        let _ = std::fs::remove_dir_all(self.repo.join(".git/codex-handoff"));
        self.ours(&["thread", "new", "--title", "bench"]);
    }

    /// Change `DIRTY` tracked files spread over the tree and add `DIRTY` untracked ones.
    fn make_dirty(&self) {
        for i in self.dirty_indices() {
            std::fs::write(self.repo.join(path(i)), format!("{}changed\n", content(i))).unwrap();
            std::fs::write(self.repo.join(untracked_path(i)), format!("untracked {i}\n")).unwrap();
        }
    }

    /// Undo `make_dirty` by rewriting the original bytes, then refresh the index
    /// a second later so the clean state is as fast to scan as freshly generated.
    fn restore(&self) {
        for i in self.dirty_indices() {
            std::fs::write(self.repo.join(path(i)), content(i)).unwrap();
            let _ = std::fs::remove_file(self.repo.join(untracked_path(i)));
        }
        std::thread::sleep(Duration::from_millis(1100));
        self.git(&["update-index", "-q", "--refresh"]);
    }

    fn dirty_indices(&self) -> impl Iterator<Item = usize> {
        let step = (self.files / DIRTY).max(1);
        (0..self.files).step_by(step).take(DIRTY)
    }

    /// A command isolated from the user's and the system's git configuration.
    fn cmd(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args).current_dir(&self.repo).env("HOME", &self.home).env("GIT_CONFIG_NOSYSTEM", "1");
        cmd.env("XDG_CONFIG_HOME", self.home.join(".config"));
        // Never fall back to the enclosing project's repository.
        cmd.env("GIT_CEILING_DIRECTORIES", self.repo.parent().unwrap());
        for var in [
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_CONFIG_GLOBAL",
            "GIT_CONFIG_PARAMETERS",
            "GIT_CONFIG_COUNT",
            "CODEX_HANDOFF_THREAD",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    fn run(&self, cmd: &mut Command) -> String {
        let out = cmd.stderr(Stdio::inherit()).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        assert!(out.status.success(), "{cmd:?} failed");
        String::from_utf8(out.stdout).unwrap()
    }

    fn ours(&self, args: &[&str]) -> String {
        self.run(&mut self.cmd(OURS, args))
    }

    fn git(&self, args: &[&str]) {
        self.git_out(args);
    }

    fn git_out(&self, args: &[&str]) -> String {
        self.run(&mut self.cmd("git", args))
    }

    fn git_with_index(&self, args: &[&str], index: &str) {
        self.run(self.cmd("git", args).env("GIT_INDEX_FILE", index));
    }

    /// Stdout of a git command that may fail (e.g. before the repository exists).
    fn git_try(&self, args: &[&str]) -> Option<String> {
        let out = self.cmd("git", args).stderr(Stdio::null()).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn path(i: usize) -> String {
    format!("d{:04}/f{:03}.txt", i / FILES_PER_DIR, i % FILES_PER_DIR)
}

fn untracked_path(i: usize) -> String {
    format!("d{:04}/new{:03}.txt", i / FILES_PER_DIR, i % FILES_PER_DIR)
}

/// Distinct content per file, so every file is its own blob as in a real tree.
fn content(i: usize) -> String {
    format!("file {i}\nline two of file {i}\nline three of file {i}\n")
}

fn time<T>(f: impl FnOnce() -> T) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
