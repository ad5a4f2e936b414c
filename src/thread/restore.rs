//! Writing a snapshot back: files, modes, symlinks, the index (with fresh
//! stat data) and HEAD, then verifying the result against the snapshot.

use std::path::{Path, PathBuf};

use gix::bstr::{BString, ByteSlice};
use gix::ObjectId;

use crate::error::{Error, Result};
use crate::git::Git;
use crate::repo::Repo;
use crate::thread::snapshot::{self, WorktreeState};
use crate::thread::store::{self, Thread};

/// What a snapshot says the worktree must look like.
#[derive(Debug, Clone)]
pub struct Expected {
    pub state: WorktreeState,
    pub snapshot: ObjectId,
}

impl Expected {
    pub fn of(repo: &Repo, thread: &Thread) -> Result<Expected> {
        let snapshot = thread.snapshot;
        let worktree_tree = repo.gix.find_commit(snapshot)?.tree_id()?.detach();
        let index_commit = store::parse_hex(&thread.state.index_commit)?;
        let index_tree = repo.gix.find_commit(index_commit)?.tree_id()?.detach();
        let head = thread.state.head.as_deref().map(store::parse_hex).transpose()?;
        let data_commit = store::parse_hex(&thread.state.data_commit)?;
        let intent_to_add = store::intent_to_add_paths(repo, data_commit)?;
        if let Some(bad) = intent_to_add.iter().find(|p| !is_plain_path(p)) {
            return Err(bad_intent_to_add(bad));
        }
        Ok(Expected {
            snapshot,
            state: WorktreeState {
                head,
                branch: thread.state.branch.clone(),
                index_tree,
                worktree_tree,
                intent_to_add,
            },
        })
    }
}

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
    common.run(&args)?;

    let result = populate_and_verify(path, expected, !matches!(plan, BranchPlan::Detach), false);
    match result {
        Ok(()) => Ok(Restored {
            worktree: path.to_owned(),
            branch: if matches!(plan, BranchPlan::Detach) { None } else { state.branch.clone() },
        }),
        Err(e) if e.code == "verify_failed" => Err(e),
        Err(e) => {
            // Nothing of value is in a worktree we just created: take it away again.
            let _ =
                common.run([std::ffi::OsStr::new("worktree"), "remove".as_ref(), "--force".as_ref(), path.as_os_str()]);
            Err(e)
        }
    }
}

