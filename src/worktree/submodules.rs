//! Submodules. A populated submodule is a repository of its own inside the
//! worktree: it is captured, snapshotted (in its own repository), carried
//! and restored like the worktree that holds it, recursively.
//!
//! Between machines, a submodule's commits travel from module repository to
//! module repository (`<git dir>/modules/<name>`, nested ones under their
//! parent's), over the handoff's connection. A new worktree's submodule is
//! a clone of the destination's own module repository, made as `git
//! submodule update` makes it but never from the network: its `origin`
//! stays the submodule's own URL.

use std::path::{Path, PathBuf};

use gix::bstr::{BString, ByteSlice};
use gix::ObjectId;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::repo::Repo;
use crate::worktree::state::SubmoduleState;

/// A submodule as a snapshot records it (its state is its own snapshot commit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmoduleRecord {
    pub path: String,
    pub name: String,
    pub snapshot: String,
    #[serde(default)]
    pub branch: Option<String>,
}

/// Where the submodules of a snapshot being restored find their objects.
#[derive(Debug, Clone)]
pub enum ModuleSource {
    /// In the module repositories under this git dir (`<git dir>/modules/<name>`,
    /// nested ones under their parent's), where they arrived.
    Modules(PathBuf),
    /// In the submodules of this worktree (where the snapshot was taken).
    Worktree(PathBuf),
}

/// A submodule checked out in a worktree.
pub struct Populated {
    pub path: String,
    pub name: String,
    pub repo: Repo,
}

/// The populated submodules of the worktree `repo` is opened at: gitlinks
/// of its index whose directory holds a repository.
pub fn populated(repo: &Repo, index: &gix::index::File) -> Result<Vec<Populated>> {
    let root = repo.workdir()?;
    let gitlinks: Vec<BString> = index
        .entries()
        .iter()
        .filter(|e| e.mode.is_submodule() && e.stage_raw() == 0)
        .map(|e| e.path(index).to_owned())
        .filter(|p| root.join(&*p.to_os_str_lossy()).join(".git").exists())
        .collect();
    if gitlinks.is_empty() {
        return Ok(Vec::new());
    }
    let names = names_by_path(repo)?;
    let mut found = Vec::new();
    for path in gitlinks {
        let Ok(path) = String::from_utf8(path.to_vec()) else {
            return Err(Error::refused("submodule_path", format!("a submodule's path is not UTF-8: {path:?}"))
                .with_help("rename the submodule"));
        };
        let Some(name) = names.iter().find(|(p, _)| *p == path).map(|(_, n)| n.clone()) else {
            return Err(Error::refused("submodule_unnamed", format!("submodule {path} has no entry in .gitmodules"))
                .with_help(format!("add it properly with `git submodule add <url> {path}`, or remove it")));
        };
        check_name(&name)?;
        let repo = Repo::open(&root.join(&path))?;
        found.push(Populated { path, name, repo });
    }
    Ok(found)
}

/// path -> name, from `.gitmodules` in the worktree (else in the index).
fn names_by_path(repo: &Repo) -> Result<Vec<(String, String)>> {
    let root = repo.workdir()?;
    let file = root.join(".gitmodules");
    let source: Vec<String> = if file.is_file() {
        vec!["--file".into(), file.to_string_lossy().into_owned()]
    } else {
        vec!["--blob".into(), ":.gitmodules".into()]
    };
    let mut cmd = repo.git().command(["config", "-z"]);
    cmd.args(&source).args(["--get-regexp", r"^submodule\..*\.path$"]);
    // Exit 1: no submodule has a path.
    let out = cmd.output()?;
    let mut names = Vec::new();
    for record in out.stdout.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let text = String::from_utf8_lossy(record);
        let Some((key, path)) = text.split_once('\n') else { continue };
        if let Some(name) = key.strip_prefix("submodule.").and_then(|k| k.strip_suffix(".path")) {
            names.push((path.trim_end_matches('/').to_owned(), name.to_owned()));
        }
    }
    Ok(names)
}

/// A submodule name must stay inside `modules/`: git's own rule (no `..`
/// component), and no absolute or empty names.
pub fn check_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.contains('\0')
        || name.split(['/', '\\']).any(|part| part == ".." || part == "." || part.is_empty());
    if bad {
        return Err(Error::refused("submodule_name", format!("{name:?} is not a usable submodule name"))
            .with_help("fix the submodule's name in .gitmodules"));
    }
    Ok(())
}

/// A submodule path from a snapshot must be a plain relative path, with
/// no `.git` part in any spelling a file system may take for it.
pub fn check_path(path: &str) -> Result<()> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\0')
        || path.split('/').any(|part| {
            part == ".." || part == "." || crate::worktree::state::is_dot_git(part.as_bytes()) || part.is_empty()
        });
    if bad {
        return Err(Error::failed("bad_snapshot", format!("the snapshot names a submodule at {path:?}")));
    }
    Ok(())
}

