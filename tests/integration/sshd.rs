//! A real OpenSSH server on 127.0.0.1 for end-to-end tests over the `openssh`
//! transport: its own host key, user key, known_hosts and client config, and
//! its own "remote" HOME, so one machine plays both ends.
//!
//! Client side: `ssh -F <config_path()> devbox` (or `GIT_SSH_COMMAND` =
//! `ssh_command()`). `devbox` trusts the host key; `stranger` is the same
//! server with a known_hosts that lacks it.

use std::fs;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::TestEnv;

pub const SSHD: &str = "/usr/sbin/sshd";
/// The alias whose host key is known.
pub const HOST: &str = "devbox";
/// The same server under an alias whose known_hosts lacks its key.
pub const STRANGER: &str = "stranger";

/// A running sshd; killed (with every session it started) when dropped.
pub struct Sshd {
    dir: PathBuf,
    port: u16,
    child: Child,
    remote_home: PathBuf,
}

impl Sshd {
    /// Start an sshd whose sessions all run with `HOME=remote_home`.
    pub fn start(env: &TestEnv, remote_home: &Path) -> Sshd {
        Sshd::start_with_env(env, remote_home, &[])
    }

    /// From now on the user key may only run `command` (an authorized_keys
    /// forced command, with `restrict` as documented; sshd reads the file on
    /// every connection).
    pub fn restrict_to(&self, command: &str) {
        self.authorize(&format!("restrict,command=\"{command}\""));
    }

    /// From now on the user key's authorized_keys line starts with `options`.
    pub fn authorize(&self, options: &str) {
        let key = fs::read_to_string(self.dir.join("user_key.pub")).unwrap();
        fs::write(self.dir.join("authorized_keys"), format!("{options} {key}")).unwrap();
    }

    /// Like `start`, with more variables for every session (e.g. a `PATH`
    /// holding the binary under test; the default is sshd's own PATH).
    pub fn start_with_env(env: &TestEnv, remote_home: &Path, vars: &[(&str, &str)]) -> Sshd {
        Sshd::start_as(env, remote_home, vars, None)
    }

    /// Like `start_with_env`, with `shell` as the user's login shell: sshd
    /// runs in a mount namespace of its own where /etc/passwd is a copy
    /// naming that shell, so it starts logins and runs commands with it as
    /// it would for a user whose passwd entry says so. The machine's own
    /// /etc/passwd is untouched.
    pub fn start_with_login_shell(env: &TestEnv, remote_home: &Path, vars: &[(&str, &str)], shell: &str) -> Sshd {
        assert!(Path::new(shell).exists(), "{shell} is missing: install it (.ci/run does) to run this test");
        Sshd::start_as(env, remote_home, vars, Some(shell))
    }

