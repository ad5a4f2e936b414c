//! The `os` calls against what the system says of itself: on Linux against
//! /proc, so the macOS twins sit beside a tested reading of the same facts.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::*;

fn sleeper(program: &str, own_group: bool) -> Child {
    let mut cmd = Command::new(program);
    cmd.arg("30");
    if own_group {
        cmd.process_group(0);
    }
    cmd.spawn().unwrap()
}

fn close_on_exec(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert!(flags >= 0, "fcntl: {}", std::io::Error::last_os_error());
    flags & libc::FD_CLOEXEC != 0
}

/// Wait until `done` holds (a signal takes a moment to land).
fn within_seconds(seconds: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

#[test]
fn a_process_keeps_its_start_time_until_it_ends() {
    let me = start_time(std::process::id() as i32).expect("this process has a start time");
    let mut child = sleeper("sleep", false);
    let pid = child.id() as i32;
    let started = start_time(pid).expect("a live child has a start time");
    assert_eq!(start_time(pid), Some(started), "read twice, the same");
    assert!(started >= me, "the child started after this process: {started} < {me}");
    child.kill().unwrap();
    // Killed but not yet waited for: a zombie counts as gone.
    assert!(within_seconds(5, || start_time(pid).is_none()), "a zombie has no start time");
    child.wait().unwrap();
    assert_eq!(start_time(pid), None, "a reaped process has none");
}

#[test]
fn no_process_has_pid_zero_or_below() {
    for pid in [0, -1, i32::MIN] {
        assert_eq!(start_time(pid), None);
        assert_eq!(process_group(pid), None);
    }
}

#[test]
fn the_group_is_the_one_the_process_is_in() {
    // SAFETY: getpgrp has no preconditions.
    let own = unsafe { libc::getpgrp() };
    assert_eq!(process_group(std::process::id() as i32), Some(own));
    let mut inherited = sleeper("sleep", false);
    let mut leader = sleeper("sleep", true);
    assert_eq!(process_group(inherited.id() as i32), Some(own), "a child stays in this group");
    assert_eq!(process_group(leader.id() as i32), Some(leader.id() as i32), "a child that leads its own");
    for child in [&mut inherited, &mut leader] {
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(process_group(child.id() as i32), None, "a reaped process has no group");
    }
}

/// Field 22 of /proc/<pid>/stat, in clock ticks since boot: with the boot
/// time from /proc/stat, a child started just now started now.
#[cfg(target_os = "linux")]
fn started_seconds_ago(pid: i32) -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let boot: f64 = stat.lines().find_map(|l| l.strip_prefix("btime ")).unwrap().trim().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let started = boot + start_time(pid).unwrap() as f64 / ticks;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    now - started
}

#[cfg(target_os = "linux")]
#[test]
fn the_start_time_is_the_one_proc_gives_in_clock_ticks_since_boot() {
    let mut child = sleeper("sleep", false);
    let ago = started_seconds_ago(child.id() as i32);
    // btime is whole seconds: allow for that and a slow machine.
    assert!((-2.0..10.0).contains(&ago), "the child started {ago} s ago by its start time");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn a_command_name_with_spaces_and_parentheses_is_read_past() {
    // The name in /proc/<pid>/stat is the file run: `(a) 1 2 (b)`.
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("a) 1 2 (b");
    let sleep = ["/bin/sleep", "/usr/bin/sleep"].into_iter().find(|p| std::path::Path::new(p).exists()).unwrap();
    std::os::unix::fs::symlink(sleep, &odd).unwrap();
    let mut child = sleeper(odd.to_str().unwrap(), true);
    let pid = child.id() as i32;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert!(stat.contains("(a) 1 2 (b)"), "{stat}");
    assert_eq!(process_group(pid), Some(pid));
    let ago = started_seconds_ago(pid);
    assert!((-2.0..10.0).contains(&ago), "the child started {ago} s ago by its start time");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn the_hostname_is_the_kernels() {
    let proc = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(hostname().as_deref(), Some(proc.trim()));
}

#[test]
fn a_socket_path_is_as_long_as_the_system_allows() {
    let expected = if cfg!(target_os = "macos") { 103 } else { 107 };
    assert_eq!(socket_path_max(), expected);
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let fill = socket_path_max() - dir.path().as_os_str().len() - 1;
    let longest = dir.path().join("s".repeat(fill));
    std::os::unix::net::UnixListener::bind(&longest).expect("the longest path binds");
    let too_long = dir.path().join("t".repeat(fill + 1));
    assert!(std::os::unix::net::UnixListener::bind(too_long).is_err(), "one byte more does not");
}

#[test]
fn both_ends_of_a_pipe_close_on_exec() {
    let (read, write) = pipe().unwrap();
    assert!(close_on_exec(read.as_raw_fd()) && close_on_exec(write.as_raw_fd()));
    let mut write = std::fs::File::from(write);
    write.write_all(b"through").unwrap();
    drop(write);
    let mut got = String::new();
    std::fs::File::from(read).read_to_string(&mut got).unwrap();
    assert_eq!(got, "through");
}

#[test]
fn descriptors_cross_a_socket_and_arrive_close_on_exec() {
    let (here, there) = UnixStream::pair().unwrap();
    // SAFETY: getuid has no preconditions.
    assert_eq!(fdpass::peer_uid(here.as_raw_fd()).unwrap(), unsafe { libc::getuid() });
    let (read, write) = pipe().unwrap();
    fdpass::send_with_fds(here.as_raw_fd(), b"request", &[write.as_raw_fd()]).unwrap();
    drop(write);
    let (data, fds) = fdpass::recv_with_fds(there.as_raw_fd(), 1024).unwrap();
    assert_eq!(data, b"request");
    let [sent]: [OwnedFd; 1] = fds.try_into().unwrap();
    assert!(close_on_exec(sent.as_raw_fd()), "a received descriptor is not inherited by what this process runs");
    std::fs::File::from(sent).write_all(b"via the passed end").unwrap();
    let mut got = String::new();
    std::fs::File::from(read).read_to_string(&mut got).unwrap();
    assert_eq!(got, "via the passed end");
}
