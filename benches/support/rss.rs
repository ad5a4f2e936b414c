//! Peak resident memory of a process we start, and of the helper a host
//! starts over sshd: the benchmark binary doubles as a wrapper
//! (`<bench> --rss-wrap <log> <program> <args>…`) that the host's helper
//! setting names through a small script.
//!
//! Two figures per process: its own peak (`VmHWM`, sampled every few
//! milliseconds while it runs, so growth in its last moments can be
//! missed), and the peak of its whole tree (`ru_maxrss` from `wait4`: the
//! largest of it and every descendant it waited for, e.g. git's children).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How often a running process's high-water mark is read.
const SAMPLE: Duration = Duration::from_millis(3);

/// What one watched process did.
pub struct Watched {
    pub took: Duration,
    /// Exit code; 128 + signal when killed.
    pub code: i32,
    /// Its own peak resident memory, KiB.
    pub own_kib: u64,
    /// The peak of it and its waited-for descendants, KiB.
    pub tree_kib: u64,
}

/// Run `cmd` to its end, watching its memory.
pub fn watch(cmd: &mut Command) -> Watched {
    let started = Instant::now();
    // Reaped below by wait4, which also gives its tree's rusage.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("spawn the watched process");
    let pid = child.id() as libc::pid_t;
    let mut own_kib = 0;
    loop {
        let mut status = 0;
        // SAFETY: plain syscall on our own child; both out-pointers are valid.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
            // ru_maxrss is in KiB on Linux.
            let tree_kib = (usage.ru_maxrss as u64).max(own_kib);
            return Watched { took: started.elapsed(), code, own_kib, tree_kib };
        }
        assert!(reaped == 0, "wait4 failed: {}", std::io::Error::last_os_error());
        own_kib = own_kib.max(vm_hwm_kib(pid as u32));
        std::thread::sleep(SAMPLE);
    }
}

/// The high-water mark of a process's resident memory (KiB), 0 once it is gone.
pub fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// When this process was started as the wrapper: run the program with its
/// arguments (stdin, stdout and stderr passed through untouched), append
/// `start` and then `end <own KiB> <tree KiB> <args>` to the log, and
/// return its exit code.
pub fn wrapper_main() -> Option<i32> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("--rss-wrap") || args.len() < 4 {
        return None;
    }
    let log = Path::new(&args[2]);
    append(log, "start\n");
    let watched = watch(Command::new(&args[3]).args(&args[4..]));
    append(log, &format!("end {} {} {}\n", watched.own_kib, watched.tree_kib, args[4..].join(" ")));
    Some(watched.code)
}

fn append(log: &Path, line: &str) {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("rss log");
    file.write_all(line.as_bytes()).expect("write rss log");
}

/// The script a host's helper setting names: the real helper under the wrapper.
pub fn write_wrapper_script(script: &Path, log: &Path, helper: &str) {
    let bench = std::env::current_exe().expect("the benchmark's own path");
    let quote = |p: &str| format!("'{}'", p.replace('\'', "'\\''"));
    let text = format!(
        "#!/bin/sh\nexec {} --rss-wrap {} {} \"$@\"\n",
        quote(&bench.display().to_string()),
        quote(&log.display().to_string()),
        quote(helper)
    );
    std::fs::write(script, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The helpers' peaks logged since the log was last taken (own, tree; KiB),
/// once every helper that started has ended (or after 20 s); empties the log.
pub fn take_helper_peaks(log: &Path) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let starts = text.lines().filter(|l| *l == "start").count();
        let ends: Vec<(u64, u64)> = text
            .lines()
            .filter_map(|l| {
                let mut words = l.strip_prefix("end ")?.split(' ');
                Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
            })
            .collect();
        if ends.len() >= starts || Instant::now() > deadline {
            let _ = std::fs::remove_file(log);
            return ends.iter().fold((0, 0), |(o, t), (a, b)| (o.max(*a), t.max(*b)));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