    fn start_as(env: &TestEnv, remote_home: &Path, vars: &[(&str, &str)], shell: Option<&str>) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install openssh-server (.ci/run does) to run the SSH tests"
        );
        fs::create_dir_all(remote_home).unwrap();
        let remote_home = fs::canonicalize(remote_home).unwrap();
        let dir = fresh_dir(env.root.path());
        // sshd refuses to start without its privilege separation directory.
        ensure_privsep_dir();

        let host_key = dir.join("host_key");
        let user_key = dir.join("user_key");
        keygen(env, &host_key);
        keygen(env, &user_key);
        fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();

        let mut set_env = vec![format!("HOME={}", remote_home.display())];
        set_env.extend(vars.iter().map(|(k, v)| format!("{k}={v}")));

        // Another process may take the free port before sshd binds it: retry.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            write_sshd_config(&dir, port, &set_env);
            write_client_config(&dir, port);
            let log = fs::File::create(dir.join("sshd.log")).unwrap();
            let mut command = match shell {
                None => Command::new(SSHD),
                Some(shell) => {
                    let passwd = dir.join("passwd");
                    fs::write(&passwd, passwd_with_shell(shell)).unwrap();
                    // unshare and sh exec in turn: the child's pid stays sshd's.
                    let mut command = Command::new("unshare");
                    command.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"]);
                    command.arg("mount --bind \"$0\" /etc/passwd && exec \"$@\"").arg(passwd).arg(SSHD);
                    command
                }
            };
            let child = command
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(dir.join("sshd_config"))
                .env_clear()
                // For unshare, mount and sh; sshd sets its sessions' PATH itself.
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn sshd");
            let mut sshd = Sshd { dir: dir.clone(), port, child, remote_home: remote_home.clone() };
            if sshd.wait_listening() {
                return sshd;
            }
            last_log = sshd.log();
            if !last_log.contains("Bind to port") && !last_log.contains("Cannot bind any address") {
                break;
            }
        }
        panic!("sshd did not start; its log:\n{last_log}");
    }

    /// Wait for sshd's own "listening" line: a connect probe could reach
    /// whatever else grabbed the port. False if sshd exited.
    fn wait_listening(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        let ready = format!("Server listening on 127.0.0.1 port {}.", self.port);
        loop {
            if self.log().contains(&ready) {
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if Instant::now() > deadline {
                panic!("sshd not listening after 10 s; its log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The fixture directory (keys, configs, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// HOME of every session on this server (canonical path).
    pub fn remote_home(&self) -> &Path {
        &self.remote_home
    }

    /// The client config defining `devbox` and `stranger`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }

    /// Make this server's client config the test user's `~/.ssh/config`
    /// (read there by discovery and the `ssh2` transport), and point the
    /// system ssh at the same file through `GIT_SSH_COMMAND`, as it reads
    /// the passwd home's, not `$HOME`'s.
    pub fn install_user_config(&self, env: &TestEnv) {
        let dir = env.home.join(".ssh");
        fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config");
        fs::copy(self.config_path(), &config).unwrap();
        env.set_var("GIT_SSH_COMMAND", &format!("ssh -F {}", shell_quote(&config.display().to_string())));
    }

    /// A `Host` block for this server under another alias (its host key known).
    pub fn client_block(&self, alias: &str) -> String {
        client_block(&self.dir, self.port, alias, "known_hosts")
    }

    /// The ssh command line for `GIT_SSH_COMMAND` (shell syntax): the system
    /// ssh reads ~/.ssh/config from the passwd home, not $HOME, so the
    /// config is given explicitly.
    pub fn ssh_command(&self) -> String {
        format!("ssh -F {}", shell_quote(&self.config_path().display().to_string()))
    }

    /// `ssh -F <config>` with the test environment; add options and a host.
    pub fn ssh(&self, env: &TestEnv) -> Command {
        let mut cmd = env.command("ssh", env.root.path());
        cmd.arg("-F").arg(self.config_path());
        cmd
    }

    /// Kill every session this server serves (its per-connection processes
    /// and what they run), as when sshd dies on the host; the listener stays.
    pub fn kill_sessions(&self) {
        let pids = descendants(self.child.id());
        let _ = Command::new("/bin/sh")
            .args(["-c", "for p; do kill -KILL \"$p\"; done", "sh"])
            .args(pids.iter().map(|p| p.to_string()))
            .stderr(Stdio::null())
            .status();
    }

    /// sshd's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// Authenticated connections so far (one per SSH connection, however
    /// many sessions are multiplexed on it).
    pub fn accepted_connections(&self) -> usize {
        self.log().lines().filter(|l| l.contains("Accepted publickey")).count()
    }

    /// Wait (at most 5 s) until every connection so far has been closed by its client.
    #[track_caller]
    pub fn assert_all_closed(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log();
            let closed = log.lines().filter(|l| l.contains("Disconnected from user")).count();
            if closed == self.accepted_connections() {
                return;
            }
            assert!(Instant::now() < deadline, "a connection was left open:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // Each connection is served by a forked sshd in its own session, which
        // would outlive the listener: kill the whole tree by parentage.
        let mut pids = descendants(self.child.id());
        pids.push(self.child.id());
        // std cannot signal arbitrary pids; the shell builtin needs no procps.
        // One kill per pid: dash's stops at the first that is already gone.
        let _ = Command::new("/bin/sh")
            .args(["-c", "for p; do kill -KILL \"$p\"; done", "sh"])
            .args(pids.iter().map(|p| p.to_string()))
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The machine's /etc/passwd with `shell` as root's login shell (sshd runs as root here).
fn passwd_with_shell(shell: &str) -> String {
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let mut out = String::new();
    for line in passwd.lines() {
        let mut fields: Vec<&str> = line.split(':').collect();
        if fields.first() == Some(&"root") && fields.len() == 7 {
            fields[6] = shell;
        }
        out += &fields.join(":");
        out.push('\n');
    }
    out
}

/// A new directory `sshd`, `sshd-2`, ... under `root` (several servers may share a TestEnv).
fn fresh_dir(root: &Path) -> PathBuf {
    for n in 1.. {
        let dir = if n == 1 { root.join("sshd") } else { root.join(format!("sshd-{n}")) };
        match fs::create_dir(&dir) {
            Ok(()) => {
                let dir = fs::canonicalize(dir).unwrap();
                // sshd_config is split on whitespace; keep the paths plain.
                let s = dir.display().to_string();
                assert!(!s.contains(|c: char| c.is_whitespace() || c == '"'), "unusable fixture path {s:?}");
                return dir;
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("create {}: {e}", dir.display()),
        }
    }
    unreachable!()
}

fn ensure_privsep_dir() {
    let dir = Path::new("/run/sshd");
    if !dir.exists() {
        // Parallel tests may race to create it; only the result matters.
        let _ = fs::create_dir_all(dir);
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn keygen(env: &TestEnv, path: &Path) {
    let out = env
        .command("ssh-keygen", env.root.path())
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "codex-handoff-test", "-f"])
        .arg(path)
        .output()
        .expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn write_sshd_config(dir: &Path, port: u16, set_env: &[String]) {
    let d = dir.display();
    let set_env: Vec<String> = set_env
        .iter()
        .map(|v| {
            assert!(!v.contains('"'), "SetEnv value with a quote: {v:?}");
            format!("\"{v}\"")
        })
        .collect();
    let config = format!(
        "ListenAddress 127.0.0.1\n\
         Port {port}\n\
         HostKey {d}/host_key\n\
         PidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\n\
         # The fixture lives in a temp dir whose modes sshd would reject.\n\
         StrictModes no\n\
         UsePAM no\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PubkeyAuthentication yes\n\
         PermitRootLogin prohibit-password\n\
         # VERBOSE logs one \"Accepted publickey\" line per connection.\n\
         LogLevel VERBOSE\n\
         # ControlMaster multiplexes many sessions on one connection.\n\
         MaxSessions 50\n\
         MaxStartups 50:30:100\n\
         # The remote side has its own HOME (and whatever else the test sets).\n\
         SetEnv {}\n",
        set_env.join(" ")
    );
    fs::write(dir.join("sshd_config"), config).unwrap();
}

fn write_client_config(dir: &Path, port: u16) {
    let host_key = fs::read_to_string(dir.join("host_key.pub")).unwrap();
    let key: Vec<&str> = host_key.split_whitespace().take(2).collect();
    fs::write(dir.join("known_hosts"), format!("[127.0.0.1]:{port} {}\n", key.join(" "))).unwrap();
    fs::write(dir.join("known_hosts_empty"), "").unwrap();
    let config = format!(
        "{}\n{}",
        client_block(dir, port, HOST, "known_hosts"),
        client_block(dir, port, STRANGER, "known_hosts_empty")
    );
    fs::write(dir.join("ssh_config"), config).unwrap();
}

/// A `Host` block of the client config for this server.
fn client_block(dir: &Path, port: u16, alias: &str, known_hosts: &str) -> String {
    let d = dir.display();
    format!(
        "Host {alias}\n\
         \tHostName 127.0.0.1\n\
         \tPort {port}\n\
         \tUser root\n\
         \tIdentityFile {d}/user_key\n\
         \tIdentitiesOnly yes\n\
         \tUserKnownHostsFile {d}/{known_hosts}\n\
         \tGlobalKnownHostsFile /dev/null\n\
         \tStrictHostKeyChecking yes\n\
         \tBatchMode yes\n\
         \tLogLevel ERROR\n"
    )
}

/// Every process below `root`, from /proc parent links.
fn descendants(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) {
            parents.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(parents.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    found.remove(0);
    found
}

pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A short ControlPath (sockets need < ~100 bytes) in a fresh /tmp dir.
    fn control_dir() -> tempfile::TempDir {
        tempfile::Builder::new().prefix("cm-").tempdir_in("/tmp").unwrap()
    }

    #[test]
    fn sessions_run_with_the_remote_home() {
        let env = TestEnv::new();
        let sshd = Sshd::start(&env, &env.path("remote-home"));
        let out = sshd.ssh(&env).args([HOST, "--", "echo \"$HOME\""]).output().unwrap();
        assert!(out.status.success(), "ssh failed: {}\n{}", String::from_utf8_lossy(&out.stderr), sshd.log());
        let home = String::from_utf8(out.stdout).unwrap();
        assert_eq!(home.trim_end(), sshd.remote_home().display().to_string());
        assert_ne!(sshd.remote_home(), env.home);
        assert_eq!(sshd.accepted_connections(), 1, "{}", sshd.log());
        let known_hosts = fs::read_to_string(sshd.dir().join("known_hosts")).unwrap();
        assert!(known_hosts.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", sshd.port())));
    }

    #[test]
    fn extra_session_variables() {
        let env = TestEnv::new();
        let sshd = Sshd::start_with_env(&env, &env.path("remote-home"), &[("PATH", "/opt/nowhere:/usr/bin:/bin")]);
        let out = sshd.ssh(&env).args([HOST, "--", "echo \"$PATH\""]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "/opt/nowhere:/usr/bin:/bin\n");
    }

    #[test]
    fn control_master_shares_one_connection() {
        let env = TestEnv::new();
        let sshd = Sshd::start(&env, &env.path("remote-home"));
        let bare = sshd.remote_home().join("repo.git");
        env.git(env.root.path(), &["init", "-q", "--bare", bare.to_str().unwrap()]);
        let cm = control_dir();
        let socket = cm.path().join("s");
        let control_path = format!("ControlPath={}", socket.display());

        let mut master = sshd
            .ssh(&env)
            .args(["-o", "ControlMaster=yes", "-o", &control_path, HOST, "--", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(master.try_wait().unwrap().is_none(), "master exited:\n{}", sshd.log());
            assert!(Instant::now() < deadline, "no control socket:\n{}", sshd.log());
            std::thread::sleep(Duration::from_millis(20));
        }

        let out =
            sshd.ssh(&env).args(["-o", &control_path, "-o", "ControlMaster=no", HOST, "--", "true"]).output().unwrap();
        assert!(out.status.success(), "mux session: {}", String::from_utf8_lossy(&out.stderr));

        let git_ssh = format!("{} -o {} -o ControlMaster=no", sshd.ssh_command(), shell_quote(&control_path));
        let url = format!("{HOST}:{}", bare.display());
        let out = env.git_with_env(env.root.path(), &["ls-remote", &url], &[("GIT_SSH_COMMAND", &git_ssh)]);
        assert!(out.status.success(), "git ls-remote: {}\n{}", String::from_utf8_lossy(&out.stderr), sshd.log());

        // Closing stdin ends `cat`, and with it the master.
        master.stdin.take().unwrap().flush().unwrap();
        let status = master.wait().unwrap();
        assert!(status.success(), "master: {status}");
        assert_eq!(sshd.accepted_connections(), 1, "{}", sshd.log());
    }

    #[test]
    fn unknown_host_key_is_refused() {
        let env = TestEnv::new();
        let sshd = Sshd::start(&env, &env.path("remote-home"));
        let out = sshd.ssh(&env).args([STRANGER, "--", "true"]).output().unwrap();
        assert_eq!(out.status.code(), Some(255));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("Host key verification failed"), "{stderr}");
        assert_eq!(sshd.accepted_connections(), 0);
    }

    #[test]
    fn drop_kills_the_server_and_its_sessions() {
        let env = TestEnv::new();
        let sshd = Sshd::start(&env, &env.path("remote-home"));
        // A session left open, as a test that panics midway would leave it.
        let mut client =
            sshd.ssh(&env).args([HOST, "--", "cat"]).stdin(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while sshd.accepted_connections() == 0 {
            assert!(Instant::now() < deadline, "no connection:\n{}", sshd.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = sshd.child.id();
        let tree = descendants(pid);
        assert!(!tree.is_empty(), "no per-connection sshd");
        drop(sshd);
        // SIGKILL is delivered asynchronously; give the orphans a moment to die.
        let deadline = Instant::now() + Duration::from_secs(5);
        for p in tree {
            while !is_gone(p) {
                assert!(Instant::now() < deadline, "process {p} outlived Sshd");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        assert!(is_gone(pid));
        // The client sees its connection drop.
        let status = client.wait().unwrap();
        assert!(!status.success());
    }

    /// Exited (a zombie counts: whoever inherited it may not reap promptly).
    fn is_gone(pid: u32) -> bool {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.rsplit(')').next().unwrap_or("").trim_start().starts_with(['Z', 'X']))
            .unwrap_or(true)
    }
}
