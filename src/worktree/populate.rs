//! Writing a snapshot's files and index into a worktree whose HEAD is set:
//! git's checkout of the files, the index turned into the snapshot's, the
//! intent-to-add entries, exact bytes where filters would change them, and
//! the submodules.

use std::path::{Path, PathBuf};

use gix::bstr::BString;
use gix::ObjectId;

use crate::error::{Error, Result};
use crate::git::Git;
use crate::repo::Repo;
use crate::worktree::capture;
use crate::worktree::state::{parse_raw_diff, RawChange, SubmoduleState, WorktreeState};
use crate::worktree::submodules::{in_submodule, module_dir};
use crate::worktree::{big_files, checkout_settings, converted, lfs};

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
    checkout_settings::apply(repo, state.sparse.as_ref(), &state.settings)?;
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
            capture::copy_index(&repo.gix.index_path(), &tmp_index)?;
            set_entries_to(&staged, repo, index, files)?;
        }
        Holding::Unknown => {
            capture::copy_index(&repo.gix.index_path(), &tmp_index)?;
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
    // git-lfs never reaches for a server here (a snapshot's `.lfsconfig` may name any): content comes
    // only for pointers whose objects are in this clone's LFS storage.
    // Big blobs stream from their packs into the files rather than through
    // memory, through small windows of the pack (git maps up to a GiB of a
    // pack at once, which all counts as its memory).
    let threshold = format!("core.bigFileThreshold={}", crate::blob_pack::PACK_FROM);
    let mut read_tree = staged.command([
        "-c",
        "checkout.workers=0",
        "-c",
        &threshold,
        "-c",
        "core.packedGitWindowSize=1m",
        "-c",
        "core.packedGitLimit=32m",
        "read-tree",
        "--reset",
        "-u",
        "-v",
        &state.worktree_tree.to_string(),
    ]);
    read_tree.env("GIT_LFS_SKIP_SMUDGE", "1");
    // `-v`: git counts the files it writes, reported as the checkout's progress.
    crate::git::run_command_counted(&mut read_tree, crate::progress::Step::Checkout)?;
    // Their blobs are known: no later snapshot or check here reads the big files again.
    big_files::remember_checkout(repo, root, &tmp_index);
    if !state.lfs_pointers.is_empty() || !state.lfs_objects.is_empty() {
        lfs::smudge_except(repo, &staged, root, &state.lfs_pointers)?;
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
        capture::trust_stat_data(&tmp_index)?;
        staged.run_with_input(["update-index", "-z", "--index-info"], Some(&removals))?;
    }
    if tmp_index.exists() {
        std::fs::rename(&tmp_index, git_dir.join("index"))?;
    }
    if !state.intent_to_add.is_empty() {
        add_intent_to_add(&git, root, &state.intent_to_add)?;
    }
    converted::write_exact_bytes(repo, root, state)?;
    restore_submodules(repo, root, &state.submodules, pin)
}

/// The entries that differ from tree `from` to tree `to`.
fn tree_changes(git: &Git, from: ObjectId, to: ObjectId) -> Result<Vec<RawChange>> {
    let diff = git.run(["diff-tree", "-r", "-z", "--no-renames", &from.to_string(), &to.to_string()])?;
    parse_raw_diff(&diff)
}

/// `update-index --index-info` input that makes `changes` in an index:
/// removals first, so a path that is a file in one tree and a directory in
/// the other never collides.
fn index_info(repo: &Repo, changes: Vec<RawChange>) -> Vec<u8> {
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
/// another machine): plain names only (`state::is_plain_path`), and
/// no symlink or file on the way, so a stand-in written there stays inside
/// the worktree.
fn inside_worktree(root: &Path, relative: &[u8]) -> Result<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let refused = || crate::worktree::state::not_a_worktree_path("intent-to-add", relative);
    if !crate::worktree::state::is_plain_path(relative) {
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

/// Give the worktree of `parent` (at `root`) each submodule in `subs`: its
/// repository (cloned from the module repository holding its snapshot when
/// the worktree has none), HEAD, files and index, recursively.
fn restore_submodules(parent: &Repo, root: &Path, subs: &[SubmoduleState], pin: &str) -> Result<()> {
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
            let old = crate::objects::ref_target(&repo, pin)?;
            crate::objects::set_ref(&repo, pin, old, Some(snapshot), "codex-handoff: submodule snapshot")?;
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
            let tip = crate::objects::ref_target(&repo, &full)?;
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
    populate(&repo, &dir, state, holding, pin)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    crate::repo::same_path(a, b)
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
