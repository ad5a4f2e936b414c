//! A small harness: isolated HOME and git config, real repositories made with
//! the git binary, and the real built binary run through `git codex-handoff`.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_git-codex-handoff");

pub struct TestEnv {
    pub root: tempfile::TempDir,
    pub home: PathBuf,
    path_var: OsString,
    /// Variables added to every command (e.g. GIT_SSH_COMMAND).
    extra: std::cell::RefCell<Vec<(String, String)>>,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let root = tempfile::Builder::new().prefix("codex-handoff-test-").tempdir().expect("tempdir");
        let home = make_home(&root.path().join("home"), "laptop");
        let bin_dir = Path::new(BIN).parent().unwrap();
        let mut path_var = OsString::from(bin_dir);
        path_var.push(":");
        path_var.push(std::env::var_os("PATH").unwrap_or_default());
        TestEnv { root, home, path_var, extra: Default::default() }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// A command with this environment (isolated from the user's config).
    pub fn command(&self, program: &str, dir: &Path) -> Command {
        self.command_with_home(program, dir, &self.home)
    }

    /// The same environment with another HOME (the "remote" side's).
    pub fn command_with_home(&self, program: &str, dir: &Path, home: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(dir)
            .env_clear()
            .env("PATH", &self.path_var)
            .env("HOME", home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("LANG", "C.UTF-8")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for (k, v) in self.extra.borrow().iter() {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn set_var(&self, key: &str, value: &str) {
        self.extra.borrow_mut().push((key.to_owned(), value.to_owned()));
    }

    /// Run `git codex-handoff <args>` in `dir` as the user whose HOME is `home`.
    pub fn run_as(&self, home: &Path, dir: &Path, args: &[&str]) -> Run {
        let mut cmd = self.command_with_home("git", dir, home);
        cmd.arg("codex-handoff").args(args);
        Run::from(cmd.output().expect("run git codex-handoff"))
    }

    /// Run git in `dir` as the user whose HOME is `home`; panics on failure.
    pub fn git_as(&self, home: &Path, dir: &Path, args: &[&str]) -> String {
        let out = self.command_with_home("git", dir, home).args(args).output().expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} failed in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run `git codex-handoff <args>` in `dir`.
    pub fn run(&self, dir: &Path, args: &[&str]) -> Run {
        let mut cmd = self.command("git", dir);
        cmd.arg("codex-handoff").args(args);
        Run::from(cmd.output().expect("run git codex-handoff"))
    }

    /// Run git in `dir`; panics with its stderr on failure.
    pub fn git(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.git_bytes(dir, args);
        String::from_utf8_lossy(&out).into_owned()
    }

    pub fn git_bytes(&self, dir: &Path, args: &[&str]) -> Vec<u8> {
        let out = self.command("git", dir).args(args).output().expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} failed in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Run git with the given environment variables; returns the raw output.
    pub fn git_with_env(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command("git", dir);
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run git")
    }

    /// A new repository at `rel` with one commit (a.txt).
    pub fn committed_repo(&self, rel: &str) -> PathBuf {
        let dir = self.init_repo(rel);
        write(&dir, b"a.txt", b"one\n");
        self.git(&dir, &["add", "a.txt"]);
        self.git(&dir, &["commit", "-q", "-m", "one"]);
        dir
    }

    /// A new repository at `rel`.
    pub fn init_repo(&self, rel: &str) -> PathBuf {
        let dir = self.path(rel);
        std::fs::create_dir_all(&dir).unwrap();
        self.git(&dir, &["init", "-q"]);
        dir
    }
}

/// A HOME with a git identity and `codex-handoff.machine` set to `machine`.
pub fn make_home(home: &Path, machine: &str) -> PathBuf {
    std::fs::create_dir_all(home).unwrap();
    std::fs::write(
        home.join(".gitconfig"),
        format!(
            "[user]\n\tname = Test User\n\temail = test@{machine}.example.com\n[init]\n\tdefaultBranch = main\n\
             [codex-handoff]\n\tmachine = {machine}\n[advice]\n\tdetachedHead = false\n"
        ),
    )
    .unwrap();
    // Each HOME is its own machine: a machine id of its own, as first use would make.
    let state = home.join(".local/state/git-codex-handoff");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("machine-id"), format!("{}\n", fresh_id(machine))).unwrap();
    home.to_owned()
}

/// An id no other test HOME has.
pub fn fresh_id(machine: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("test-{machine}-{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn success(&self) -> &Run {
        assert_eq!(self.code, 0, "expected success\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not one JSON document ({e}):\n{}\nstderr: {}", self.stdout, self.stderr)
        })
    }
    #[track_caller]
    pub fn fails_with(&self, code: i32, text: &str) -> &Run {
        assert_eq!(self.code, code, "exit code\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        assert!(
            self.stderr.contains(text) || self.stdout.contains(text),
            "expected {text:?} in the output\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }
}

pub fn os(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

/// Write a file, replacing whatever is in the way (a directory, a symlink, a
/// file where a parent directory should be).
pub fn write(dir: &Path, rel: &[u8], data: &[u8]) {
    let path = make_room(dir, rel);
    std::fs::write(&path, data).unwrap();
}

fn make_room(dir: &Path, rel: &[u8]) -> PathBuf {
    let path = dir.join(OsStr::from_bytes(rel));
    let mut ancestor = PathBuf::from(dir);
    let parts: Vec<&[u8]> = rel.split(|b| *b == b'/').collect();
    for part in &parts[..parts.len() - 1] {
        ancestor.push(OsStr::from_bytes(part));
        if ancestor.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
            std::fs::remove_file(&ancestor).unwrap();
        }
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path).unwrap(),
        Ok(_) => std::fs::remove_file(&path).unwrap(),
        Err(_) => {}
    }
    path
}

pub fn set_exec(dir: &Path, rel: &[u8], exec: bool) {
    let path = dir.join(OsStr::from_bytes(rel));
    let mode = if exec { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub fn symlink(dir: &Path, rel: &[u8], target: &[u8]) {
    let path = make_room(dir, rel);
    std::os::unix::fs::symlink(OsStr::from_bytes(target), &path).unwrap();
}

/// What a user sees of one path in a worktree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileFact {
    File { bytes: Vec<u8>, executable: bool },
    Symlink { target: Vec<u8> },
    Dir,
}

/// Every path under `dir` except `.git`, with bytes, executable bit and link targets.
pub fn files(dir: &Path) -> BTreeMap<Vec<u8>, FileFact> {
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<Vec<u8>, FileFact>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap().as_os_str().as_bytes().to_vec();
        if rel == b".git" {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap().into_os_string().into_vec();
            out.insert(rel, FileFact::Symlink { target });
        } else if meta.is_dir() {
            out.insert(rel, FileFact::Dir);
            walk(root, &path, out);
        } else {
            let executable = meta.permissions().mode() & 0o111 != 0;
            out.insert(rel, FileFact::File { bytes: std::fs::read(&path).unwrap(), executable });
        }
    }
}

/// What a user would compare between two worktrees.
#[derive(Debug, PartialEq, Eq)]
pub struct WorktreeFacts {
    pub status: String,
    pub index: String,
    pub files: BTreeMap<Vec<u8>, FileFact>,
}

impl TestEnv {
    /// Facts without ignored files and directories (a snapshot carries neither).
    pub fn carried_facts(&self, dir: &Path) -> WorktreeFacts {
        let mut facts = self.facts(dir);
        let ignored = self.git_bytes(dir, &["ls-files", "-z", "-o", "-i", "--exclude-standard"]);
        for path in ignored.split(|b| *b == 0).filter(|p| !p.is_empty()) {
            facts.files.remove(path);
        }
        facts.files.retain(|_, f| !matches!(f, FileFact::Dir));
        facts
    }

