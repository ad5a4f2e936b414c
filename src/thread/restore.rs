//! Writing a snapshot back: files, modes, symlinks, the index (with fresh
//! stat data), HEAD and the submodules, then verifying the result against
//! the snapshot. A new worktree that fails, verification included, is
//! taken away again with the branch it made; a reused one is put back by
//! the arrival that reused it.

use std::path::{Path, PathBuf};

use gix::bstr::{BString, ByteSlice};
use gix::ObjectId;

use crate::error::{Error, Result};
use crate::fault;
use crate::git::Git;
use crate::repo::Repo;
use crate::thread::snapshot::{self, WorktreeState};
use crate::thread::store::{self, Thread};
use crate::thread::submodules::{self, ModuleSource};
use crate::thread::{converted, lfs, submodule_restore, verify, worktree_config, worktree_data};

/// What a snapshot says the worktree must look like.
#[derive(Debug, Clone)]
pub struct Expected {
    pub state: WorktreeState,
    pub snapshot: ObjectId,
    /// The ref that pins the submodules' snapshots in their repositories.
    pub pin: String,
}

impl Expected {
    /// The state thread `thread` records; its submodules' snapshots are read where `modules` says.
    pub fn of(repo: &Repo, thread: &Thread, modules: &ModuleSource) -> Result<Expected> {
        let snapshot = thread.snapshot;
        let worktree_tree = repo.gix.find_commit(snapshot)?.tree_id()?.detach();
        let index_commit = store::parse_hex(&thread.state.index_commit)?;
        let index_tree = repo.gix.find_commit(index_commit)?.tree_id()?.detach();
        let head = thread.state.head.as_deref().map(store::parse_hex).transpose()?;
        let data_commit = store::parse_hex(&thread.state.data_commit)?;
        let extras = worktree_data::read(repo, repo.gix.find_commit(data_commit)?.tree_id()?.detach())?;
        let submodules = submodules::load(repo, worktree_tree, &extras.submodules, modules)?;
        let mut state = WorktreeState {
            head,
            branch: thread.state.branch.clone(),
            index_tree,
            worktree_tree,
            intent_to_add: extras.intent_to_add,
            exact_bytes: extras.exact_bytes,
            lfs_pointers: extras.lfs_pointers,
            lfs_objects: extras.lfs_objects,
            sparse: extras.sparse,
            settings: extras.settings,
            submodules,
        };
        state.normalize();
        Ok(Expected { snapshot, state, pin: store::thread_ref(&thread.state.uuid) })
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
/// `holds`: a snapshot whose state the worktree was just found to hold
/// exactly (under the thread's lock); `None` when that is not known.
pub fn into_existing_worktree(
    repo: &Repo,
    expected: &Expected,
    path: &Path,
    detach: bool,
    holds: Option<ObjectId>,
) -> Result<Restored> {
    let state = &expected.state;
    let plan = branch_plan(repo, state, detach, Some(path))?;
    let worktree = Repo::open(path)?;
    let holding = match holds {
        Some(snapshot) => {
            let note = store::read_note(repo, snapshot)?;
            let index = repo.gix.find_commit(store::parse_hex(&note.index_commit)?)?.tree_id()?.detach();
            Holding::Trees { index, files: repo.gix.find_commit(snapshot)?.tree_id()?.detach() }
        }
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
    let ours = crate::thread::gitlocks::admin_dir(path).is_some_and(|admin| admin.starts_with(&records));
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

/// What a worktree holds before a restore writes into it.
pub(crate) enum Holding {
    /// Nothing yet: a new worktree.
    Nothing,
    /// Exactly a snapshot's index (`index`) and working files (`files`).
    Trees { index: ObjectId, files: ObjectId },
    /// Only what an earlier snapshot holds, or what an interrupted restore left.
    Unknown,
}

/// Write the files and index of `state` into the worktree of `repo` (at
/// `root`), whose HEAD is already set, then its submodules, over what it
/// holds (`holding`).
pub(crate) fn populate(repo: &Repo, root: &Path, state: &WorktreeState, holding: Holding, pin: &str) -> Result<()> {
    let git_dir = repo.git_dir();
    let git = repo.git();
    // Sparse patterns and line-ending settings decide what checkout writes.
    worktree_config::apply(repo, state.sparse.as_ref(), &state.settings)?;
    let tmp_index = git_dir.join("index.codex-handoff.tmp");
    let _ = std::fs::remove_file(&tmp_index);
    let staged = git.with_index(&tmp_index);
    // Make every present file (untracked ones too) an index entry, so
    // read-tree below replaces or removes it like any tracked file.
    match holding {
        Holding::Nothing => {}
        Holding::Trees { index, files } => {
            // The files differ from the index only where the two trees do:
            // those entries take the files' blobs (no walk of the worktree).
            snapshot::copy_index(&repo.gix.index_path(), &tmp_index)?;
            set_entries_to(&staged, repo, index, files)?;
        }
        Holding::Unknown => {
            snapshot::copy_index(&repo.gix.index_path(), &tmp_index)?;
            staged.run(["add", "--all"])?;
        }
    }

    // git's read-tree -u writes the files (with checkout filters, symlinks
    // and modes as configured, sparse patterns applied) and records their
    // stat data; gix's checkout cannot merge from one tree to another, which
    // reuse of a worktree needs. Parallel checkout (one worker per core) when
    // there are many files. LFS files that were pointers at the source stay
    // pointers: git-lfs writes every file as its pointer, then the others get
    // their content (from objects that are here, never from the network).
    let mut read_tree =
        staged.command(["-c", "checkout.workers=0", "read-tree", "--reset", "-u", &state.worktree_tree.to_string()]);
    if !state.lfs_pointers.is_empty() {
        read_tree.env("GIT_LFS_SKIP_SMUDGE", "1");
    }
    crate::git::run_command(&mut read_tree, None)?;
    if !state.lfs_pointers.is_empty() {
        lfs::smudge_except(&staged, root, &state.lfs_pointers)?;
    }

    // Turn the index (= working files) into the snapshot's index: entries that
    // differ get the staged blob without stat data, so git re-checks them.
    let changes = tree_changes(&staged, state.worktree_tree, state.index_tree)?;
    if state.sparse.is_some() {
        // Changed and untracked files are in the worktree even outside the sparse patterns.
        let present: Vec<&BString> = changes
            .iter()
            .filter(|c| c.old.as_ref().is_some_and(|(mode, _)| mode != "160000"))
            .map(|c| &c.path)
            .collect();
        materialize(&staged, &present)?;
    }
    let removals = index_info(repo, changes);
    if !removals.is_empty() {
        // read-tree recorded the stat data of every file it wrote; without
        // this, update-index would hash each of them again before writing
        // (they are all racily clean for a second).
        snapshot::trust_stat_data(&tmp_index)?;
        staged.run_with_input(["update-index", "-z", "--index-info"], Some(&removals))?;
    }
    if tmp_index.exists() {
        std::fs::rename(&tmp_index, git_dir.join("index"))?;
    }
    if !state.intent_to_add.is_empty() {
        add_intent_to_add(&git, root, &state.intent_to_add)?;
    }
    converted::write_exact_bytes(repo, root, state)?;
    submodule_restore::restore(repo, root, &state.submodules, pin)
}

/// The entries that differ from tree `from` to tree `to`.
fn tree_changes(git: &Git, from: ObjectId, to: ObjectId) -> Result<Vec<converted::RawChange>> {
    let diff = git.run(["diff-tree", "-r", "-z", "--no-renames", &from.to_string(), &to.to_string()])?;
    converted::parse_raw_diff(&diff)
}

/// `update-index --index-info` input that makes `changes` in an index:
/// removals first, so a path that is a file in one tree and a directory in
/// the other never collides.
fn index_info(repo: &Repo, changes: Vec<converted::RawChange>) -> Vec<u8> {
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
    removals.extend_from_slice(&updates);
    removals
}

/// In the index `staged` uses (which holds tree `from`), set the entries
/// that differ in tree `to` to what `to` holds.
fn set_entries_to(staged: &Git, repo: &Repo, from: ObjectId, to: ObjectId) -> Result<()> {
    let info = index_info(repo, tree_changes(staged, from, to)?);
    if !info.is_empty() {
        staged.run_with_input(["update-index", "-z", "--index-info"], Some(&info))?;
    }
    Ok(())
}

/// Clear the skip-worktree bit of `paths` and write their files.
fn materialize(staged: &Git, paths: &[&BString]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let mut list = Vec::new();
    for path in paths {
        list.extend_from_slice(path);
        list.push(0);
    }
    staged.run_with_input(["update-index", "-z", "--no-skip-worktree", "--stdin"], Some(&list))?;
    staged.run_with_input(["checkout-index", "-f", "-u", "-z", "--stdin"], Some(&list))?;
    Ok(())
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
/// another machine): plain names only (`worktree_data::is_plain_path`), and
/// no symlink or file on the way, so a stand-in written there stays inside
/// the worktree.
fn inside_worktree(root: &Path, relative: &[u8]) -> Result<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let refused = || worktree_data::not_a_worktree_path("intent-to-add", relative);
    if !worktree_data::is_plain_path(relative) {
        return Err(refused());
    }
    let mut path = root.to_path_buf();
    let parts: Vec<&[u8]> = relative.split(|b| *b == b'/').collect();
    for (i, part) in parts.iter().enumerate() {
        path.push(std::ffi::OsStr::from_bytes(part));
        let last = i + 1 == parts.len();
        if !last && path.symlink_metadata().is_ok_and(|meta| !meta.is_dir()) {
            return Err(refused());
        }
    }
    Ok(path)
}
