//! Finding and opening the repository the command runs in, as git does.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::git::Git;

pub struct Repo {
    pub gix: gix::Repository,
    /// [`Repo::common_dir`], resolved once (it is asked for per thread in a list).
    common: std::sync::OnceLock<PathBuf>,
}

impl Repo {
    /// Discover the repository from the current directory, honouring `GIT_DIR`
    /// and `GIT_WORK_TREE` as git does (`git -C` has already changed directory).
    pub fn discover() -> Result<Repo> {
        let cwd = std::env::current_dir()?;
        Self::discover_at(&cwd)
    }

    pub fn discover_at(dir: &Path) -> Result<Repo> {
        let gix = gix::discover_with_environment_overrides(dir).map_err(|e| {
            Error::not_found("not_a_repository", format!("not a git repository: {}", dir.display()))
                .with_help("run the command inside a git repository, or use `git -C <dir> codex-handoff ...`")
                .with_source(e)
        })?;
        Ok(Repo { gix, common: Default::default() })
    }

    /// Open the repository whose worktree (or git dir) is exactly `dir`.
    pub fn open(dir: &Path) -> Result<Repo> {
        let gix = gix::open(dir).map_err(|e| {
            Error::not_found("not_a_repository", format!("not a git repository: {}", dir.display())).with_source(e)
        })?;
        Ok(Repo { gix, common: Default::default() })
    }

    /// The root of this worktree; an error for bare repositories.
    pub fn workdir(&self) -> Result<PathBuf> {
        self.gix.workdir().map(absolute).ok_or_else(|| {
            Error::usage("bare_repository", "this command needs a worktree, but the repository is bare")
                .with_help("run it inside a worktree of the repository")
        })
    }

    /// This worktree's private git dir (`.git` or `.git/worktrees/<name>`).
    pub fn git_dir(&self) -> PathBuf {
        absolute(self.gix.path())
    }

    /// The git dir shared by all worktrees. From a linked worktree gix gives
    /// it as `.git/worktrees/<name>/../..`: resolved here, so git never runs
    /// from inside it under a name it does not recognise as the git dir.
    pub fn common_dir(&self) -> PathBuf {
        self.common
            .get_or_init(|| {
                let dir = absolute(self.gix.common_dir());
                dir.canonicalize().unwrap_or(dir)
            })
            .clone()
    }

    /// Where this tool keeps per-repository files that do not travel (locks, temp files).
    pub fn private_dir(&self) -> Result<PathBuf> {
        let dir = self.private_path();
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Where [`Repo::private_dir`] is, without making it (for reads).
    pub fn private_path(&self) -> PathBuf {
        self.common_dir().join("codex-handoff")
    }

    pub fn git(&self) -> Git {
        Git::new(self.git_dir(), self.gix.workdir().map(absolute))
    }

    /// The current directory relative to the worktree root ("" at the root).
    pub fn subdirectory(&self) -> Result<String> {
        let root = self.workdir()?;
        let cwd = std::env::current_dir()?;
        let cwd = cwd.canonicalize().unwrap_or(cwd);
        let root = root.canonicalize().unwrap_or(root);
        Ok(cwd.strip_prefix(&root).map(|p| p.to_string_lossy().replace('\\', "/")).unwrap_or_default())
    }

    /// Is `ancestor` reachable from `descendant` (or the same commit)?
    pub fn is_ancestor(&self, ancestor: gix::ObjectId, descendant: gix::ObjectId) -> Result<bool> {
        if ancestor == descendant {
            return Ok(true);
        }
        let base = self.gix.merge_base(ancestor, descendant);
        Ok(matches!(base, Ok(Some(b)) if b.detach() == ancestor))
    }

    /// The root of every worktree of this repository that is there
    /// (`git worktree list`), the main one first; bare and missing ones left out.
    pub fn worktrees(&self) -> Result<Vec<PathBuf>> {
        use std::os::unix::ffi::OsStrExt;
        let out = Git::new(self.common_dir(), None).run(["worktree", "list", "--porcelain", "-z"])?;
        let mut roots = Vec::new();
        for record in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
            if let Some(path) = record.strip_prefix(b"worktree ") {
                roots.push(PathBuf::from(std::ffi::OsStr::from_bytes(path)));
            } else if record == b"bare" || record.starts_with(b"prunable") {
                roots.pop();
            }
        }
        roots.retain(|p| p.is_dir());
        Ok(roots)
    }