/// The url `.gitmodules` in the snapshot's files (tree `worktree_tree`)
/// gives submodule `name` must be one git would only ever fetch: not an
/// option (`-o…`, which git's fsck calls `gitmodulesUrl`), not a command
/// (`ext::…`, which git's default `protocol.ext.allow` never runs), no
/// control characters. Such a url from another machine never gets into
/// this machine's config, whatever its fsck settings.
pub fn check_url(repo: &Repo, worktree_tree: ObjectId, name: &str, path: &str) -> Result<()> {
    let tree = repo.gix.find_tree(worktree_tree)?;
    let Some(modules) = tree.lookup_entry_by_path(".gitmodules")? else { return Ok(()) };
    let mut cmd = repo.git().command(["config", "--blob", &modules.object_id().to_string(), "--get"]);
    cmd.arg(format!("submodule.{name}.url"));
    // Exit 1: no url for it (git submodule init then refuses).
    let url = crate::git::run_command_exiting(&mut cmd, None, &[0, 1])?;
    let url = String::from_utf8_lossy(&url);
    let url = url.trim_end_matches('\n');
    let command = url.split_once("::").is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("ext"));
    if url.starts_with('-') || command || url.chars().any(char::is_control) {
        return Err(Error::refused(
            "submodule_url",
            format!(
                "the snapshot's .gitmodules gives submodule {path} the url {url:?}, which git could run as a command"
            ),
        )
        .with_help("it was not written by git-codex-handoff from a repository git accepts; nothing was changed"));
    }
    Ok(())
}

/// The module repository of submodule `name` of the repository whose git dir is `git_dir`.
pub fn module_dir(git_dir: &Path, name: &str) -> Result<PathBuf> {
    check_name(name)?;
    Ok(git_dir.join("modules").join(name))
}

pub(crate) fn in_submodule(path: &str, e: Error) -> Error {
    Error { message: format!("in submodule {path}: {}", e.message), ..e }
}

pub fn missing_module(path: &str, dir: &Path) -> Error {
    Error::refused("submodule_missing", format!("submodule {path} has no repository at {}", dir.display()))
        .with_help(format!("initialise it there with `git submodule update --init {path}`"))
}

/// One submodule snapshot to carry to the other machine.
#[derive(Debug, Clone)]
pub struct Carry {
    /// Its path from the top worktree (`vendor/lib/deep/inner`).
    pub path: String,
    /// Its module repository relative to a clone's common git dir
    /// (`modules/vendor/lib/modules/deep/inner`).
    pub module: String,
    /// The repository here that holds the snapshot.
    pub git_dir: PathBuf,
    pub snapshot: ObjectId,
}

/// Every written submodule snapshot of `subs`, parents before their nested ones.
pub fn carries(subs: &[SubmoduleState]) -> Vec<Carry> {
    let mut out = Vec::new();
    collect(subs, "", "", &mut out);
    out
}

fn collect(subs: &[SubmoduleState], path_prefix: &str, module_prefix: &str, out: &mut Vec<Carry>) {
    for sub in subs {
        let path = format!("{path_prefix}{}", sub.path);
        let module = format!("{module_prefix}modules/{}", sub.name);
        if let (Some(git_dir), Some(snapshot)) = (&sub.git_dir, sub.snapshot) {
            out.push(Carry { path: path.clone(), module: module.clone(), git_dir: git_dir.clone(), snapshot });
        }
        collect(&sub.state.submodules, &format!("{path}/"), &format!("{module}/"), out);
    }
}

/// A module path (`modules/a/modules/b`) from the other machine, checked:
/// relative, under `modules/`, never leaving it.
pub fn check_module(module: &str) -> Result<()> {
    let inside = module.strip_prefix("modules/").is_some_and(|rest| check_name(rest).is_ok());
    if !inside {
        return Err(Error::usage("bad_request", format!("{module:?} is not a module repository path")));
    }
    Ok(())
}

/// Every module repository under `git_dir/modules`, nested ones too.
pub fn module_repositories(git_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![(git_dir.join("modules"), 0)];
    while let Some((dir, depth)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            // Never follow a symlink out of the repository; names are never that deep.
            if !entry.file_type().is_ok_and(|t| t.is_dir()) || depth > 32 {
                continue;
            }
            if path.join("HEAD").is_file() {
                pending.push((path.join("modules"), depth + 1));
                found.push(path);
            } else {
                pending.push((path, depth + 1));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_module_paths_stay_inside_modules() {
        for good in ["vendor/lib", "lib", "a.b-c_d"] {
            assert!(check_name(good).is_ok(), "{good}");
            assert!(check_module(&format!("modules/{good}/modules/inner")).is_ok(), "{good}");
        }
        for bad in ["", "/etc", "../x", "a/../../b", "a//b", "a/./b", "a\\..\\b", "a\0b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
            assert!(check_module(&format!("modules/{bad}")).is_err(), "{bad:?}");
        }
        assert!(check_module("objects").is_err());
        assert!(check_path("vendor/lib/.git").is_err());
        for spelled in ["a/.GIT/b", ".Git", "x/.g\u{200c}it", "\u{feff}.git"] {
            assert!(check_path(spelled).is_err(), "{spelled:?}");
        }
        assert!(check_path("a/.github/b").is_ok());
        assert!(check_path("vendor/lib").is_ok());
    }
}
