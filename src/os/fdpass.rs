//! File descriptors across a Unix socket (SCM_RIGHTS), and who is at the
//! other end of one: how the shim hands git's pipes to the process that
//! holds the connection.
//!
//! Received descriptors are close-on-exec: on Linux from the moment they
//! arrive (`MSG_CMSG_CLOEXEC`); macOS has no such flag, so each is marked
//! just after `recvmsg` returns (a process spawned by another thread in
//! between could inherit one).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::imp;

/// The most fds one message may carry (the shim sends three).
const MAX_FDS: usize = 8;

/// The user id of the process at the other end of a Unix socket.
pub fn peer_uid(fd: RawFd) -> io::Result<u32> {
    imp::peer_uid(fd)
}

/// Send `data` with `fds` in one message, then half-close: the request ends there.
pub fn send_with_fds(sock: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let fd_bytes = std::mem::size_of_val(fds) as u32;
    // SAFETY: CMSG_SPACE is arithmetic.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut _, iov_len: data.len() };
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: the control buffer has room for one header and `fds`.
    let n = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Err(io::Error::other("no room for the descriptors"));
        }
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<RawFd>(), fds.len());
        libc::sendmsg(sock, &msg, imp::SEND_FLAGS)
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != data.len() {
        return Err(io::Error::other("the request was cut short"));
    }
    // SAFETY: shutdown on a socket the caller owns.
    unsafe { libc::shutdown(sock, libc::SHUT_WR) };
    Ok(())
}

/// Read a whole request (up to EOF, at most `max` bytes) and every fd sent with it.
pub fn recv_with_fds(sock: RawFd, max: usize) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut data = Vec::new();
    let mut fds = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // SAFETY: CMSG_SPACE is arithmetic.
        let mut control = vec![0u8; unsafe { libc::CMSG_SPACE((MAX_FDS * 4) as u32) } as usize];
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control.len() as _;
        // SAFETY: recvmsg fills the buffers described by `msg`.
        let n = unsafe { libc::recvmsg(sock, &mut msg, imp::RECV_FLAGS) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let before = fds.len();
        // SAFETY: walking the control messages the kernel wrote, within msg_controllen.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let count = ((*cmsg).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize) / 4;
                    let first = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                    for i in 0..count {
                        fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(first.add(i))));
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        for fd in fds.get(before..).unwrap_or_default() {
            imp::received(fd)?;
        }
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(io::Error::other("too many descriptors"));
        }
        if n == 0 {
            return Ok((data, fds));
        }
        data.extend_from_slice(buf.get(..n as usize).unwrap_or_default());
        if data.len() > max {
            return Err(io::Error::other("the request is too large"));
        }
    }
}
