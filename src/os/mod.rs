//! What this program asks of the operating system where Linux and macOS
//! differ, in one place that is built with or without the `ssh2` feature,
//! so a check of either build for macOS covers every such call.
//!
//! Each call has a Linux twin (`linux.rs`) and a macOS twin (`macos.rs`)
//! with the same signature; the rest of the program uses only what this
//! module exports. Descriptor passing (`fdpass`) is shared code with the
//! one flag that differs. Everything else the program uses from `libc` is
//! POSIX and the same on both.

use std::os::fd::OwnedFd;

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
compile_error!("git-codex-handoff runs on Linux and macOS");

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as imp;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as imp;

mod case;
// Only the ssh2 transport passes descriptors and makes pipes of its own.
#[cfg_attr(not(feature = "ssh2"), allow(dead_code))]
pub mod fdpass;

pub use case::case_insensitive;

/// A pipe whose two ends (read, write) are closed on exec.
#[cfg_attr(not(feature = "ssh2"), allow(dead_code))]
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    imp::pipe()
}

/// When process `pid` started, in units of its own system (clock ticks
/// since boot on Linux, microseconds since the epoch on macOS): with the
/// pid, it tells a process from a later one that reuses its pid. `None`
/// when it is gone or a zombie.
pub fn start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    imp::start_time(pid)
}

/// The process group of process `pid`; `None` when it is gone.
pub fn process_group(pid: i32) -> Option<i32> {
    if pid <= 0 {
        return None;
    }
    imp::process_group(pid)
}

/// This machine's host name, `None` when it has none. `gethostname` on
/// both systems (on Linux the same name as /proc/sys/kernel/hostname).
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(buf.get(..end).unwrap_or_default()).trim().to_owned();
    (!name.is_empty()).then_some(name)
}

/// The longest path a Unix socket can be bound at, in bytes without the
/// final NUL (`sun_path`: 108 bytes on Linux, 104 on macOS).
pub fn socket_path_max() -> usize {
    // SAFETY: sockaddr_un is plain data; only the size of one field is read.
    let addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    std::mem::size_of_val(&addr.sun_path) - 1
}

#[cfg(test)]
mod tests;
