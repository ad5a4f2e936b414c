//! Agent commands running in a thread (`thread run`). Each has a record in
//! the repository's common dir, so every worktree sees it; the record holds
//! the process id and its start time, so a reused pid is never mistaken for it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::repo::Repo;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// The command's process; it leads its own process group.
    pub pid: i32,
    /// Its start time, as this machine's system counts it (`os::start_time`).
    pub start_time: u64,
    /// The `thread run` process that waits for it.
    pub runner_pid: i32,
    pub command: Vec<String>,
    pub started_at: String,
}

fn record_path(repo: &Repo, uuid: &str) -> Result<PathBuf> {
    let dir = repo.private_dir()?.join("running");
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(format!("{uuid}.json")))
}

/// The thread's running command, if one is alive. A record left by a
/// process that is gone is removed.
pub fn current(repo: &Repo, uuid: &str) -> Result<Option<RunRecord>> {
    // Asked of every thread a list shows: no directory is made for the question.
    let path = repo.private_path().join("running").join(format!("{uuid}.json"));
    let data = match std::fs::read(&path) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Ok(record) = serde_json::from_slice::<RunRecord>(&data) else {
        let _ = std::fs::remove_file(&path);
        return Ok(None);
    };
    if alive(&record) {
        Ok(Some(record))
    } else {
        let _ = std::fs::remove_file(&path);
        Ok(None)
    }
}

/// The threads that have a record of a running command (alive or not),
/// from one read of the directory: a list asks about every thread.
pub fn recorded(repo: &Repo) -> std::collections::BTreeSet<String> {
    let dir = repo.private_path().join("running");
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str().and_then(|n| n.strip_suffix(".json")).map(str::to_owned))
        .collect()
}

pub fn alive(record: &RunRecord) -> bool {
    start_time(record.pid) == Some(record.start_time)
}

/// Signal the command's process group — only when the recorded process
/// still leads it and it is not this process's own group.
fn signal_group(record: &RunRecord, signal: libc::c_int) {
    let leads_its_group = crate::os::process_group(record.pid) == Some(record.pid);
    // SAFETY: getpgrp and kill have no memory-safety preconditions.
    let own_group = unsafe { libc::getpgrp() };
    if record.pid > 1 && alive(record) && record.pid != own_group {
        let target = if leads_its_group { -record.pid } else { record.pid };
        unsafe { libc::kill(target, signal) };
    }
}

/// A process's start time, or `None` if it is gone (or a zombie).
pub fn start_time(pid: i32) -> Option<u64> {
    crate::os::start_time(pid)
}

static CHILD_GROUP: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signal: libc::c_int) {
    let group = CHILD_GROUP.load(Ordering::SeqCst);
    if group > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(-group, signal) };
    }
}

/// Run `command` in `dir` as the thread's agent: in its own process group
/// (given the terminal when there is one), with signals sent to this process
/// forwarded to it, recorded while it runs. Returns the exit code to use.
pub fn run(repo: &Repo, uuid: &str, dir: &Path, command: &[String], env: &[(String, String)]) -> Result<i32> {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    if let Some(existing) = current(repo, uuid)? {
        return Err(Error::refused(
            "already_running",
            format!("thread {uuid} is already running (pid {})", existing.pid),
        )
        .with_help("wait for it to end, or stop it first"));
    }
    let Some((program, args)) = command.split_first() else {
        return Err(
            Error::usage("no_command", "no command given").with_help("usage: thread run <THREAD> -- <COMMAND>...")
        );
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // The agent gets the polite signals at their defaults, whatever this
            // process inherited (a background job or nohup ignores SIGINT).
            for signal in [libc::SIGINT, libc::SIGQUIT] {
                libc::signal(signal, libc::SIG_DFL);
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, signal);
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            }
            libc::setpgid(0, 0);
            if libc::isatty(0) == 1 {
                // Take the terminal, as a shell does for a foreground job.
                libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                libc::tcsetpgrp(0, libc::getpid());
                libc::signal(libc::SIGTTOU, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::not_found("command_not_found", format!("could not run {program}")).with_source(e))?;
    let pid = child.id() as i32;
    // Also here: whichever of parent and child gets there first wins the race.
    unsafe { libc::setpgid(pid, pid) };
    CHILD_GROUP.store(pid, Ordering::SeqCst);
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: the handler only reads an atomic and calls kill.
        unsafe { libc::signal(signal, forward as *const () as libc::sighandler_t) };
    }
    let path = record_path(repo, uuid)?;
    let record = RunRecord {
        pid,
        start_time: start_time(pid).unwrap_or(0),
        runner_pid: std::process::id() as i32,
        command: command.to_vec(),
        started_at: crate::time::now_rfc3339(),
    };
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&record).expect("record serializes"))?;
    std::fs::rename(&tmp, &path)?;
    let status = child.wait();
    let _ = std::fs::remove_file(&path);
    CHILD_GROUP.store(0, Ordering::SeqCst);
    unsafe {
        if libc::isatty(0) == 1 {
            libc::signal(libc::SIGTTOU, libc::SIG_IGN);
            libc::tcsetpgrp(0, libc::getpgrp());
            libc::signal(libc::SIGTTOU, libc::SIG_DFL);
        }
    }
    let status = status?;
    Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// Stop the thread's running command before it moves: SIGINT to its process
/// group, wait, then SIGTERM, wait. Refused (exit 4, nothing changed) when it
/// does not stop, or at once with `no_interrupt`.
pub fn stop_for_handoff(repo: &Repo, uuid: &str, no_interrupt: bool, timeout: Duration) -> Result<bool> {
    let Some(record) = current(repo, uuid)? else { return Ok(false) };
    if no_interrupt {
        return Err(Error::refused(
            "thread_running",
            format!("thread {uuid} is running (pid {}) and --no-interrupt was given", record.pid),
        )
        .with_help("let the current response finish, or hand off without --no-interrupt to interrupt it"));
    }
    for signal in [libc::SIGINT, libc::SIGTERM] {
        signal_group(&record, signal);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !alive(&record) {
                // Let `thread run` clear its record (best effort).
                std::thread::sleep(Duration::from_millis(50));
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Err(Error::refused(
        "thread_did_not_stop",
        format!(
            "thread {uuid}'s command (pid {}) did not stop within {} s of SIGINT and {} s of SIGTERM",
            record.pid,
            timeout.as_secs_f64(),
            timeout.as_secs_f64()
        ),
    )
    .with_help("stop it yourself (or raise --interrupt-timeout), then hand the thread off again"))
}
