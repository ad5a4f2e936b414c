//! The macOS twins of `os` (see `linux.rs`). macOS has no `pipe2`, no
//! `MSG_CMSG_CLOEXEC` and no /proc: a pipe is made close-on-exec just after
//! it is made, and process facts come from `proc_pidinfo`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// No `MSG_CMSG_CLOEXEC`: see [`received`].
pub const RECV_FLAGS: libc::c_int = 0;
/// No flag: the Rust runtime ignores SIGPIPE, so a closed peer is EPIPE.
pub const SEND_FLAGS: libc::c_int = 0;

/// A descriptor `recvmsg` gave, made close-on-exec now (a process that
/// another thread spawns in between could still inherit it).
pub fn received(fd: &OwnedFd) -> io::Result<()> {
    set_cloexec(fd.as_raw_fd())
}

/// The user id of the process at the other end of a Unix socket.
pub fn peer_uid(fd: RawFd) -> io::Result<u32> {
    let (mut uid, mut gid) = (0, 0);
    // SAFETY: getpeereid writes the two ids it is given.
    if unsafe { libc::getpeereid(fd, &mut uid, &mut gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(uid)
}

pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe fills two fds into the array it is given.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    set_cloexec(read.as_raw_fd())?;
    set_cloexec(write.as_raw_fd())?;
    Ok((read, write))
}

/// Close `fd` on exec (what `O_CLOEXEC` and `MSG_CMSG_CLOEXEC` do at once on Linux).
fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd the caller owns; failure is reported, not undefined.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The kernel's BSD facts about process `pid` (zombies included).
fn bsd_info(pid: i32) -> Option<libc::proc_bsdinfo> {
    // SAFETY: proc_bsdinfo is plain data; proc_pidinfo writes at most `size` bytes into it.
    let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
    let got = unsafe {
        libc::proc_pidinfo(pid, libc::PROC_PIDTBSDINFO, 0, (&mut info as *mut libc::proc_bsdinfo).cast(), size)
    };
    (got == size).then_some(info)
}

/// Microseconds since the epoch at which the process started.
pub fn start_time(pid: i32) -> Option<u64> {
    let info = bsd_info(pid)?;
    if info.pbi_status == libc::SZOMB {
        return None;
    }
    info.pbi_start_tvsec.checked_mul(1_000_000)?.checked_add(info.pbi_start_tvusec)
}

pub fn process_group(pid: i32) -> Option<i32> {
    i32::try_from(bsd_info(pid)?.pbi_pgid).ok()
}