    pub fn facts(&self, dir: &Path) -> WorktreeFacts {
        WorktreeFacts {
            status: self.git(dir, &["status", "--porcelain=v2", "--untracked-files=all", "-z"]),
            index: self.git(dir, &["ls-files", "-s", "-z"]),
            files: files(dir),
        }
    }

    /// Everything a snapshot must leave alone: index file bytes, files, and
    /// every ref except the tool's own.
    pub fn untouchables(&self, dir: &Path) -> (Vec<u8>, BTreeMap<Vec<u8>, FileFact>, String, String) {
        let git_dir = PathBuf::from(self.git(dir, &["rev-parse", "--absolute-git-dir"]).trim());
        let index = std::fs::read(git_dir.join("index")).unwrap_or_default();
        let refs: String = self
            .git(dir, &["for-each-ref", "--format=%(refname) %(objectname)"])
            .lines()
            .filter(|l| !l.starts_with("refs/codex-handoff/") && !l.starts_with("refs/notes/codex-handoff "))
            .map(|l| format!("{l}\n"))
            .collect();
        let head = std::fs::read_to_string(git_dir.join("HEAD")).unwrap_or_default();
        (index, files(dir), refs, head)
    }
}

/// A small deterministic PRNG (xorshift64*), so random states are reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    pub fn bytes(&mut self, len: usize, binary: bool) -> Vec<u8> {
        (0..len)
            .map(|i| {
                let r = self.next() as u8;
                if binary {
                    r
                } else if i % 17 == 16 {
                    b'\n'
                } else {
                    b'a' + r % 26
                }
            })
            .collect()
    }
}

