//! Private directories for the Unix sockets a connection serves (openssh's
//! ControlMaster socket, the ssh2 bridge git reaches the session through).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// The name of a socket directory starts with this, then the owner's pid and `-`.
const PREFIX: &str = "cxh-";

/// A new directory only this user may enter (0700 whatever the umask),
/// removed when dropped; first the directories of earlier runs that were
/// killed before they could clean up are removed.
pub fn create() -> std::io::Result<TempDir> {
    // Unix socket paths are short: keep the directory near the root.
    let base = if std::env::temp_dir().as_os_str().len() > 60 { PathBuf::from("/tmp") } else { std::env::temp_dir() };
    remove_stale(&base);
    tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-", std::process::id()))
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(base)
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
