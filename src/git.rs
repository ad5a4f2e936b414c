//! Running the `git` binary, for what gix cannot do (worktree scans with
//! clean filters, checkout, worktree administration, push and fetch).
//! Output is always a plumbing format that is parsed, never scraped.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// A `git` invocation bound to one repository (and optionally one worktree).
#[derive(Clone, Debug)]
pub struct Git {
    git_dir: PathBuf,
    work_tree: Option<PathBuf>,
    index_file: Option<PathBuf>,
}

impl Git {
    pub fn new(git_dir: impl Into<PathBuf>, work_tree: Option<PathBuf>) -> Self {
        Git { git_dir: git_dir.into(), work_tree, index_file: None }
    }

    /// Use another index file (never the worktree's own) for the following calls.
    pub fn with_index(&self, index_file: &Path) -> Self {
        Git { index_file: Some(index_file.to_owned()), ..self.clone() }
    }

    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("git");
        // Inherited repository variables would point git elsewhere.
        for var in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX"] {
            cmd.env_remove(var);
        }
        // Never let a read refresh (and so rewrite) an index as a side effect.
        cmd.env("GIT_OPTIONAL_LOCKS", "0");
        cmd.arg("--git-dir").arg(&self.git_dir);
        if let Some(work_tree) = &self.work_tree {
            cmd.arg("--work-tree").arg(work_tree);
            cmd.current_dir(work_tree);
        } else {
            cmd.current_dir(&self.git_dir);
        }
        if let Some(index) = &self.index_file {
            cmd.env("GIT_INDEX_FILE", index);
        }
        cmd.args(args);
        cmd
    }

    /// Run and return stdout; a non-zero exit becomes an error quoting git's stderr.
    pub fn run<I, S>(&self, args: I) -> Result<Vec<u8>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_with_input(args, None)
    }

    pub fn run_with_input<I, S>(&self, args: I, input: Option<&[u8]>) -> Result<Vec<u8>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(args);
        run_command(&mut cmd, input)
    }

    /// Run and return stdout trimmed as UTF-8 text.
    pub fn text<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.run(args)?;
        Ok(String::from_utf8_lossy(&out).trim_end().to_owned())
    }
}

pub fn run_command(cmd: &mut Command, input: Option<&[u8]>) -> Result<Vec<u8>> {
    run_command_exiting(cmd, input, &[0])
}

/// [`run_command`] for a command that also answers with other exit codes
/// (`ok`), as `check-ignore` exits 1 when it ignores none of its paths.
pub fn run_command_exiting(cmd: &mut Command, input: Option<&[u8]>, ok: &[i32]) -> Result<Vec<u8>> {
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let (mut child, describe) = spawn(cmd)?;
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin was piped");
        // Write on a separate thread so a large input cannot deadlock against a full stdout pipe.
        let data = input.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let output = child.wait_with_output()?;
        let _ = writer.join();
        return check_exit(describe, output, ok);
    }
    let output = child.wait_with_output()?;
    check_exit(describe, output, ok)
}

/// Start `cmd`, with how to name it in messages; git missing is an error that says so.
fn spawn(cmd: &mut Command) -> Result<(std::process::Child, String)> {
    let describe = describe(cmd);
    let child = cmd.spawn().map_err(|e| {
        Error::failed("git_missing", format!("could not run `{describe}`"))
            .with_help("install git and make sure it is on PATH")
            .with_source(e)
    })?;
    Ok((child, describe))
}

/// Run with `input` on stdin and stdout written to `stdout` (a file); a
/// non-zero exit becomes an error quoting git's stderr.
pub fn run_command_into(cmd: &mut Command, input: &[u8], stdout: std::fs::File) -> Result<()> {
    cmd.stdin(Stdio::piped()).stdout(stdout).stderr(Stdio::piped());
    let (mut child, describe) = spawn(cmd)?;
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let output = child.wait_with_output()?;
    let _ = writer.join();
    check(describe, output).map(|_| ())
}

/// [`run_command`] (no input) for a git command that shows its own
/// progress on stderr ("Updating files: 45% (9/20)"), which is reported
/// as `step` while it runs.
pub fn run_command_counted(cmd: &mut Command, step: crate::progress::Step) -> Result<Vec<u8>> {
    use std::io::Read;
    // Shown from the start, not after git's usual delay of two seconds.
    cmd.env("GIT_PROGRESS_DELAY", "0");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let (mut child, describe) = spawn(cmd)?;
    let mut stdout = child.stdout.take().expect("stdout was piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).map(|_| out)
    });
    let mut stderr = Vec::new();
    let mut said = Vec::new();
    if let Some(mut pipe) = child.stderr.take() {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            for &b in &buf[..n] {
                if b == b'\r' || b == b'\n' {
                    let line = String::from_utf8_lossy(&said).into_owned();
                    match crate::progress::parse_git_counts(&line) {
                        Some((done, total)) if line.contains('%') => crate::progress::report(step, done, total),
                        _ if !line.is_empty() => {
                            stderr.extend_from_slice(&said);
                            stderr.push(b'\n');
                        }
                        _ => {}
                    }
                    said.clear();
                } else {
                    said.push(b);
                }
            }
        }
    }
    stderr.extend_from_slice(&said);
    let status = child.wait()?;
    let stdout = reader.join().map_err(|_| Error::failed("git_failed", "reading git's output failed"))??;
    check_exit(describe, std::process::Output { status, stdout, stderr }, &[0])
}

fn check(describe: String, output: std::process::Output) -> Result<Vec<u8>> {
    check_exit(describe, output, &[0])
}

fn check_exit(describe: String, output: std::process::Output, ok: &[i32]) -> Result<Vec<u8>> {
    if output.status.code().is_some_and(|code| ok.contains(&code)) {
        Ok(output.stdout)
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        Err(Error::failed("git_failed", format!("`{describe}` failed: {stderr}")))
    }
}

fn describe(cmd: &Command) -> String {
    let args: Vec<String> = cmd
        .get_args()
        .skip_while(|a| *a == "--git-dir" || *a == "--work-tree" || Path::new(a).is_absolute())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!("git {}", args.join(" "))
}
