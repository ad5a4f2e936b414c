//! The user's login shell, asked one fixed question: where a program is
//! (the login shell's PATH, then the folders installers use) and what the
//! login shell sets `CODEX_HOME` to.
//!
//! Many installers put their folders on PATH only for login shells (rustup
//! in `~/.profile`, Homebrew in `~/.zprofile`), while ssh runs a command
//! through a non-login shell. So the question is put
//! to the login shell itself, started as sshd starts it for a login (no
//! command: the shell reads its profile, then its standard input), on the
//! same connection. The question is one line that every shell (sh, bash,
//! zsh, fish, csh/tcsh) reads alike: it starts `/bin/sh` with a script in
//! single quotes holding none of the characters a shell treats specially
//! inside them. Nothing of the user's reaches it.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The program names the question looks for.
pub const HELPER: &str = crate::config::DEFAULT_HELPER;
pub const CODEX: &str = "codex";

/// Where the question looks after the login shell's PATH, in this order.
pub const USUAL_FOLDERS: [&str; 4] = ["~/.cargo/bin", "~/.local/bin", "/usr/local/bin", "/opt/homebrew/bin"];

/// How long a login shell may take to read its profile and answer.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The most a login shell's output may take up.
const MAX_OUTPUT: usize = 1 << 20;

const BEGIN: &str = "cxh-probe-1 begin";
const END: &str = "cxh-probe-1 end";

/// `f NAME` prints `found NAME login|folder PATH` when NAME is found.
const FIND: &str = "f() { p=$(command -v \"$1\" 2>/dev/null); w=login; case \"$p\" in /*) ;; *) p=; \
                    for d in \"$HOME/.cargo/bin\" \"$HOME/.local/bin\" /usr/local/bin /opt/homebrew/bin; do \
                    if test -f \"$d/$1\" && test -x \"$d/$1\"; then p=$d/$1; w=folder; break; fi; done;; esac; \
                    if test -n \"$p\"; then printf \"found %s %s %s\" \"$1\" \"$w\" \"$p\"; echo; fi; }; \
                    echo; echo cxh-probe-1 begin; printf \"home %s\" \"$HOME\"; echo; \
                    if test -n \"${CODEX_HOME+x}\"; then printf \"codex_home %s\" \"$CODEX_HOME\"; echo; fi; \
                    f git-codex-handoff; f codex; ";
/// After `f codex`, `$p` is Codex's path (or empty).
const CODEX_VERSION: &str = "if test -n \"$p\"; then v=$(\"$p\" --version </dev/null 2>/dev/null | head -n 1); \
                             printf \"codex_version %s\" \"$v\"; echo; fi; ";
const FINISH: &str = "echo cxh-probe-1 end";

/// What to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    /// Where the helper and Codex are, HOME and CODEX_HOME.
    Locate,
    /// The same, and `codex --version` (starting Codex takes a while).
    Check,
}

impl Question {
    /// The script `/bin/sh` runs.
    fn script(self) -> String {
        match self {
            Question::Locate => format!("{FIND}{FINISH}"),
            Question::Check => format!("{FIND}{CODEX_VERSION}{FINISH}"),
        }
    }

    /// What the login shell reads on its standard input.
    pub fn input(self) -> String {
        format!("/bin/sh -c '{}' </dev/null\n", self.script())
    }
}

/// How a program was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// On the login shell's PATH.
    LoginShell,
    /// In one of the usual folders, which the login shell's PATH lacks.
    Folder,
}

