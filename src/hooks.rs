//! The git hooks: installing them between marker lines, beside whatever a
//! hook file already holds.
//!
//! The hook files git runs only call `git codex-handoff hook <name>`; what
//! they check lives with the threads (`thread::guard`), so it can change
//! without reinstalling hooks.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::repo::Repo;

pub const BEGIN: &str = "# >>> git-codex-handoff >>>";
pub const END: &str = "# <<< git-codex-handoff <<<";

/// The hooks this tool installs, with the stub shipped in `git-hooks/`.
pub const HOOKS: &[(&str, &str)] = &[("pre-commit", include_str!("../git-hooks/pre-commit"))];

/// What `install` or `uninstall` did to one hook file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A new hook file was written.
    Created,
    /// Our lines were added to an existing hook.
    Added,
    /// Our lines were there and have been brought up to date.
    Updated,
    /// Our lines were there already, exactly.
    Unchanged,
    /// Our lines were removed (the rest of the file is kept).
    Removed,
    /// Our lines were removed and nothing else was left, so the file was deleted.
    Deleted,
    /// Nothing of ours was there.
    Absent,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct HookReport {
    pub name: String,
    /// As text (JSON has no other way; a non-UTF-8 byte becomes U+FFFD).
    #[serde(serialize_with = "lossy_path")]
    pub path: PathBuf,
    pub action: Action,
}

fn lossy_path<S: serde::Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&path.to_string_lossy())
}

/// The directory git runs hooks from: `core.hooksPath` if set (relative to
/// the worktree root, as git runs hooks there), else the hooks directory of
/// the repository's common git dir, shared by all linked worktrees.
pub fn hooks_dir(repo: &Repo) -> Result<PathBuf> {
    let configured = repo.git().text(["config", "--path", "--get", "core.hooksPath"]).ok().filter(|p| !p.is_empty());
    Ok(match configured {
        Some(path) => {
            let path = PathBuf::from(path);
            if path.is_absolute() {
                path
            } else {
                let base = repo.workdir().unwrap_or_else(|_| repo.git_dir());
                lexical(&base.join(path))
            }
        }
        None => lexical(&repo.common_dir()).join("hooks"),
    })
}

/// `a/b/../c` → `a/c` (a linked worktree's common dir is `.../worktrees/<name>/../..`).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The lines placed in a hook file.
pub fn block(name: &str) -> String {
    format!(
        "{BEGIN}\n\
         # Added by `git codex-handoff install-hooks`; `git codex-handoff install-hooks --uninstall` removes it.\n\
         if command -v git-codex-handoff >/dev/null 2>&1; then git codex-handoff hook {name} \"$@\" || exit $?; fi\n\
         {END}\n"
    )
}

/// Install every hook into `dir`: idempotent, keeping other content.
pub fn install(dir: &Path) -> Result<Vec<HookReport>> {
    std::fs::create_dir_all(dir)?;
    HOOKS.iter().map(|(name, _)| install_one(dir, name)).collect()
}

/// Remove our lines from every hook in `dir`.
pub fn uninstall(dir: &Path) -> Result<Vec<HookReport>> {
    HOOKS.iter().map(|(name, _)| uninstall_one(dir, name)).collect()
}

fn install_one(dir: &Path, name: &str) -> Result<HookReport> {
    let path = dir.join(name);
    let target = write_target(&path);
    let ours = block(name);
    let (text, action) = match std::fs::read(&target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (format!("#!/bin/sh\n{ours}"), Action::Created),
        Err(e) => return Err(e.into()),
        Ok(bytes) => {
            let existing = String::from_utf8(bytes).map_err(|_| not_a_shell_script(&path))?;
            match split_block(&existing) {
                Some((before, old, after)) => {
                    if old == ours {
                        (existing.clone(), Action::Unchanged)
                    } else {
                        (format!("{before}{ours}{after}"), Action::Updated)
                    }
                }
                None => {
                    check_shell(&path, &existing)?;
                    (insert_block(&existing, &ours), Action::Added)
                }
            }
        }
    };
    if action != Action::Unchanged {
        write_hook(&target, &text)?;
    } else {
        make_executable(&target)?;
    }
    Ok(HookReport { name: name.to_owned(), path, action })
}

fn uninstall_one(dir: &Path, name: &str) -> Result<HookReport> {
    let path = dir.join(name);
    let target = write_target(&path);
    let existing = match std::fs::read(&target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(HookReport { name: name.to_owned(), path, action: Action::Absent })
        }
        Err(e) => return Err(e.into()),
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
    };
    let Some((before, _, after)) = split_block(&existing) else {
        return Ok(HookReport { name: name.to_owned(), path, action: Action::Absent });
    };
    let rest = format!("{before}{after}");
    let only_shebang = rest.lines().all(|l| l.trim().is_empty() || l.trim() == "#!/bin/sh");
    if only_shebang {
        std::fs::remove_file(&target)?;
        return Ok(HookReport { name: name.to_owned(), path, action: Action::Deleted });
    }
    write_hook(&target, &rest)?;
    Ok(HookReport { name: name.to_owned(), path, action: Action::Removed })
}

