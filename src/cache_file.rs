//! Cache files under a repository's private directory: written whole or
//! not at all, and never an error (a cache that cannot be written only
//! makes the next run slower).

use std::path::Path;

/// Write a cache file atomically; one that cannot be written is only a slower next run.
pub fn write(file: &Path, bytes: &[u8]) {
    use std::io::Write;
    let Some(dir) = file.parent() else { return };
    let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) else { return };
    if tmp.write_all(bytes).is_ok() {
        let _ = tmp.persist(file);
    }
}
