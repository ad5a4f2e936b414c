//! Paths in `~/.ssh/config`: `%` tokens, `~`, and glob(3) for `Include`.

use std::path::{Path, PathBuf};

use super::wildcard_match;

pub(super) struct Tokens<'a> {
    pub alias: &'a str,
    pub hostname: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub local_user: &'a str,
    pub home: &'a Path,
    pub key_alias: Option<&'a str>,
}

impl Tokens<'_> {
    pub fn expand(&self, text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('%') => out.push('%'),
                Some('h') => out.push_str(self.hostname),
                Some('n') => out.push_str(self.alias),
                Some('p') => out.push_str(&self.port.to_string()),
                Some('r') => out.push_str(self.user),
                Some('u') => out.push_str(self.local_user),
                Some('d') => out.push_str(&self.home.to_string_lossy()),
                Some('k') => out.push_str(self.key_alias.unwrap_or(self.hostname)),
                // SAFETY: getuid has no preconditions.
                Some('i') => out.push_str(&unsafe { libc::getuid() }.to_string()),
                Some('l') => out.push_str(&this_hostname()),
                Some(other) => {
                    out.push('%');
                    out.push(other);
                }
                None => out.push('%'),
            }
        }
        out
    }
}

fn this_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_owned()).unwrap_or_default()
}

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
