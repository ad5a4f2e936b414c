//! git's push and fetch over the connection this process holds.
//!
//! git runs `$GIT_SSH_COMMAND host "git-receive-pack '/path'"`. For the
//! `ssh2` transport that is this same binary's hidden `__ssh2-shim`, with
//! the path of a Unix socket in a private 0700 directory in [`ENV_SOCKET`].
//! The shim connects there and passes the pipes git made for it (stdin,
//! stdout, stderr) with SCM_RIGHTS, plus its arguments and GIT_PROTOCOL, and
//! gives up its own copies of stdin and stdout. The parent runs the command
//! on a new channel of the session it holds, bound straight to git's pipes
//! (no copying through the shim), and answers `exit N`, which the shim exits
//! with — what OpenSSH's ControlMaster does for `ssh -S`.
//!
//! Only `git-receive-pack`, `git-upload-pack` and `git-upload-archive` of
//! one single-quoted path run; anything else is refused. Only processes of
//! this user may connect.

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::channel::Exit;
use super::pump::{ExecSpec, Mux};
use crate::os::fdpass::{peer_uid, recv_with_fds, send_with_fds};

/// Where the shim finds the parent's socket.
pub const ENV_SOCKET: &str = "GIT_CODEX_HANDOFF_SSH2_SOCKET";
/// The hidden subcommand git runs as its ssh.
pub const SHIM_COMMAND: &str = "__ssh2-shim";
/// The largest request a shim may send (its arguments and GIT_PROTOCOL as JSON).
const MAX_REQUEST: usize = 64 * 1024;

/// The parent's side: a thread taking shim connections until dropped.
pub struct Bridge {
    listener: Arc<UnixListener>,
    socket: PathBuf,
    /// Holds the socket; removed on drop.
    _dir: tempfile::TempDir,
}

impl Bridge {
    pub fn start(mux: Mux) -> io::Result<Bridge> {
        let dir = super::super::socket_dir::create()?;
        let socket = dir.path().join("git");
        let listener = Arc::new(UnixListener::bind(&socket)?);
        let accepting = Arc::clone(&listener);
        std::thread::Builder::new().name("ssh2-bridge".into()).spawn(move || {
            // Ends when `drop` shuts the listener down.
            while let Ok((conn, _)) = accepting.accept() {
                let mux = mux.clone();
                std::thread::spawn(move || serve_one(&mux, conn));
            }
        })?;
        Ok(Bridge { listener, socket, _dir: dir })
    }

    /// Environment for git: its ssh is the shim, reaching this bridge.
    pub fn git_env(&self, exe: &Path) -> Vec<(String, String)> {
        vec![
            ("GIT_SSH_COMMAND".into(), format!("{} {SHIM_COMMAND}", shell_quote(&exe.to_string_lossy()))),
            // As OpenSSH: git then passes `-o SendEnv=GIT_PROTOCOL` and runs no `-G` probe.
            ("GIT_SSH_VARIANT".into(), "ssh".into()),
            (ENV_SOCKET.into(), self.socket.to_string_lossy().into_owned()),
        ]
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // SAFETY: shutdown on the listener we own wakes its blocked accept (EINVAL).
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
    }
}

