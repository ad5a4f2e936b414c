//! A ceiling on what `git fetch` takes from a host over the handoff's
//! connection. git's fetch has no `receive.maxInputSize` of its own, so it
//! reaches the host through this binary (`__capped-ssh CEILING`), which runs
//! the transport's ssh command as git would (through the shell, the same
//! arguments) and passes the host's bytes on to git, counting: past the
//! ceiling it stops the ssh and git's fetch fails, having stored nothing
//! (git keeps no half pack). The local transport's other repository is on
//! this machine: its fetches are not capped.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use super::connection::Connection;

/// The hidden subcommand git runs as its ssh for a capped fetch.
pub const CAPPED_COMMAND: &str = "__capped-ssh";
/// The transport's own ssh command, for the capped one to run.
const ENV_INNER: &str = "CODEX_HANDOFF_SSH_COMMAND";

impl Connection {
    /// Environment for a `git fetch` from the host whose input may not pass `ceiling` bytes.
    pub fn git_env_capped(&self, ceiling: u64) -> Vec<(String, String)> {
        let mut env = self.git_env();
        let Some(ssh) = env.iter_mut().find(|(k, _)| k == "GIT_SSH_COMMAND") else { return env };
        let inner = std::mem::take(&mut ssh.1);
        let exe = std::env::current_exe().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        ssh.1 = format!("{} {CAPPED_COMMAND} {ceiling}", shell_quote(&exe));
        env.push((ENV_INNER.to_owned(), inner));
        env
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Run as git's ssh (`__capped-ssh CEILING ARGS`): the exit code. What
/// goes wrong is said on `stderr`, which git shows.
pub fn run_capped(args: &[String], stderr: &mut dyn Write) -> i32 {
    let (Some(ceiling), Ok(inner)) = (args.first().and_then(|c| c.parse::<u64>().ok()), std::env::var(ENV_INNER))
    else {
        let _ = writeln!(stderr, "git-codex-handoff: {CAPPED_COMMAND} needs a ceiling and {ENV_INNER}");
        return 255;
    };
    let mut child = match Command::new("sh")
        .arg("-c")
        .arg(format!("{inner} \"$@\""))
        .arg("ssh")
        .args(&args[1..])
        .env_remove(ENV_INNER)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            let _ = writeln!(stderr, "git-codex-handoff: could not run the ssh command: {e}");
            return 255;
        }
    };
    let Some(mut from_host) = child.stdout.take() else { return 255 };
    let mut to_git = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from_host.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n as u64;
        if total > ceiling {
            let _ = child.kill();
            let _ = child.wait();
            let _ = writeln!(
                stderr,
                "git-codex-handoff: refused more than {ceiling} bytes from the host (receive.maxInputSize, or the \
                 default ceiling of 4 GiB); nothing of it was kept"
            );
            return 1;
        }
        if to_git.write_all(&buf[..n]).and_then(|()| to_git.flush()).is_err() {
            break;
        }
    }
    drop(to_git);
    child.wait().ok().and_then(|s| s.code()).unwrap_or(255)
}
