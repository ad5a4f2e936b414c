//! A handoff that failed for want of disk space says so, after its
//! rollback: which machine, which file system, and about how much the
//! handoff needs — rather than whichever write git happened to fail at.

use std::path::{Path, PathBuf};

use gix::ObjectId;

use crate::error::{Error, Result};
use crate::git::Git;
use crate::repo::Repo;

/// The code of the error; a client words the helper's as "<host> has no space left on …".
pub const NO_SPACE: &str = "no_space";

const MIB: u64 = 1024 * 1024;

/// `e` as a full disk on `machine` (`None`: the helper, named by its
/// client), if that is what it was: an ENOSPC in its causes or git's words
/// for one, or a failed write where one of the file systems of `places`
/// has less room than `need` bytes (git does not always say why a write failed).
pub fn explain(e: Error, machine: Option<&str>, places: &[PathBuf], need: u64) -> Error {
    if e.code == NO_SPACE {
        return e;
    }
    let said = no_space_said(&e);
    // A failed write where there is less room than the handoff needs: the disk was full.
    let write_failed = said || e.full_message().to_ascii_lowercase().contains("write");
    let short = places.iter().find(|p| free_bytes(p).is_some_and(|free| free < need)).filter(|_| write_failed);
    let Some(place) = short.or_else(|| said.then(|| places.first()).flatten()) else { return e };
    let mount = mount_point(place);
    let what =
        format!("no space left on {} (this handoff needs about {} MiB)", mount.display(), need.div_ceil(MIB).max(1));
    let message = match machine {
        Some(machine) => format!("{machine} has {what}"),
        None => what,
    };
    Error::failed(NO_SPACE, message)
        .with_help(format!("make room on {} (or set codex-handoff.worktreeRoot elsewhere)", mount.display()))
        .with_source(e)
}

/// What the client makes of the helper's [`explain`]: "devbox has no space left on …".
pub fn from_host(mut e: Error, host: &str) -> Error {
    if e.code == NO_SPACE {
        if let Some(rest) = e.message.strip_prefix(&format!("{host}: ")) {
            e.message = format!("{host} has {rest}");
        }
    }
    e
}

fn no_space_said(e: &Error) -> bool {
    let text = e.full_message();
    if text.contains("No space left on device") || text.contains("Disk quota exceeded") {
        return true;
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>().and_then(std::io::Error::raw_os_error) == Some(libc::ENOSPC) {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Bytes an unprivileged user may still write on the file system of `path`
/// (its nearest existing ancestor); no inodes left counts as none.
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let existing = path.ancestors().find(|p| p.exists())?;
    let c_path = std::ffi::CString::new(existing.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the struct it is given for a NUL-terminated path.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    if stat.f_favail == 0 && stat.f_files != 0 {
        return Some(0);
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between Linux and macOS
    Some((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// Where the file system holding `path` is mounted: the highest ancestor on the same device.
fn mount_point(path: &Path) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let Some(existing) = path.ancestors().find(|p| p.exists()) else { return path.to_owned() };
    let existing = existing.canonicalize().unwrap_or_else(|_| existing.to_owned());
    let Ok(device) = existing.metadata().map(|m| m.dev()) else { return existing };
    let mut mount = existing.clone();
    for dir in existing.ancestors().skip(1) {
        match dir.metadata() {
            Ok(m) if m.dev() == device => mount = dir.to_owned(),
            _ => break,
        }
    }
    mount
}

/// About how many bytes restoring snapshot `snapshot` writes: its files,
/// and its transcript (`transcript` bytes).
fn need_of(repo: &Repo, snapshot: ObjectId, transcript: u64) -> Result<u64> {
    let listing = Git::new(repo.common_dir(), None).run(["ls-tree", "-r", "-l", "-z", &snapshot.to_string()])?;
    let files: u64 = listing
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let meta = entry.split(|b| *b == b'\t').next()?;
            let size = std::str::from_utf8(meta).ok()?.split_whitespace().nth(3)?;
            size.parse::<u64>().ok()
        })
        .sum();
    Ok(files + transcript)
}

/// `e`, the failure of the arrival of `snapshot` in `repo` on `machine`, as
/// a full disk if that is what it was. Call before the arriving note goes.
pub fn arrival_failed(e: Error, repo: &Repo, snapshot: ObjectId, machine: Option<&str>) -> Error {
    let transcript = crate::thread::store::read_note(repo, snapshot).map_or(0, |s| s.transcript.size);
    let need = need_of(repo, snapshot, transcript).unwrap_or(0);
    explain(e, machine, &arrival_places(repo), need)
}

/// Where a thread arriving in `repo` writes: the worktree root, the repository.
fn arrival_places(repo: &Repo) -> Vec<PathBuf> {
    let mut places: Vec<PathBuf> = crate::config::worktree_root().into_iter().collect();
    places.push(repo.common_dir());
    places
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failed_write_short_of_room_or_an_enospc_is_a_full_disk() {
        let here = std::env::temp_dir();
        let huge = u64::MAX / 2;
        // A refusal is a refusal, however short of room the disk is.
        let hook = Error::failed("git_failed", "fatal: ref updates aborted by hook");
        assert_eq!(explain(hook, Some("devbox"), std::slice::from_ref(&here), huge).code, "git_failed");
        // git's "unable to write" where the handoff cannot fit.
        let unable = Error::failed("git_failed", "error: unable to write file assets/a2.bin");
        let full = explain(unable, Some("devbox"), std::slice::from_ref(&here), huge);
        assert_eq!((full.code.as_ref(), full.exit_code()), (NO_SPACE, 1));
        assert!(full.message.starts_with("devbox has no space left on /"), "{}", full.message);
        assert!(full.message.ends_with(&format!("(this handoff needs about {} MiB)", huge.div_ceil(MIB))));
        // The same write failure with room to spare is something else.
        let unable = Error::failed("git_failed", "error: unable to write file assets/a2.bin");
        assert_eq!(explain(unable, None, std::slice::from_ref(&here), 1).code, "git_failed");
        // ENOSPC itself, whatever the room.
        let enospc = Error::from(std::io::Error::from_raw_os_error(libc::ENOSPC));
        let full = explain(enospc, None, std::slice::from_ref(&here), 1);
        assert_eq!(
            full.message,
            format!("no space left on {} (this handoff needs about 1 MiB)", mount_point(&here).display())
        );
        // The helper's words, as its client tells them.
        let wire = Error::failed(NO_SPACE, "devbox: no space left on /srv (this handoff needs about 3 MiB)");
        assert_eq!(
            from_host(wire, "devbox").message,
            "devbox has no space left on /srv (this handoff needs about 3 MiB)"
        );
    }

    #[test]
    fn the_mount_point_is_the_highest_directory_on_the_same_device() {
        assert_eq!(mount_point(Path::new("/proc/self")), PathBuf::from("/proc"));
        assert_eq!(mount_point(Path::new("/")), PathBuf::from("/"));
    }
}
