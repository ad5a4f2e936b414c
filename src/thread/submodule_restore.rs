//! Restoring submodules into a worktree: each gets its repository (the
//! one there, the worktree's own module repository, or a clone of the
//! module repository that holds its snapshot, made as `git submodule
//! update` makes it but never from the network), its snapshot pinned
//! there, HEAD, files and index, recursively.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::git::Git;
use crate::repo::Repo;
use crate::thread::populate::Holding;
use crate::thread::submodules::{in_submodule, module_dir, SubmoduleState};

/// Give the worktree of `parent` (at `root`) each submodule in `subs`: its
/// repository (cloned from the module repository holding its snapshot when
/// the worktree has none), HEAD, files and index, recursively.
pub fn restore(parent: &Repo, root: &Path, subs: &[SubmoduleState], pin: &str) -> Result<()> {
    for sub in subs {
        restore_one(parent, root, sub, pin).map_err(|e| in_submodule(&sub.path, e))?;
    }
    Ok(())
}

fn restore_one(parent: &Repo, root: &Path, sub: &SubmoduleState, pin: &str) -> Result<()> {
    let source =
        sub.git_dir.clone().ok_or_else(|| Error::failed("submodule_lost", "the submodule's objects are unknown"))?;
    let dir = root.join(&sub.path);
    // Initialised in its superproject, as `git submodule update --init` leaves it (no network).
    if parent.config_string(&format!("submodule.{}.url", sub.name)).is_none() {
        parent.git().run(["submodule", "--quiet", "init", "--", &sub.path])?;
    }
    let (repo, fresh) = ensure_repository(parent, &dir, &sub.name, &source)?;
    let git_dir = repo.git_dir();
    match sub.snapshot {
        Some(snapshot) if !same_dir(&git_dir, &source) => {
            // The snapshot and everything it needs, pinned in the submodule's own repository.
            let mut cmd = Git::new(&source, None).command([
                "push",
                "--recurse-submodules=no",
                "--quiet",
                "--no-verify",
                "--force",
            ]);
            cmd.arg(&git_dir).arg(format!("{snapshot}:{pin}"));
            crate::git::run_command(&mut cmd, None)?;
        }
        Some(snapshot) => {
            let old = crate::thread::store::ref_target(&repo, pin)?;
            crate::thread::store::set_ref(&repo, pin, old, Some(snapshot), "codex-handoff: submodule snapshot")?;
        }
        // A state captured here a moment ago (going back after a failure): its objects are here.
        None if same_dir(&git_dir, &source) => {}
        None => return Err(Error::failed("submodule_lost", "the submodule's snapshot is unknown")),
    }
    let git = repo.git();
    let state = &sub.state;
    let message = "codex-handoff: restore a submodule";
    let head = state.head.map(|h| h.to_string()).unwrap_or_default();
    match &state.branch {
        None => {
            git.run(["update-ref", "--no-deref", "-m", message, "HEAD", &head])?;
        }
        Some(branch) => {
            let full = format!("refs/heads/{branch}");
            let tip = crate::thread::store::ref_target(&repo, &full)?;
            let moves = match (tip, state.head) {
                (_, None) => false,
                (Some(tip), Some(h)) if tip == h => false,
                // A fresh clone's branch holds nothing of anyone's.
                (Some(_), Some(_)) if fresh => true,
                (Some(tip), Some(h)) if repo.is_ancestor(tip, h)? => true,
                (None, Some(_)) => true,
                (Some(_), Some(_)) => {
                    return Err(Error::refused(
                        "branch_diverged",
                        format!("the submodule's branch {branch} has diverged there"),
                    )
                    .with_help("hand the thread off again once that branch is back where the thread left it"));
                }
            };
            if moves {
                git.run(["update-ref", "-m", message, &full, &head])?;
            }
            git.run(["symbolic-ref", "-m", message, "HEAD", &full])?;
        }
    }
    let holding = if fresh { Holding::Nothing } else { Holding::Unknown };
    crate::thread::populate::populate(&repo, &dir, state, holding, pin)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    crate::thread::restore::same_path(a, b)
}

/// The submodule's repository in the worktree at `dir`: the one there, the
/// worktree's own module repository connected to it, or a new clone of
/// `source` (the second value says whether it is new).
fn ensure_repository(parent: &Repo, dir: &Path, name: &str, source: &Path) -> Result<(Repo, bool)> {
    if dir.join(".git").exists() {
        return Ok((Repo::open(dir)?, false));
    }
    let module = module_dir(&parent.git_dir(), name)?;
    std::fs::create_dir_all(dir)?;
    if module.join("HEAD").exists() {
        connect(dir, &module)?;
        return Ok((Repo::open(dir)?, false));
    }
    if let Some(up) = module.parent() {
        std::fs::create_dir_all(up)?;
    }
    let mut cmd =
        Git::new(source, None).command(["-c", "protocol.file.allow=always", "clone", "--quiet", "--no-checkout"]);
    cmd.arg("--separate-git-dir").arg(&module).arg("--").arg(source).arg(dir);
    crate::git::run_command(&mut cmd, None)?;
    connect(dir, &module)?;
    let repo = Repo::open(dir)?;
    // The clone's origin is the submodule's own remote, as `git submodule update` leaves it.
    let url = Git::new(source, None).text(["config", "--get", "remote.origin.url"]).ok().filter(|u| !u.is_empty());
    match url {
        Some(url) => repo.git().run(["config", "remote.origin.url", &url])?,
        None => repo.git().run(["remote", "remove", "origin"])?,
    };
    Ok((repo, true))
}

/// Link a submodule's worktree and its repository with relative paths, as git does.
fn connect(dir: &Path, module: &Path) -> Result<()> {
    let dir = dir.canonicalize()?;
    let module = module.canonicalize()?;
    let to_module = relative(&dir, &module);
    std::fs::write(dir.join(".git"), format!("gitdir: {}\n", to_module.display()))?;
    let to_worktree = relative(&module, &dir);
    Git::new(&module, None).run([std::ffi::OsStr::new("config"), "core.worktree".as_ref(), to_worktree.as_os_str()])?;
    Ok(())
}

/// `to` as a path relative to the directory `from`.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for part in &to[common..] {
        out.push(part);
    }
    out
}
