//! A helper session carried by a child process's pipes: the `ssh` client
//! for `openssh`, the helper itself for `local`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct ProcessLink {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// When stderr last had something.
    heard: super::liveness::Heard,
}

impl ProcessLink {
    /// Spawn `command` with piped stdio; stderr is collected in the background.
    pub fn spawn(mut command: Command) -> std::io::Result<ProcessLink> {
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("stdout was not piped"))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let heard = super::liveness::Heard::new();
        if let Some(mut pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            let heard = heard.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    heard.now();
                    if let Ok(mut sink) = sink.lock() {
                        sink.extend_from_slice(&buf[..n]);
                    }
                }
            });
        }
        Ok(ProcessLink { child, stdin, stdout: BufReader::new(stdout), stderr, heard })
    }

    pub fn input(&mut self) -> Option<&mut dyn Write> {
        self.stdin.as_mut().map(|s| s as &mut dyn Write)
    }

    pub fn output(&mut self) -> &mut dyn BufRead {
        &mut self.stdout
    }

    /// Wait at most `timeout` for output (or its end) to be readable without blocking.
    pub fn output_ready(&mut self, timeout: Duration) -> bool {
        use std::os::fd::AsRawFd;
        !self.stdout.buffer().is_empty() || readable_within(self.stdout.get_ref().as_raw_fd(), timeout)
    }

    /// Wait at most `timeout` until the child's stdin has room (or is closed, so a write fails at once).
    pub fn input_ready(&mut self, timeout: Duration) -> bool {
        use std::os::fd::AsRawFd;
        self.stdin.as_ref().is_none_or(|stdin| super::liveness::writable_within(stdin.as_raw_fd(), timeout))
    }

    pub fn heard(&self) -> Instant {
        self.heard.last()
    }

    pub fn close_input(&mut self) {
        self.stdin = None;
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status.code()),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                Ok(None) => return None,
                Err(_) => return Some(None),
            }
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }
}

/// Run `command` in the foreground with this process's terminal as its
/// input and output, and return its exit code (128 + the signal that ended
/// it). Meanwhile this process ignores the terminal's interrupt and quit
/// keys: they are the command's.
pub fn run_in_terminal(mut command: Command) -> crate::error::Result<i32> {
    use std::os::unix::process::ExitStatusExt;
    command.stdin(Stdio::inherit()).stdout(Stdio::inherit()).stderr(Stdio::inherit());
    let mut child = command.spawn()?;
    // After the spawn: an ignored signal would stay ignored in the child.
    // SAFETY: setting a disposition to SIG_IGN and back is sound at any time.
    let before: Vec<_> = [libc::SIGINT, libc::SIGQUIT]
        .into_iter()
        .map(|signal| (signal, unsafe { libc::signal(signal, libc::SIG_IGN) }))
        .collect();
    let status = child.wait();
    for (signal, handler) in before {
        unsafe { libc::signal(signal, handler) };
    }
    let status = status?;
    Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// Wait at most `timeout` until `fd` can be read without blocking: data, its
/// end, or an error the next read reports.
pub fn readable_within(fd: std::os::fd::RawFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        let millis = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut poll, 1, millis) };
        if rc >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return rc != 0;
        }
    }
}
