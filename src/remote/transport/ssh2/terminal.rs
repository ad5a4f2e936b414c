//! An interactive session on a channel with a terminal of its own (`ssh -t`
//! done in-process): the remote side gets a pty the size of this terminal,
//! this terminal goes raw for the session (keys such as ^C are the remote
//! command's), and bytes are copied both ways by plain blocking I/O while
//! the pump serves the channel.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use super::pump::{ExecSpec, Mux, Pty};
use crate::error::{Error, Result};

/// Run `command` on a new channel of `mux` with a pty, this process's
/// terminal as its input and output; its exit code (255 when the channel
/// failed or a signal ended it, as ssh reports it).
pub fn run(mux: &Mux, command: String) -> Result<i32> {
    let (input_mine, input_theirs) = UnixStream::pair()?;
    let (output_mine, output_theirs) = UnixStream::pair()?;
    let exit = mux.exec(ExecSpec {
        command: Some(command),
        env: Vec::new(),
        pty: Some(this_terminal()),
        stdin: Some(input_theirs.into()),
        stdout: Some(output_theirs.into()),
        stderr: None,
    });
    let raw = RawMode::enter();
    // Keys go over until the channel is gone (the write then fails); the
    // thread may stay blocked in read(2) until this process exits.
    let mut keys = input_mine;
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stdin.read(&mut buf) {
            if keys.write_all(buf.get(..n).unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let mut screen = std::io::stdout().lock();
    let mut output = output_mine;
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n @ 1..) = output.read(&mut buf) {
        if screen.write_all(buf.get(..n).unwrap_or_default()).and_then(|()| screen.flush()).is_err() {
            break;
        }
    }
    drop(output);
    drop(raw);
    let exit = exit.recv().map_err(|_| Error::failed("ssh_failed", "the connection was closed"))?;
    Ok(exit.code())
}

/// The terminal type and size of this process's terminal, as `ssh -t` sends them.
fn this_terminal() -> Pty {
    let term = std::env::var("TERM").ok().filter(|t| !t.is_empty()).unwrap_or_else(|| "xterm".to_owned());
    let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we pass.
    let known = unsafe { libc::ioctl(std::io::stdout().as_raw_fd(), libc::TIOCGWINSZ, &mut size) } == 0;
    let (cols, rows) = if known && size.ws_col > 0 { (size.ws_col, size.ws_row) } else { (80, 24) };
    Pty { term, cols: u32::from(cols), rows: u32::from(rows) }
}

/// This terminal in raw mode until dropped (nothing when stdin is no terminal).
struct RawMode {
    saved: Option<libc::termios>,
}

impl RawMode {
    fn enter() -> RawMode {
        let fd = std::io::stdin().as_raw_fd();
        // SAFETY: termios is plain data; tcgetattr fills it or fails.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return RawMode { saved: None };
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw edits the struct it is given; tcsetattr applies it.
        unsafe {
            libc::cfmakeraw(&mut raw);
            libc::tcsetattr(fd, libc::TCSADRAIN, &raw);
        }
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // SAFETY: restores the settings read in `enter`.
            unsafe { libc::tcsetattr(std::io::stdin().as_raw_fd(), libc::TCSADRAIN, saved) };
        }
    }
}