/// Restore `expected` into the existing worktree at `path`, whose contents
/// the caller has checked are only what the thread left there (all of it is
/// in an earlier snapshot). Files, index and HEAD move to the snapshot's.
pub fn into_existing_worktree(repo: &Repo, expected: &Expected, path: &Path, detach: bool) -> Result<Restored> {
    let state = &expected.state;
    let plan = branch_plan(repo, state, detach, Some(path))?;
    let worktree = Repo::open(path)?;
    let git = worktree.git();
    let message = "codex-handoff: restore a thread";
    let head = state.head.map(|h| h.to_string()).unwrap_or_default();
    match &plan {
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
    populate_and_verify(path, expected, !matches!(plan, BranchPlan::Detach), true)?;
    Ok(Restored {
        worktree: path.to_owned(),
        branch: if matches!(plan, BranchPlan::Detach) { None } else { state.branch.clone() },
    })
}

pub fn same_path(a: &Path, b: &Path) -> bool {
    let a = a.canonicalize().unwrap_or_else(|_| a.to_owned());
    let b = b.canonicalize().unwrap_or_else(|_| b.to_owned());
    a == b
}

fn branch_plan(repo: &Repo, state: &WorktreeState, detach: bool, own_worktree: Option<&Path>) -> Result<BranchPlan> {
    let Some(branch) = state.branch.clone().filter(|_| !detach) else {
        return Ok(BranchPlan::Detach);
    };
    let full = format!("refs/heads/{branch}");
    let foreign = checked_out_in(repo, &full)?.filter(|wt| !own_worktree.is_some_and(|own| same_path(own, wt)));
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

/// Write files and index of `expected` into the worktree at `path`, whose
/// HEAD is already set, then verify. A fresh worktree has no files yet; a
/// reused one (`reuse`) has only what an earlier snapshot holds.
fn populate_and_verify(path: &Path, expected: &Expected, on_branch: bool, reuse: bool) -> Result<()> {
    let repo = Repo::open(path)?;
    let git_dir = repo.git_dir();
    let git = repo.git();
    let tmp_index = git_dir.join("index.codex-handoff.tmp");
    let _ = std::fs::remove_file(&tmp_index);
    let staged = git.with_index(&tmp_index);
    let state = &expected.state;
    if reuse {
        // Make every present file (untracked ones too) an index entry, so
        // read-tree below replaces or removes it like any tracked file.
        snapshot::copy_index(&repo.gix.index_path(), &tmp_index)?;
        staged.run(["add", "--all"])?;
    }

    // git's read-tree -u writes the files (with checkout filters, symlinks
    // and modes as configured) and records their stat data; gix's checkout
    // cannot merge from one tree to another, which reuse of a worktree needs.
    // Parallel checkout (one worker per core) when there are many files.
    staged.run(["-c", "checkout.workers=0", "read-tree", "--reset", "-u", &state.worktree_tree.to_string()])?;

    // Turn the index (= working files) into the snapshot's index: entries that
    // differ get the staged blob without stat data, so git re-checks them.
    let diff = staged.run([
        "diff-tree",
        "-r",
        "-z",
        "--no-renames",
        &state.worktree_tree.to_string(),
        &state.index_tree.to_string(),
    ])?;
    let changes = parse_raw_diff(&diff)?;
    let zero = ObjectId::null(repo.gix.object_hash()).to_string();
    let mut removals = Vec::new();
    let mut updates = Vec::new();
    for change in changes {
        match change.new {
            None => {
                removals.extend_from_slice(format!("0 {zero}\t").as_bytes());
                removals.extend_from_slice(&change.path);
                removals.push(0);
            }
            Some((mode, id)) => {
                updates.extend_from_slice(format!("{mode} {id}\t").as_bytes());
                updates.extend_from_slice(&change.path);
                updates.push(0);
            }
        }
    }
    // Removals first, so a path that is a file in one tree and a directory in
    // the other never collides.
    removals.extend_from_slice(&updates);
    if !removals.is_empty() {
        staged.run_with_input(["update-index", "-z", "--index-info"], Some(&removals))?;
    }
    if tmp_index.exists() {
        std::fs::rename(&tmp_index, git_dir.join("index"))?;
    }
    if !state.intent_to_add.is_empty() {
        add_intent_to_add(&git, &repo.workdir()?, &state.intent_to_add)?;
    }
    verify(&repo, expected, on_branch)
}

/// Mark `paths` intent-to-add. `git add -N` needs the file; an entry whose
/// file was deleted after `add -N` gets a stand-in file for the moment.
fn add_intent_to_add(git: &Git, root: &Path, paths: &[BString]) -> Result<()> {
    let mut list = Vec::new();
    let mut stand_ins = Vec::new();
    for p in paths {
        list.extend_from_slice(p);
        list.push(0);
        let file = inside_worktree(root, p)?;
        if file.symlink_metadata().is_err() {
            // Remember which directories we make, to take them away again.
            let mut created_dirs = Vec::new();
            let mut dir = file.parent();
            while let Some(d) = dir.filter(|d| *d != root && !d.exists()) {
                created_dirs.push(d.to_owned());
                dir = d.parent();
            }
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&file, b"")?;
            stand_ins.push((file, created_dirs));
        }
    }
    let mut cmd = git.command(["add", "--intent-to-add", "--pathspec-from-file=-", "--pathspec-file-nul"]);
    cmd.env("GIT_LITERAL_PATHSPECS", "1");
    let result = crate::git::run_command(&mut cmd, Some(&list));
    for (file, dirs) in stand_ins {
        let _ = std::fs::remove_file(file);
        for d in dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
    result.map(|_| ())
}

/// `root/relative` for a path recorded in a snapshot (which may come from
/// another machine): plain names only, no `.git`, and no symlink or file on
/// the way, so a stand-in written there stays inside the worktree.
fn inside_worktree(root: &Path, relative: &[u8]) -> Result<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    if !is_plain_path(relative) {
        return Err(bad_intent_to_add(relative));
    }
    let mut path = root.to_path_buf();
    let parts: Vec<&[u8]> = relative.split(|b| *b == b'/').collect();
    for (i, part) in parts.iter().enumerate() {
        path.push(std::ffi::OsStr::from_bytes(part));
        let last = i + 1 == parts.len();
        if !last && path.symlink_metadata().is_ok_and(|meta| !meta.is_dir()) {
            return Err(bad_intent_to_add(relative));
        }
    }
    Ok(path)
}

/// A path git could track: plain names joined by `/`, none of them `.`, `..` or `.git`.
fn is_plain_path(path: &[u8]) -> bool {
    path.split(|b| *b == b'/').all(|part| {
        !part.is_empty() && part != b"." && part != b".." && !part.eq_ignore_ascii_case(b".git") && !part.contains(&0)
    })
}

fn bad_intent_to_add(path: &[u8]) -> Error {
    Error::refused(
        "bad_intent_to_add",
        format!("the snapshot marks {:?} intent-to-add, which is not a path inside the worktree", path.as_bstr()),
    )
    .with_help("the snapshot was not made by git-codex-handoff; nothing was changed")
}

/// Recompute the worktree's state and compare it with the snapshot.
pub fn verify(repo: &Repo, expected: &Expected, on_branch: bool) -> Result<()> {
    let actual = snapshot::capture(repo)?;
    let want = &expected.state;
    let mut problems = Vec::new();
    if actual.head != want.head {
        problems.push(format!("HEAD is {:?}, expected {:?}", actual.head, want.head));
    }
    if on_branch && actual.branch != want.branch {
        problems.push(format!("branch is {:?}, expected {:?}", actual.branch, want.branch));
    }
    if actual.index_tree != want.index_tree {
        problems.push(format!("index tree is {}, expected {}", actual.index_tree, want.index_tree));
    }
    if actual.worktree_tree != want.worktree_tree {
        problems.push(format!("working files tree is {}, expected {}", actual.worktree_tree, want.worktree_tree));
    }
    let mut got_ita = actual.intent_to_add.clone();
    let mut want_ita = want.intent_to_add.clone();
    got_ita.sort();
    want_ita.sort();
    if got_ita != want_ita {
        problems.push(format!("{} intent-to-add entries, expected {}", got_ita.len(), want_ita.len()));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::failed(
        "verify_failed",
        format!(
            "the restored worktree {} does not match snapshot {}: {}",
            repo.workdir()?.display(),
            expected.snapshot,
            problems.join("; ")
        ),
    )
    .with_help("the worktree was left as it is for inspection; please report this with the snapshot id"))
}

struct RawChange {
    path: BString,
    /// Mode and id on the new side; `None` when the path is gone there.
    new: Option<(String, ObjectId)>,
}

/// Parse `git diff-tree -r -z` raw output.
fn parse_raw_diff(out: &[u8]) -> Result<Vec<RawChange>> {
    let bad = || Error::failed("bad_diff", "git diff-tree printed something unexpected");
    let mut fields = out.split(|b| *b == 0).filter(|f| !f.is_empty());
    let mut changes = Vec::new();
    while let Some(header) = fields.next() {
        let header = header.to_str().map_err(|_| bad())?;
        let parts: Vec<&str> = header.trim_start_matches(':').split(' ').collect();
        if parts.len() < 5 {
            return Err(bad());
        }
        let path = fields.next().ok_or_else(bad)?.as_bstr().to_owned();
        let status = parts[4];
        let new = if status.starts_with('D') {
            None
        } else {
            Some((parts[1].to_owned(), ObjectId::from_hex(parts[3].as_bytes()).map_err(|_| bad())?))
        };
        changes.push(RawChange { path, new });
    }
    Ok(changes)
}
