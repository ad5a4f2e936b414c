//! The Linux twins of `os` (see `macos.rs`).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// `recvmsg` makes received descriptors close-on-exec as they arrive.
pub const RECV_FLAGS: libc::c_int = libc::MSG_CMSG_CLOEXEC;
/// `sendmsg` to a closed peer is an error, not SIGPIPE.
pub const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;

/// A descriptor `recvmsg` gave: already close-on-exec (`RECV_FLAGS`).
pub fn received(_fd: &OwnedFd) -> io::Result<()> {
    Ok(())
}

/// The user id of the process at the other end of a Unix socket.
pub fn peer_uid(fd: RawFd) -> io::Result<u32> {
    // SAFETY: getsockopt writes at most `len` bytes into the zeroed struct.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERCRED, (&mut cred as *mut libc::ucred).cast(), &mut len)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The fields of /proc/<pid>/stat after the command name, from the state on
/// (0 = state, 2 = pgrp, 19 = starttime).
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: parse after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Field 22 of /proc/<pid>/stat: clock ticks since boot.
pub fn start_time(pid: i32) -> Option<u64> {
    let fields = stat_fields(pid)?;
    if fields.first().map(String::as_str) == Some("Z") {
        return None;
    }
    // Field 22 overall is the 20th after the name and state.
    fields.get(19)?.parse().ok()
}

pub fn process_group(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(2)?.parse().ok()
}