/// A hook that is a symlink (as some hook managers make them) is edited where it points.
fn write_target(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()),
        _ => path.to_owned(),
    }
}

/// `(before, block, after)` when the text holds our marker lines.
fn split_block(text: &str) -> Option<(&str, &str, &str)> {
    let start = line_start_of(text, BEGIN)?;
    let end_marker = start + line_start_of(&text[start..], END)?;
    let end = match text[end_marker..].find('\n') {
        Some(i) => end_marker + i + 1,
        None => text.len(),
    };
    Some((&text[..start], &text[start..end], &text[end..]))
}

/// The byte offset of the first line that is exactly `line` (ignoring trailing spaces).
fn line_start_of(text: &str, line: &str) -> Option<usize> {
    let mut offset = 0;
    for l in text.split_inclusive('\n') {
        if l.trim_end() == line {
            return Some(offset);
        }
        offset += l.len();
    }
    None
}

/// Our lines go right after the `#!` line, so they run before anything that
/// could `exit` or `exec` away.
fn insert_block(existing: &str, ours: &str) -> String {
    if existing.starts_with("#!") {
        let (first, rest) = match existing.find('\n') {
            Some(i) => existing.split_at(i + 1),
            None => (existing, ""),
        };
        let first = if first.ends_with('\n') { first.to_owned() } else { format!("{first}\n") };
        format!("{first}{ours}{rest}")
    } else {
        // git runs a hook without `#!` with /bin/sh.
        format!("#!/bin/sh\n{ours}{existing}")
    }
}

/// Our lines are shell: refuse to put them into a hook written in another language.
fn check_shell(path: &Path, text: &str) -> Result<()> {
    let Some(first) = text.lines().next().filter(|l| l.starts_with("#!")) else {
        return Ok(());
    };
    let mut words = first[2..].split_whitespace();
    let mut interpreter = words.next().unwrap_or_default().rsplit('/').next().unwrap_or_default();
    if interpreter == "env" {
        interpreter = words.find(|w| !w.starts_with('-')).unwrap_or_default();
    }
    if matches!(interpreter, "sh" | "bash" | "dash" | "ash" | "ksh" | "mksh" | "zsh" | "busybox") {
        Ok(())
    } else {
        Err(not_a_shell_script(path))
    }
}

fn not_a_shell_script(path: &Path) -> Error {
    Error::refused("hook_not_shell", format!("{} is not a shell script; its content was left alone", path.display()))
        .with_help("call `git codex-handoff hook <NAME> \"$@\"` from it yourself (and stop when it fails)")
}

fn write_hook(target: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = target.parent().unwrap_or(Path::new("."));
    // An existing hook keeps its mode (made executable); a new one is rwxr-xr-x.
    let mode = match std::fs::metadata(target) {
        Ok(m) => (m.permissions().mode() & 0o7777) | 0o111,
        Err(_) => 0o755,
    };
    let mut tmp = tempfile::Builder::new().prefix(".codex-handoff-hook").tempfile_in(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))?;
    tmp.persist(target).map_err(|e| Error::from(e.error))?;
    Ok(())
}

fn make_executable(target: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(target)?.permissions().mode();
    if mode & 0o111 == 0 {
        std::fs::set_permissions(target, std::fs::Permissions::from_mode(mode | 0o111))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_goes_after_the_shebang_and_is_found_again() {
        let ours = block("pre-commit");
        let text = insert_block("#!/bin/sh\necho mine\nexit 0\n", &ours);
        assert!(text.starts_with(&format!("#!/bin/sh\n{ours}")));
        let (before, found, after) = split_block(&text).unwrap();
        assert_eq!((before, found, after), ("#!/bin/sh\n", ours.as_str(), "echo mine\nexit 0\n"));
        assert_eq!(insert_block("echo bare", &ours), format!("#!/bin/sh\n{ours}echo bare"));
    }

    #[test]
    fn only_shell_hooks_are_edited() {
        let p = Path::new("h");
        assert!(check_shell(p, "#!/bin/sh\n").is_ok());
        assert!(check_shell(p, "#!/usr/bin/env bash\n").is_ok());
        assert!(check_shell(p, "echo no shebang\n").is_ok());
        assert!(check_shell(p, "#!/usr/bin/env python3\n").is_err());
        assert!(check_shell(p, "#!/usr/bin/perl -w\n").is_err());
    }
}
