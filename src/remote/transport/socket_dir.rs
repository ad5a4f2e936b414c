//! Private directories for the Unix sockets a connection serves (openssh's
//! ControlMaster socket, the ssh2 bridge git reaches the session through).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// The name of a socket directory starts with this, then the owner's pid and `-`.
const PREFIX: &str = "cxh-";

/// The longest name bound in a socket directory: OpenSSH's ControlMaster
/// socket `cm` while ssh sets it up (`cm.` and 16 random characters); the
/// ssh2 bridge's `git` is shorter.
const LONGEST_SOCKET: usize = "cm.".len() + 16;

/// A new directory only this user may enter (0700 whatever the umask),
/// removed when dropped; first the directories of earlier runs that were
/// killed before they could clean up are removed.
pub fn create() -> std::io::Result<TempDir> {
    let base = base_for(std::env::temp_dir());
    remove_stale(&base);
    tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-", std::process::id()))
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(base)
}

/// Where the socket directories go: the temporary directory (`$TMPDIR`),
/// unless a socket in it could be too long to bind. Unix socket paths are
/// short (107 bytes on Linux, 103 on macOS, whose `$TMPDIR` is long):
/// beyond 60 bytes, or where the longest socket would not fit, `/tmp`.
fn base_for(temp: PathBuf) -> PathBuf {
    let trimmed = temp.as_os_str().len() - usize::from(temp.as_os_str().as_encoded_bytes().ends_with(b"/"));
    // `<temp>/cxh-<pid>-XXXXXX/<socket>`: tempfile adds 6 random characters.
    let dir_name = PREFIX.len() + std::process::id().to_string().len() + 1 + 6;
    let longest = trimmed + 1 + dir_name + 1 + LONGEST_SOCKET;
    if temp.as_os_str().len() > 60 || longest > crate::os::socket_path_max() {
        PathBuf::from("/tmp")
    } else {
        temp
    }
}

/// Remove our socket directories (same user, real directories) whose owner process is gone.
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(meta) = entry.path().symlink_metadata() else { continue };
        if meta.is_dir() && meta.uid() == me && !crate::process::alive(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_temporary_directory_is_left_for_tmp() {
        let short = PathBuf::from("/var/folders/2b/k0s1x1cj5lq5x2l0r2y6n7z80000gn/T/");
        assert_eq!(base_for(short.clone()), short, "macOS's usual $TMPDIR is short enough");
        let long = PathBuf::from(format!("/home/someone/{}", "x".repeat(60)));
        assert_eq!(base_for(long), PathBuf::from("/tmp"));
    }

    #[test]
    fn the_longest_socket_fits_wherever_the_directory_goes() {
        for len in 1..200 {
            let temp = PathBuf::from(format!("/{}", "t".repeat(len)));
            let base = base_for(temp);
            let dir = format!("{PREFIX}{}-XXXXXX", std::process::id());
            let socket = base.join(dir).join("c".repeat(LONGEST_SOCKET));
            assert!(socket.as_os_str().len() <= crate::os::socket_path_max(), "{}", socket.display());
        }
    }

    #[test]
    fn the_directory_is_private_and_its_sockets_bind() {
        let dir = create().unwrap();
        assert_eq!(std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777, 0o700);
        let socket = dir.path().join("c".repeat(LONGEST_SOCKET));
        std::os::unix::net::UnixListener::bind(socket).unwrap();
    }
}