    /// A string config value as git would read it (repository, global and system files).
    pub fn config_string(&self, key: &str) -> Option<String> {
        self.gix.config_snapshot().string(key).map(|v| v.to_string())
    }
}

pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir().map(|c| c.join(path)).unwrap_or_else(|_| path.to_owned())
    }
    .components()
    .collect()
}

/// This machine's name: `codex-handoff.machine` (as this repository sees
/// it, so a test may set it per repository), else the hostname.
pub fn machine_name(repo: Option<&Repo>) -> String {
    if let Some(name) = repo.and_then(|r| r.config_string("codex-handoff.machine")) {
        if !name.trim().is_empty() {
            return name.trim().to_owned();
        }
    }
    // The repository's config view includes the global file: no need to ask git.
    hostname()
}

/// Refuse a branch name git would refuse for a new branch (`git
/// check-ref-format --branch`), and `HEAD`, which git would take for
/// something else. Names are checked before anything changes.
pub fn check_branch_name(branch: &str) -> Result<()> {
    let refused = || {
        Error::usage("bad_branch", format!("{branch:?} is not a valid branch name"))
            .with_help("choose another name; see `git help check-ref-format`")
    };
    if branch == "HEAD" || branch.starts_with('-') || branch.is_empty() {
        return Err(refused());
    }
    // Outside any repository, so `@{-1}` and the like are not expanded.
    let out = std::process::Command::new("git")
        .args(["check-ref-format", "--branch", branch])
        .env_remove("GIT_DIR")
        .current_dir(std::env::temp_dir())
        .output()
        .map_err(|e| Error::failed("git_missing", "could not run git").with_source(e))?;
    if !out.status.success() || out.stdout.strip_suffix(b"\n") != Some(branch.as_bytes()) {
        return Err(refused());
    }
    Ok(())
}

/// The same rules, in-process, for a branch name that came from the other
/// machine or a note (checked on every arrival: no process to spawn).
pub fn check_received_branch_name(branch: &str) -> Result<()> {
    use gix::bstr::ByteSlice;
    let full = format!("refs/heads/{branch}");
    if branch == "HEAD" || branch.starts_with('-') || gix::validate::reference::name(full.as_bytes().as_bstr()).is_err()
    {
        return Err(Error::refused("bad_branch", format!("{branch:?} is not a valid branch name"))
            .with_help("the other machine sent a branch name git refuses; check its version of git-codex-handoff"));
    }
    Ok(())
}

pub fn hostname() -> String {
    crate::os::hostname().unwrap_or_else(|| "localhost".to_owned())
}

/// Whether two paths name the same file, symlinks resolved.
pub fn same_path(a: &Path, b: &Path) -> bool {
    let a = a.canonicalize().unwrap_or_else(|_| a.to_owned());
    let b = b.canonicalize().unwrap_or_else(|_| b.to_owned());
    a == b
}

/// The private git dir of the worktree at `worktree` (`.git`, or what its `.git` file names).
pub fn admin_dir(worktree: &Path) -> Option<PathBuf> {
    let dot_git = worktree.join(".git");
    let meta = std::fs::symlink_metadata(&dot_git).ok()?;
    if meta.is_dir() {
        return Some(dot_git);
    }
    let text = std::fs::read_to_string(&dot_git).ok()?;
    let target = PathBuf::from(text.strip_prefix("gitdir: ")?.trim_end());
    Some(if target.is_absolute() { target } else { worktree.join(target) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_branch_names_follow_gits_rules() {
        for name in ["feat/x", "a-b_c.d", "\u{e9}t\u{e9}", "@", "x@y", "feat/$(touch)'\"`"] {
            assert!(check_branch_name(name).is_ok(), "git takes {name:?}");
            assert!(check_received_branch_name(name).is_ok(), "{name:?}");
        }
        for name in [
            "HEAD",
            "@{-1}",
            "a..b",
            "x.lock",
            "-x",
            "with space",
            "a:b",
            "a~b",
            "a^b",
            "a?b",
            "a*b",
            "a[b",
            "a\\b",
            ".a",
            "a.",
            "a/",
            "/a",
            "a//b",
            "a/.b",
            "tab\there",
            "",
        ] {
            assert!(check_branch_name(name).is_err(), "git refuses {name:?}");
            assert!(check_received_branch_name(name).is_err(), "{name:?}");
        }
    }
}