/// Serve one shim: its command on a channel, then `exit N` on the control socket.
fn serve_one(mux: &Mux, mut control: UnixStream) {
    let refuse = |control: &mut UnixStream, why: &str| {
        let _ = writeln!(control, "error {why}");
        let _ = writeln!(control, "exit 255");
    };
    // SAFETY: getuid has no preconditions.
    if peer_uid(control.as_raw_fd()).ok() != Some(unsafe { libc::getuid() }) {
        return refuse(&mut control, "only this user's processes may use the connection");
    }
    let Ok((data, fds)) = recv_with_fds(control.as_raw_fd(), MAX_REQUEST) else {
        return refuse(&mut control, "the request could not be read");
    };
    let Ok::<[_; 3], _>([stdin, stdout, stderr]) = fds.try_into() else {
        return refuse(&mut control, "the request must carry stdin, stdout and stderr");
    };
    let request: serde_json::Value = serde_json::from_slice(&data).unwrap_or_default();
    let argv: Vec<String> = request["argv"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let Some(command) = git_command(&argv) else {
        return refuse(&mut control, &format!("refused to run {:?}: only git's pack commands run here", argv.last()));
    };
    let env = request["git_protocol"]
        .as_str()
        .filter(|p| p.len() < 256 && !p.contains(['\0', '\n']))
        .map(|p| vec![("GIT_PROTOCOL".to_owned(), p.to_owned())])
        .unwrap_or_default();
    // The remote's stderr goes to git's through this thread's blocking
    // writes: that fd is git's own (often a terminal), never made non-blocking.
    let Ok((err_r, err_w)) = UnixStream::pair() else {
        return refuse(&mut control, "no socket for the command's stderr");
    };
    let copier = std::thread::spawn(move || {
        let mut from = err_r;
        let _ = io::copy(&mut from, &mut std::fs::File::from(stderr));
    });
    let exit = mux
        .exec(ExecSpec {
            command: Some(command),
            env,
            pty: None,
            stdin: Some(stdin),
            stdout: Some(stdout),
            stderr: Some(err_w.into()),
        })
        .recv()
        .unwrap_or(Exit::Failed("the connection closed".into()));
    let _ = copier.join();
    if let Exit::Failed(why) = &exit {
        let _ = writeln!(control, "error {why}");
    }
    let _ = writeln!(control, "exit {}", exit.code());
}

/// `[options...] host "git-receive-pack '/path'"` → the command to run, if
/// allowed. Options git may add (`-p`, `-o`, `-4`, `-6`) change nothing:
/// there is one session.
pub fn git_command(argv: &[String]) -> Option<String> {
    let (program, rest) = argv.last()?.split_once(' ')?;
    if !matches!(program, "git-receive-pack" | "git-upload-pack" | "git-upload-archive") {
        return None;
    }
    let path = unquote_sq(rest)?;
    if path.is_empty() || path.contains(['\0', '\n']) {
        return None;
    }
    Some(format!("{program} {}", shell_quote(&path)))
}

/// git's sq_quote: `'...'`, a `'` written as `'\''`.
fn unquote_sq(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    loop {
        let inner = rest.strip_prefix('\'')?;
        let (quoted, after) = inner.split_once('\'')?;
        out.push_str(quoted);
        if after.is_empty() {
            return Some(out);
        }
        rest = after.strip_prefix("\\'")?;
        out.push('\'');
        if rest.is_empty() {
            return Some(out);
        }
    }
}

pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The shim: `__ssh2-shim [ssh options] host command`, as git runs it.
/// Messages go to `stderr`; returns the exit code.
pub fn run_shim(args: &[String], stderr: &mut dyn Write) -> i32 {
    let Some(path) = std::env::var_os(ENV_SOCKET) else {
        let _ = writeln!(stderr, "git-codex-handoff: {ENV_SOCKET} is not set (git runs this during a handoff)");
        return 255;
    };
    let conn = match UnixStream::connect(&path) {
        Ok(conn) => conn,
        Err(e) => {
            let _ = writeln!(stderr, "git-codex-handoff: cannot reach the handoff's connection: {e}");
            return 255;
        }
    };
    let request = serde_json::json!({ "argv": args, "git_protocol": std::env::var("GIT_PROTOCOL").ok() });
    if let Err(e) = send_with_fds(conn.as_raw_fd(), request.to_string().as_bytes(), &[0, 1, 2]) {
        let _ = writeln!(stderr, "git-codex-handoff: cannot hand git's pipes to the connection: {e}");
        return 255;
    }
    // Give up our copies of git's pipes, so git sees EOF when the channel ends.
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        // SAFETY: dup2 onto our own stdin and stdout.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
    let mut code = 255;
    for line in BufReader::new(conn).lines() {
        let Ok(line) = line else { break };
        if let Some(c) = line.strip_prefix("exit ") {
            code = c.trim().parse().unwrap_or(255);
        } else if let Some(e) = line.strip_prefix("error ") {
            let _ = writeln!(stderr, "git-codex-handoff: {e}");
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_git_pack_commands_of_one_quoted_path_run() {
        let command = |v: &[&str]| git_command(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(command(&["h", "git-receive-pack '/a b'"]).unwrap(), "git-receive-pack '/a b'");
        assert_eq!(
            command(&["-o", "SendEnv=GIT_PROTOCOL", "h", "git-upload-pack '/x'\\''y'"]).unwrap(),
            "git-upload-pack '/x'\\''y'"
        );
        assert!(command(&["h", "rm -rf /"]).is_none());
        assert!(command(&["h", "git-receive-pack '/x'; rm -rf /"]).is_none());
        assert!(command(&["h", "git-receive-pack '/x' '/y'"]).is_none());
        assert!(command(&["h", "git-receive-pack /x"]).is_none());
        assert!(command(&["h", "git-receive-pack ''"]).is_none());
        assert!(command(&[]).is_none());
    }
}
