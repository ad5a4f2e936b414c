//! Writing a snapshot back: files, modes, symlinks, the index (with fresh
//! stat data), HEAD and the submodules, then verifying the result against
//! the snapshot. A new worktree that fails, verification included, is
//! taken away again with the branch it made; a reused one is put back by
//! the arrival that reused it.

use std::path::{Path, PathBuf};

use gix::bstr::ByteSlice;
use gix::ObjectId;

use crate::error::{Error, Result};
use crate::fault;
use crate::git::Git;
use crate::repo::Repo;
use crate::worktree::populate::{populate, Holding};
use crate::worktree::state::{Trees, WorktreeState};
use crate::worktree::verify::{self, Expected};

#[derive(Debug, Clone)]
pub struct Restored {
    pub worktree: PathBuf,
    /// The branch the worktree is on; `None` when detached.
    pub branch: Option<String>,
}

/// Where the branch of a restored worktree comes from.
enum BranchPlan {
    Detach,
    Create(String),
    Existing(String),
    FastForward { branch: String, from: ObjectId },
    Orphan(String),
}

impl BranchPlan {
    fn on_branch(&self) -> bool {
        !matches!(self, BranchPlan::Detach)
    }
}

/// Materialise `expected` into a new linked worktree of `repo` at `path`.
/// With `detach`, HEAD is detached at the snapshot's HEAD instead of on its branch.
pub fn into_new_worktree(repo: &Repo, expected: &Expected, path: &Path, detach: bool) -> Result<Restored> {
    if path.exists() && std::fs::read_dir(path).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(Error::refused("path_exists", format!("{} already exists and is not empty", path.display()))
            .with_help("choose another directory"));
    }
    let state = &expected.state;
    let plan = branch_plan(repo, state, detach, None)?;
    let common = Git::new(repo.common_dir(), None);
    let path_arg = path.as_os_str().to_owned();
    let mut args: Vec<std::ffi::OsString> = vec!["worktree".into(), "add".into(), "--no-checkout".into()];
    let head_hex = state.head.map(|h| h.to_string());
    match &plan {
        BranchPlan::Detach => {
            let head = head_hex.clone().ok_or_else(|| {
                Error::refused("unborn_detached", "the snapshot is of an unborn branch, which cannot be detached")
                    .with_help("restore it on its branch")
            })?;
            args.extend(["--detach".into(), path_arg, head.into()]);
        }
        BranchPlan::Create(branch) => {
            args.extend(["-b".into(), branch.into(), path_arg, head_hex.clone().unwrap_or_default().into()]);
        }
        BranchPlan::Existing(branch) => args.extend([path_arg, branch.into()]),
        BranchPlan::FastForward { branch, from } => {
            let head = head_hex.clone().unwrap_or_default();
            common.run([
                "update-ref",
                "-m",
                "codex-handoff: fast-forward to the thread's HEAD",
                &format!("refs/heads/{branch}"),
                &head,
                &from.to_string(),
            ])?;
            args.extend([path_arg, branch.into()]);
        }
        BranchPlan::Orphan(branch) => {
            args.retain(|a| a != "--no-checkout");
            args.extend(["--orphan".into(), "-b".into(), branch.into(), path_arg]);
        }
    }
    if let Err(e) = common.run(&args) {
        undo_branch(&common, &plan, state.head);
        return Err(e);
    }
    crate::fault::point(crate::fault::Step::ArrivalWorktreeAdded);
    let result = Repo::open(path).and_then(|worktree| {
        populate(&worktree, path, state, Holding::Nothing, &expected.pin)?;
        check(path, expected, plan.on_branch())
    });
    match result {
        Ok(()) => Ok(Restored {
            worktree: path.to_owned(),
            branch: if plan.on_branch() { state.branch.clone() } else { None },
        }),
        Err(e) => {
            // Nothing of value is in a worktree just made: take it and its branch away again.
            let _ = remove_worktree(repo, path);
            undo_branch(&common, &plan, state.head);
            Err(taken_back(e, "the new worktree and any branch it made were removed"))
        }
    }
}

/// Restore `expected` into the existing worktree at `path`, whose contents
/// the caller has checked are only what the thread left there (all of it is
/// in an earlier snapshot). Files, index and HEAD move to the snapshot's.
/// `holds`: the trees the worktree was just found to hold exactly (under
/// the thread's lock); `None` when that is not known.
pub fn into_existing_worktree(
    repo: &Repo,
    expected: &Expected,
    path: &Path,
    detach: bool,
    holds: Option<Trees>,
) -> Result<Restored> {
    let state = &expected.state;
    let plan = branch_plan(repo, state, detach, Some(path))?;
    let worktree = Repo::open(path)?;
    let holding = match holds {
        Some(Trees { index, files }) => Holding::Trees { index, files },
        None => Holding::Unknown,
    };
    move_head(&worktree, &plan, state.head)?;
    populate(&worktree, path, state, holding, &expected.pin)?;
    check(path, expected, plan.on_branch())?;
    Ok(Restored { worktree: path.to_owned(), branch: if plan.on_branch() { state.branch.clone() } else { None } })
}

fn move_head(worktree: &Repo, plan: &BranchPlan, head: Option<ObjectId>) -> Result<()> {
    let git = worktree.git();
    let message = "codex-handoff: restore a thread";
    let head = head.map(|h| h.to_string()).unwrap_or_default();
    match plan {
        BranchPlan::Detach => {
            git.run(["update-ref", "--no-deref", "-m", message, "HEAD", &head])?;
        }
        BranchPlan::Create(branch) => {
            git.run(["update-ref", "-m", message, &format!("refs/heads/{branch}"), &head, ""])?;
            git.run(["symbolic-ref", "-m", message, "HEAD", &format!("refs/heads/{branch}")])?;
        }
        BranchPlan::FastForward { branch, from } => {
            git.run(["update-ref", "-m", message, &format!("refs/heads/{branch}"), &head, &from.to_string()])?;
            git.run(["symbolic-ref", "-m", message, "HEAD", &format!("refs/heads/{branch}")])?;
        }
        BranchPlan::Existing(branch) | BranchPlan::Orphan(branch) => {
            git.run(["symbolic-ref", "-m", message, "HEAD", &format!("refs/heads/{branch}")])?;
        }
    }
    Ok(())
}