/// Assert two descriptions of "everything" are equal, showing only the lines that differ.
#[track_caller]
pub fn assert_unchanged(before: &str, after: &str, what: &str) {
    if before == after {
        return;
    }
    let old: Vec<&str> = before.lines().collect();
    let new: Vec<&str> = after.lines().collect();
    let gone: Vec<String> =
        old.iter().filter(|l| !new.contains(l)).map(|l| format!("- {}", &l[..l.len().min(300)])).collect();
    let added: Vec<String> =
        new.iter().filter(|l| !old.contains(l)).map(|l| format!("+ {}", &l[..l.len().min(300)])).collect();
    panic!("{what} changed something:\n{}\n{}", gone.join("\n"), added.join("\n"));
}

impl TestEnv {
    /// Run `git codex-handoff <args>` in `dir` in a terminal of its own: its
    /// stdin, stdout and stderr are a new pseudo-terminal (its controlling
    /// terminal), as when a person types the command. Returns the exit code
    /// and everything the terminal showed (as `stdout`; `stderr` is empty).
    pub fn run_in_terminal(&self, dir: &Path, args: &[&str]) -> Run {
        self.type_in_terminal(dir, args, b"")
    }

    /// [`TestEnv::run_in_terminal`], with `keys` typed into the terminal once it starts.
    pub fn type_in_terminal(&self, dir: &Path, args: &[&str], keys: &[u8]) -> Run {
        let mut cmd = self.command("git", dir);
        cmd.arg("codex-handoff").args(args);
        run_in_terminal(cmd, keys)
    }
}

/// Run `cmd` with a new pseudo-terminal as its controlling terminal and
/// stdio (60 s at most), `keys` typed into it (the terminal keeps them until read).
pub fn run_in_terminal(cmd: Command, keys: &[u8]) -> Run {
    run_in_terminal_with(cmd, keys, false)
}

/// [`run_in_terminal`], but stdout a pipe: what it printed is `stdout`,
/// what the terminal showed is `stderr`.
pub fn run_with_terminal_stderr(cmd: Command, keys: &[u8]) -> Run {
    run_in_terminal_with(cmd, keys, true)
}

fn run_in_terminal_with(mut cmd: Command, keys: &[u8], piped_stdout: bool) -> Run {
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors it opened; nothing else is passed.
    let mut size = libc::winsize { ws_row: 40, ws_col: 120, ws_xpixel: 0, ws_ypixel: 0 };
    // (Pointers to mutable data fit both the Linux and the macOS signature.)
    let opened =
        unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null_mut(), &raw mut size) };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are open and owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    // A terminal that draws nothing in place, unless the test says which.
    if !cmd.get_envs().any(|(k, _)| k == "TERM") {
        cmd.env("TERM", "dumb");
    }
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    if piped_stdout {
        cmd.stdout(Stdio::piped());
    }
    // SAFETY: setsid and ioctl are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("start the command in a terminal");
    drop(cmd); // the parent's copies of the terminal's side
    let piped = child.stdout.take().map(|mut out| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            text
        })
    });
    let mut master = std::fs::File::from(master);
    master.write_all(keys).unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once every process has closed the terminal.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the command in a terminal did not finish in 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let out = reader.join().unwrap();
    let screen = String::from_utf8_lossy(&out).replace("\r\n", "\n");
    match piped {
        Some(piped) => Run { code: status.code().unwrap_or(-1), stdout: piped.join().unwrap(), stderr: screen },
        None => Run { code: status.code().unwrap_or(-1), stdout: screen, stderr: String::new() },
    }
}

/// Everything under `root` that a user could lose or an attacker could plant,
/// one line per path (kind, permission bits, sha256 of the bytes, symlink
/// target), leaving out the `expected` places (paths relative to `root`; a
/// place covers everything below it). Compare two with `assert_unchanged`.
pub fn tree_digest(root: &Path, expected: &[PathBuf]) -> String {
    use sha2::{Digest, Sha256};
    let mut lines = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap();
            if expected.iter().any(|e| rel.starts_with(e)) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let what = if meta.file_type().is_symlink() {
                format!("symlink -> {:?}", std::fs::read_link(&path).unwrap())
            } else if meta.is_dir() {
                pending.push(path.clone());
                format!("dir {mode:o}")
            } else if meta.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                let sum: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
                format!("file {mode:o} {} bytes {sum}", bytes.len())
            } else {
                format!("special {mode:o}")
            };
            lines.push(format!("{:?} {what}", rel.as_os_str()));
        }
    }
    lines.sort();
    lines.join("\n")
}

/// The places inside a repository that a refused handoff may still touch:
/// objects and refs that arrived and were removed again, reflogs, the index's
/// stat data, the tool's own locks and markers, and its cache of directory
/// listings (stat data too). Hooks and config are not among them.
pub fn git_internals(repo: &str) -> Vec<PathBuf> {
    ["objects", "refs", "logs", "packed-refs", "index", "codex-handoff", "codex-handoff-listings", "FETCH_HEAD"]
        .iter()
        .map(|p| Path::new(repo).join(".git").join(p))
        .collect()
}
