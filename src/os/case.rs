//! Does a file system tell names apart by case? macOS's does not by default
//! (APFS and HFS+ are case-insensitive), so two files of a thread whose
//! names differ only in case would become one file there.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Are names that differ only in case the same file in the directory at
/// `path` (or, when it does not exist yet, its nearest existing parent,
/// where it would be made)? Asked by looking up a name that is there with
/// its case swapped; in a directory without such a name, by a probe file
/// made and removed at once. `false` when it cannot tell.
pub fn case_insensitive(path: &Path) -> bool {
    let Some(dir) = path.ancestors().find(|d| d.is_dir()) else { return false };
    let named = std::fs::read_dir(dir)
        .ok()
        .and_then(|entries| entries.flatten().map(|e| e.file_name()).find(|name| swap_case(name).is_some()));
    if let Some(name) = named {
        return answers_swapped(dir, &name);
    }
    let Ok(probe) = tempfile::Builder::new().prefix(".cxh-case-").tempfile_in(dir) else { return false };
    let Some(name) = probe.path().file_name().map(OsStr::to_owned) else { return false };
    answers_swapped(dir, &name)
}

/// Does `dir/name` with its case swapped lead to the same file as `dir/name`?
fn answers_swapped(dir: &Path, name: &OsStr) -> bool {
    let Some(swapped) = swap_case(name) else { return false };
    match (dir.join(name).symlink_metadata(), dir.join(swapped).symlink_metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// `name` with the case of its ASCII letters swapped; `None` without one.
fn swap_case(name: &OsStr) -> Option<OsString> {
    let bytes = name.as_bytes();
    if !bytes.iter().any(u8::is_ascii_alphabetic) {
        return None;
    }
    let swapped = bytes
        .iter()
        .map(|b| if b.is_ascii_lowercase() { b.to_ascii_uppercase() } else { b.to_ascii_lowercase() })
        .collect();
    Some(OsString::from_vec(swapped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swapping_case_changes_only_letters() {
        assert_eq!(swap_case(OsStr::new("Readme-2.md")), Some(OsString::from("rEADME-2.MD")));
        assert_eq!(swap_case(OsStr::new("2024-01")), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_linux_directory_tells_case_apart() {
        // The file systems the tests run on (ext4, tmpfs, overlayfs) are case-sensitive.
        let dir = tempfile::tempdir().unwrap();
        assert!(!case_insensitive(dir.path()), "an empty directory, asked with a probe file");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the probe file is gone");
        std::fs::write(dir.path().join("Readme"), b"a").unwrap();
        assert!(!case_insensitive(dir.path()), "asked through a name that is there");
        assert!(!case_insensitive(&dir.path().join("not/made/yet")), "its nearest existing parent");
        std::fs::write(dir.path().join("rEADME"), b"b").unwrap();
        assert!(!case_insensitive(dir.path()), "both names there: two files");
    }
}