/// Verify, after the test-only fault that makes the result differ.
fn check(path: &Path, expected: &Expected, on_branch: bool) -> Result<()> {
    if fault::trip(fault::Step::VerifyMismatch) {
        std::fs::write(path.join("codex-handoff-fault.txt"), b"a file the snapshot does not have\n")?;
    }
    verify::verify(&Repo::open(path)?, expected, on_branch)
}

/// `e`, its help saying first what was taken back.
pub fn taken_back(e: Error, what: &str) -> Error {
    let help = match &e.help {
        Some(help) => format!("{what}; {help}"),
        None => what.to_owned(),
    };
    Error { help: Some(help), ..e }
}

/// Take back a branch change of `plan` (a created branch, a fast-forward).
fn undo_branch(common: &Git, plan: &BranchPlan, head: Option<ObjectId>) {
    let Some(head) = head.map(|h| h.to_string()) else { return };
    let message = "codex-handoff: restore failed";
    match plan {
        BranchPlan::Create(branch) => {
            let _ = common.run(["update-ref", "-m", message, "-d", &format!("refs/heads/{branch}"), &head]);
        }
        BranchPlan::FastForward { branch, from } => {
            let _ =
                common.run(["update-ref", "-m", message, &format!("refs/heads/{branch}"), &from.to_string(), &head]);
        }
        _ => {}
    }
}

/// Remove the linked worktree at `path` and git's record of it, whatever
/// state an interrupted `git worktree add` or restore left it in (locked,
/// half-written, or its directory already gone). A directory there that is
/// not a worktree of this repository (nor empty) is left alone. Returns
/// whether there was a worktree to remove.
pub fn remove_worktree(repo: &Repo, path: &Path) -> Result<bool> {
    let common = Git::new(repo.common_dir(), None);
    let records = repo.common_dir().join("worktrees");
    let ours = crate::repo::admin_dir(path).is_some_and(|admin| admin.starts_with(&records));
    let empty = std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none());
    let exists = path.symlink_metadata().is_ok();
    if exists && !ours && !empty {
        return Ok(false);
    }
    let removed = common.run([
        std::ffi::OsStr::new("worktree"),
        "remove".as_ref(),
        "--force".as_ref(),
        "--force".as_ref(),
        path.as_os_str(),
    ]);
    if removed.is_err() {
        if exists {
            std::fs::remove_dir_all(path)?;
        }
        // `git worktree add` keeps its record locked until it is done, and
        // prune leaves locked records alone: remove the record itself.
        let dot_git = path.join(".git");
        for entry in std::fs::read_dir(&records).into_iter().flatten().flatten() {
            let names = std::fs::read_to_string(entry.path().join("gitdir")).unwrap_or_default();
            if Path::new(names.trim_end()) == dot_git {
                std::fs::remove_dir_all(entry.path())?;
            }
        }
        common.run(["worktree", "prune"])?;
    }
    Ok(exists)
}

fn branch_plan(repo: &Repo, state: &WorktreeState, detach: bool, own_worktree: Option<&Path>) -> Result<BranchPlan> {
    let Some(branch) = state.branch.clone().filter(|_| !detach) else {
        return Ok(BranchPlan::Detach);
    };
    let full = format!("refs/heads/{branch}");
    let foreign =
        checked_out_in(repo, &full)?.filter(|wt| !own_worktree.is_some_and(|own| crate::repo::same_path(own, wt)));
    if let Some(wt) = foreign {
        return Err(Error::refused(
            "branch_checked_out",
            format!("branch {branch} is checked out in another worktree: {}", wt.display()),
        )
        .with_help("restore it detached, or switch that worktree to another branch"));
    }
    let existing = repo.gix.try_find_reference(full.as_str())?.and_then(|r| r.target().try_id().map(ToOwned::to_owned));
    let Some(current) = existing else {
        return Ok(match state.head {
            Some(_) => BranchPlan::Create(branch),
            None => BranchPlan::Orphan(branch),
        });
    };
    let diverged = || {
        Error::refused("branch_diverged", format!("branch {branch} here has diverged from the thread's branch"))
            .with_help("hand the thread off onto a new branch with `--branch NEW`")
    };
    let Some(head) = state.head else {
        return Err(diverged());
    };
    if current == head {
        return Ok(BranchPlan::Existing(branch));
    }
    if repo.is_ancestor(current, head)? {
        return Ok(BranchPlan::FastForward { branch, from: current });
    }
    Err(diverged())
}

/// The worktree that has `full_ref` checked out, if any.
pub fn checked_out_in(repo: &Repo, full_ref: &str) -> Result<Option<PathBuf>> {
    let out = Git::new(repo.common_dir(), None).run(["worktree", "list", "--porcelain", "-z"])?;
    let mut current: Option<PathBuf> = None;
    for field in out.split(|b| *b == 0) {
        if let Some(path) = field.strip_prefix(b"worktree ") {
            current = Some(PathBuf::from(path.to_os_str_lossy().into_owned()));
        } else if let Some(name) = field.strip_prefix(b"branch ") {
            if name == full_ref.as_bytes() {
                return Ok(current);
            }
        }
    }
    Ok(None)
}
