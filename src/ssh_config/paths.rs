//! Paths in `~/.ssh/config`: `~`, and glob(3) for `Include`.

use std::path::{Path, PathBuf};

use super::wildcard_match;

pub(super) fn expand_tilde(path: &str, home: &Path) -> PathBuf {
    if path == "~" {
        home.to_owned()
    } else if let Some(rest) = path.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(path)
    }
}

/// glob(3) for `*` and `?` in any path component (no `[...]` classes).
pub(super) fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::from(if pattern.is_absolute() { "/" } else { "" })];
    for component in pattern.components() {
        let part = component.as_os_str().to_string_lossy().into_owned();
        if part == "/" {
            continue;
        }
        let mut next = Vec::new();
        for base in &found {
            if !part.contains(['*', '?']) {
                let path = base.join(&part);
                if path.exists() {
                    next.push(path);
                }
                continue;
            }
            let dir = if base.as_os_str().is_empty() { Path::new(".") } else { base.as_path() };
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                // As glob(3): a leading dot is matched only explicitly.
                if (!name.starts_with('.') || part.starts_with('.')) && wildcard_match(&part, &name) {
                    next.push(base.join(name));
                }
            }
        }
        found = next;
    }
    found
}