impl How {
    pub fn describe(self) -> &'static str {
        match self {
            How::LoginShell => "through the login shell",
            How::Folder => "in a usual install folder (the login shell's PATH lacks it)",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Found {
    /// An absolute path.
    pub path: String,
    pub how: How,
}

/// The login shell's answer. It comes from another machine: every field is
/// checked before use (absolute paths, no control characters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub home: Option<String>,
    pub codex_home: Option<String>,
    pub helper: Option<Found>,
    pub codex: Option<Found>,
    pub codex_version: Option<String>,
}

impl Answer {
    /// `path` with the answering machine's HOME shown as `~`.
    pub fn tilde(&self, path: &str) -> String {
        match self.home.as_deref().filter(|h| h.len() > 1).and_then(|h| path.strip_prefix(h)) {
            Some(rest) if rest.starts_with('/') => format!("~{rest}"),
            _ => path.to_owned(),
        }
    }
}

/// Read what a login shell printed for a question; `None` unless the whole
/// answer is there (a profile may print anything before it).
pub fn parse(output: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(output);
    let mut lines = text.lines().skip_while(|l| l.trim_end() != BEGIN);
    lines.next()?;
    let mut answer = Answer::default();
    for line in lines {
        let line = line.trim_end_matches('\r');
        if line == END {
            return Some(answer);
        }
        let Some((key, value)) = line.split_once(' ') else { continue };
        match key {
            "home" => answer.home = absolute(value),
            "codex_home" => answer.codex_home = absolute(value),
            "codex_version" => answer.codex_version = printable(value).filter(|v| !v.is_empty()),
            "found" => {
                let mut parts = value.splitn(3, ' ');
                let (Some(name), Some(how), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
                let how = match how {
                    "login" => How::LoginShell,
                    "folder" => How::Folder,
                    _ => continue,
                };
                let Some(path) = absolute(path) else { continue };
                match name {
                    HELPER => answer.helper = Some(Found { path, how }),
                    CODEX => answer.codex = Some(Found { path, how }),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    None
}

/// Text for a person: no control characters (a terminal would obey them), at most 200 characters.
fn printable(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.chars().any(char::is_control) && value.chars().count() <= 200).then(|| value.to_owned())
}

fn absolute(value: &str) -> Option<String> {
    printable(value).filter(|v| v.starts_with('/') && v.len() < 4096)
}

/// Feed `input` to `command` (a login shell, here or over a connection) and
/// return its standard output up to the end of the answer, or whatever came
/// before it ended or `timeout` passed. A profile may leave a background
/// process holding the output open: the end line is enough.
/// What a login shell prints, up to the end of its answer (or the end of
/// its output, or `timeout`, or 1 MiB, whichever comes first).
pub fn read_answer(mut output: impl Read + Send + 'static, timeout: Duration) -> Vec<u8> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = output.read(&mut buf) {
            if n == 0 || sender.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut output = Vec::new();
    let end = format!("\n{END}");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(chunk) => {
                output.extend_from_slice(&chunk);
                // A profile that prints without end gets no more memory than this.
                if memchr::memmem::find(&output, end.as_bytes()).is_some() || output.len() > MAX_OUTPUT {
                    break;
                }
            }
            // The output closed, or time is up.
            Err(_) => break,
        }
    }
    output
}

pub fn converse(mut command: Command, input: &[u8], timeout: Duration) -> Result<Vec<u8>> {
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = command.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        // A shell that exits without reading is answered below by its output.
        let _ = stdin.write_all(input);
    }
    let output = match child.stdout.take() {
        Some(stdout) => read_answer(stdout, timeout),
        None => Vec::new(),
    };
    // The shell ends once its input is read; one that lingers is stopped.
    if !exited_within(&mut child, Duration::from_millis(500)) {
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok(output)
}

fn exited_within(child: &mut std::process::Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return true,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => return false,
        }
    }
}

/// This machine's login shell (`$SHELL`), started as a login shell the way
/// sshd starts one (its name prefixed with `-`), in HOME.
pub fn command_here() -> Option<Command> {
    use std::os::unix::process::CommandExt;
    let shell = PathBuf::from(std::env::var_os("SHELL").filter(|s| !s.is_empty())?);
    if !shell.is_absolute() {
        return None;
    }
    let name = shell.file_name()?.to_string_lossy().into_owned();
    let mut command = Command::new(&shell);
    command.arg0(format!("-{name}"));
    if let Ok(home) = crate::config::home() {
        command.current_dir(home);
    }
    Some(command)
}

/// Ask this machine's login shell.
pub fn ask_here(question: Question) -> Result<Answer> {
    let command = command_here().ok_or_else(|| Error::failed("no_login_shell", "SHELL does not name a login shell"))?;
    let output = converse(command, question.input().as_bytes(), TIMEOUT)?;
    parse(&output).ok_or_else(|| Error::failed("login_shell_silent", "the login shell did not answer"))
}

static ALLOWED: AtomicBool = AtomicBool::new(false);

/// Let this process ask its own login shell (the helper does; a restricted
/// key's helper and this computer's own commands do not).
pub fn allow_asking() {
    ALLOWED.store(true, Ordering::Relaxed);
}

/// This machine's login shell's answer, asked at most once per process (a
/// `Check` answer serves a later `Locate` too), and only where allowed: a
/// helper started over ssh has a non-login shell's environment, while Codex
/// there runs from a login. `None` when not allowed or not answered.
pub fn answer_here(question: Question) -> Option<Answer> {
    static ASKED: Mutex<Option<(Question, Option<Answer>)>> = Mutex::new(None);
    if !ALLOWED.load(Ordering::Relaxed) {
        return None;
    }
    let mut asked = ASKED.lock().ok()?;
    match &*asked {
        Some((before, answer)) if *before == question || *before == Question::Check => answer.clone(),
        _ => {
            let answer = ask_here(question).ok();
            *asked = Some((question, answer.clone()));
            answer
        }
    }
}

/// `CODEX_HOME` as this machine's login shell sets it (see `answer_here`).
pub fn codex_home() -> Option<PathBuf> {
    answer_here(Question::Locate).and_then(|a| a.codex_home).map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_question_needs_no_quoting_in_any_shell() {
        for question in [Question::Locate, Question::Check] {
            let script = question.script();
            // Inside single quotes: fish treats \ specially, csh ! and newlines, all of them '.
            for c in ['\'', '\\', '!', '\n', '`', '#', '^', '~'] {
                assert!(!script.contains(c), "{c:?} in {script}");
            }
            assert!(script.len() < 1000, "csh reads lines of limited length: {}", script.len());
            let input = question.input();
            assert_eq!(input.matches('\n').count(), 1);
        }
        // The folders the script searches are the documented ones.
        for folder in USUAL_FOLDERS {
            assert!(FIND.contains(&format!("\"{}\"", folder.replace('~', "$HOME"))) || FIND.contains(folder));
        }
    }

    #[test]
    fn answers_are_read_after_whatever_a_profile_printed() {
        let out = b"Welcome!\ncxh-probe-1 begin\nnot a line\nhome /home/me\ncodex_home /home/me/cx\n\
                    found git-codex-handoff login /home/me/.cargo/bin/git-codex-handoff\n\
                    found codex folder /usr/local/bin/codex\ncodex_version codex-cli 0.169.0\ncxh-probe-1 end\nbye\n";
        let answer = parse(out).unwrap();
        assert_eq!(answer.home.as_deref(), Some("/home/me"));
        assert_eq!(answer.codex_home.as_deref(), Some("/home/me/cx"));
        assert_eq!(
            answer.helper,
            Some(Found { path: "/home/me/.cargo/bin/git-codex-handoff".into(), how: How::LoginShell })
        );
        assert_eq!(answer.codex, Some(Found { path: "/usr/local/bin/codex".into(), how: How::Folder }));
        assert_eq!(answer.codex_version.as_deref(), Some("codex-cli 0.169.0"));
        assert_eq!(answer.tilde("/home/me/.cargo/bin/git-codex-handoff"), "~/.cargo/bin/git-codex-handoff");
        assert_eq!(answer.tilde("/home/meme/x"), "/home/meme/x");
    }

    #[test]
    fn hostile_or_partial_answers_are_refused() {
        assert_eq!(parse(b"cxh-probe-1 begin\nhome /h\n"), None, "no end line: a partial answer");
        assert_eq!(parse(b"nothing here\n"), None);
        let out = "cxh-probe-1 begin\nfound git-codex-handoff login relative/path\n\
                   found codex login /x/\u{1b}]0;title\u{7}codex\ncodex_home ~/cx\n\
                   codex_version \u{1b}[31mred\nfound git-codex-handoff sideways /x\ncxh-probe-1 end\n";
        assert_eq!(parse(out.as_bytes()), Some(Answer::default()));
    }

    /// A shell that ends its answer but leaves a process holding its output
    /// (an agent a profile started), or prints without end, is not waited for.
    #[test]
    fn the_answer_is_read_up_to_its_end_line_and_no_further() {
        // Generous against a loaded machine: only waiting for the lingering
        // process (two minutes) or for the whole timeout would exceed it.
        let timeout = Duration::from_secs(60);
        let mut lingering = Command::new("/bin/sh");
        lingering.args(["-c", "sleep 120 & echo; echo cxh-probe-1 begin; echo home /h; echo cxh-probe-1 end"]);
        let started = Instant::now();
        let output = converse(lingering, b"", timeout).unwrap();
        assert!(started.elapsed() < timeout, "waited for the lingering process");
        assert_eq!(parse(&output).unwrap().home.as_deref(), Some("/h"));

        // Stopped by the size cap, not the clock.
        let mut endless = Command::new("/bin/sh");
        endless.args(["-c", "while :; do echo chatter; done"]);
        let output = converse(endless, b"", timeout).unwrap();
        assert!(output.len() > MAX_OUTPUT && output.len() < 2 * MAX_OUTPUT, "{}", output.len());
        assert_eq!(parse(&output), None);
    }
}
