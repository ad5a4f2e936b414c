//! Generated repositories for the handoff benchmark, made by `git
//! fast-import` (one pack, seconds) and cached under `target/bench-data/`
//! while their marker matches their HEAD. Fixed dates and a seeded PRNG make
//! every generation the same history.
//!
//! Two shapes: `flat`, about git's own size (4,000 files of about 3 KB in
//! directories two to three levels deep, 3,000 small commits), and `real`,
//! shaped like a real project's clone (rust-lang/cargo: about 3,000 files of
//! very different sizes in trees up to seven levels deep, a few files of
//! megabytes, a long history of small commits).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use crate::harness::{Rng, TestEnv};

/// One file of a generated repository.
#[derive(Clone)]
pub struct FileSpec {
    pub path: String,
    /// Bytes of its first version.
    pub size: usize,
}

/// What a shape generates.
pub struct Shape {
    pub name: String,
    pub label: String,
    pub files: Vec<FileSpec>,
    pub commits: usize,
}

/// About git's own size: `files` files of about 3 KB, `commits` commits.
pub fn flat(files: usize, commits: usize) -> Shape {
    let files = (0..files)
        .map(|i| {
            let sub = if i.is_multiple_of(4) { "sub/" } else { "" };
            // 60 lines of 56 bytes.
            FileSpec { path: format!("lib{}/mod{}/{sub}f{i:04}.c", i / 500, (i / 50) % 10), size: 60 * 56 }
        })
        .collect::<Vec<_>>();
    Shape {
        name: format!("handoff-{}-{commits}", files.len()),
        label: format!("generated, {} files", files.len()),
        files,
        commits,
    }
}

/// Shaped like a clone of a real project: sizes from 200 B to 40 KB (most
/// a few KB), four large files (1 to 12 MiB), paths up to seven levels deep.
pub fn real(files: usize, commits: usize) -> Shape {
    const TOP: &[&str] = &["src", "src", "src", "tests", "tests", "crates", "benches", "doc", "ci", "credential"];
    const WORDS: &[&str] = &[
        "core",
        "compiler",
        "ops",
        "util",
        "sources",
        "registry",
        "git",
        "build_context",
        "fingerprint",
        "resolver",
        "features",
        "toml",
        "lints",
        "testsuite",
        "cargo_add",
        "in",
        "out",
        "fixtures",
        "job_queue",
        "layout",
        "timings",
        "network",
        "http",
        "index",
        "workspace",
        "profiles",
        "manifest",
        "package_id",
        "semver",
        "config",
        "de",
        "schema",
        "auth",
        "credential",
        "platform",
        "support",
        "paths",
        "publish",
        "vendor",
    ];
    const EXT: &[&str] = &["rs", "rs", "rs", "rs", "rs", "md", "toml", "txt", "json", "sh"];
    let mut rng = Rng::new(1_234_567);
    let mut seen = std::collections::BTreeSet::new();
    let mut specs = Vec::with_capacity(files);
    while specs.len() < files.saturating_sub(4) {
        let depth = 1 + rng.below(3) + rng.below(4); // 1..=6 directories
        let mut path = String::from(*rng.pick(TOP));
        for _ in 1..depth {
            let word: &&str = rng.pick(WORDS);
            path.push('/');
            path.push_str(word);
        }
        path.push_str(&format!("/{}_{}.{}", rng.pick(WORDS), specs.len(), rng.pick(EXT)));
        if !seen.insert(path.clone()) {
            continue;
        }
        // Mostly a few KB, now and then tens of KB: 200 B times 2^(0..7.5).
        let size = (200.0 * 2f64.powf((rng.below(8) + rng.below(8)) as f64 / 2.0)) as usize;
        specs.push(FileSpec { path, size });
    }
    for (n, mib) in [1usize, 3, 6, 12].into_iter().enumerate() {
        specs.push(FileSpec { path: format!("tests/testsuite/data/large_{n}.json"), size: mib << 20 });
    }
    Shape {
        name: format!("real-{}-{commits}", specs.len()),
        label: format!("real-shaped, {} files", specs.len()),
        files: specs,
        commits,
    }
}

impl Shape {
    /// The bare repository of this shape, generated once.
    pub fn cached(&self, env: &TestEnv, data: &Path) -> PathBuf {
        let repo = data.join(format!("{}.git", self.name));
        let marker = data.join(format!("{}.ok", self.name));
        let head = env
            .command("git", data)
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
        let mut child =
            env.command("git", &repo).args(["fast-import", "--quiet"]).stdin(Stdio::piped()).spawn().unwrap();
        let mut stream = std::io::BufWriter::with_capacity(1 << 20, child.stdin.take().unwrap());
        self.write_history(&mut stream);
        drop(stream);
        assert!(child.wait().unwrap().success(), "git fast-import failed");
        std::fs::write(&marker, env.git(&repo, &["rev-parse", "HEAD"])).unwrap();
        println!("repository: generated {} in {:.1} s", repo.display(), start.elapsed().as_secs_f64());
        repo
    }

    /// The first commit adds every file; each later one edits 1-3 small
    /// files, and now and then one of the large ones.
    fn write_history(&self, stream: &mut impl Write) {
        let mut versions = vec![0usize; self.files.len()];
        let large: Vec<usize> = (0..self.files.len()).filter(|i| self.files[*i].size > 1 << 20).collect();
        let mut rng = Rng::new(42);
        for c in 0..self.commits {
            let msg = format!("commit {c}\n");
            let date = 1_600_000_000 + c * 600;
            write!(stream, "commit refs/heads/main\ncommitter Bench <bench@example.com> {date} +0000\n").unwrap();
            write!(stream, "data {}\n{msg}", msg.len()).unwrap();
            let mut touched: Vec<usize> = if c == 0 {
                (0..self.files.len()).collect()
            } else {
                (0..1 + rng.below(3)).map(|_| rng.below(self.files.len())).filter(|i| !large.contains(i)).collect()
            };
            if c > 0 && !large.is_empty() && c.is_multiple_of(2000) {
                touched.push(large[c / 2000 % large.len()]);
            }
            for i in touched {
                if c > 0 {
                    versions[i] += 1;
                }
                let content = content(i, self.files[i].size, versions[i]);
                write!(stream, "M 100644 inline {}\ndata {}\n", self.files[i].path, content.len()).unwrap();
                stream.write_all(content.as_bytes()).unwrap();
                stream.write_all(b"\n").unwrap();
            }
        }
    }
}

/// About `size` bytes of distinct text for file `i`; version `v` changes
/// one line, so later versions delta well against earlier ones, as real edits do.
pub fn content(i: usize, size: usize, v: usize) -> String {
    let lines = (size / 56).max(1);
    let mut s = String::with_capacity(size + 64);
    for l in 0..lines {
        s += &format!("int f{i}_{l}(int x) {{ return x * {} + {l}; }}", (i * 31 + l * 7) % 1009);
        if v > 0 && l == v % lines {
            s += &format!(" /* v{v} */");
        }
        s.push('\n');
    }
    s
}
