//! Capturing a worktree's Git state (HEAD, index, working files) as trees,
//! without changing the working tree, the index file or any ref.

use std::path::Path;

use gix::bstr::{BString, ByteSlice};
use gix::ObjectId;

use crate::error::{Context, Error, Result};
use crate::objects::parse_id;
use crate::repo::Repo;
use crate::worktree::state::{Changes, Scan, SubmoduleChange, SubmoduleState, WorktreeState};
use crate::worktree::{
    big_files, checkout_settings, clean_check, converted, index_tree, lfs, quick_capture, submodules,
};

/// Refuse states a snapshot cannot carry exactly: an operation in progress
/// or unmerged index entries.
pub fn check_capturable(repo: &Repo, index: &gix::index::File) -> Result<()> {
    use gix::state::InProgress;
    if let Some(state) = repo.gix.state() {
        let (what, verb) = match state {
            InProgress::Merge => ("a merge", "merge"),
            InProgress::Rebase | InProgress::RebaseInteractive | InProgress::ApplyMailboxRebase => {
                ("a rebase", "rebase")
            }
            InProgress::CherryPick | InProgress::CherryPickSequence => ("a cherry-pick", "cherry-pick"),
            InProgress::Revert | InProgress::RevertSequence => ("a revert", "revert"),
            InProgress::Bisect => ("a bisect", "bisect"),
            InProgress::ApplyMailbox => ("a `git am`", "am"),
        };
        let next = if verb == "bisect" {
            "finish it with `git bisect reset`".to_owned()
        } else {
            format!("finish it with `git {verb} --continue` or abandon it with `git {verb} --abort`")
        };
        return Err(Error::refused("operation_in_progress", format!("{what} is in progress in this worktree"))
            .with_help(format!("{next}, then try again")));
    }
    let unmerged: Vec<String> = index
        .entries()
        .iter()
        .filter(|e| e.stage_raw() != 0)
        .map(|e| e.path(index).to_str_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !unmerged.is_empty() {
        let shown: Vec<&str> = unmerged.iter().take(5).map(String::as_str).collect();
        let more = if unmerged.len() > 5 { format!(" and {} more", unmerged.len() - 5) } else { String::new() };
        return Err(Error::refused(
            "unmerged_entries",
            format!("the index has unmerged entries: {}{more}", shown.join(", ")),
        )
        .with_help("resolve the conflicts and `git add` the files (or `git checkout -m` them), then try again"));
    }
    Ok(())
}

/// Capture the state of the worktree `repo` is opened at.
///
/// One `git status` finds what differs from the index (it applies
/// `.gitignore`, clean filters and racy-timestamp rules exactly as git does;
/// gix has no `add`). It runs while this process reads the index. A clean
/// worktree is then the index's tree; otherwise only the paths git status
/// named are updated, in a copy of the index. The real index is never written.
pub fn capture(repo: &Repo) -> Result<WorktreeState> {
    capture_counted(repo).map(|(state, _)| state)
}

/// [`capture`], with the counts a handoff plan shows, from the same `git status`.
pub fn capture_counted(repo: &Repo) -> Result<(WorktreeState, Changes)> {
    capture_scanned(repo, Scan::Exact)
}

/// [`capture_counted`], trusting stat data as `scan` says.
pub fn capture_scanned(repo: &Repo, scan: Scan) -> Result<(WorktreeState, Changes)> {
    let just_restored = scan == Scan::JustRestored;
    // The real index, whose shared index (with `core.splitIndex`) is beside it; a copy has the same entries.
    let index = read_index(repo, &repo.gix.index_path())?;
    check_capturable(repo, &index)?;
    let root = repo.workdir()?;
    // A worktree is most often its index with a few files changed: that is
    // answered here (`clean_check`, `quick_capture`), without git status.
    let quick = match clean_check::scan_worktree(repo, &index, just_restored)? {
        Some(found) => quick_capture::worktree(repo, &index, &found, &root, just_restored)?,
        None => None,
    };
    // Else git status; a just-restored worktree is read through a private
    // copy of its index whose time says no entry is racy.
    let trusted = match (&quick, scan) {
        (None, Scan::JustRestored) => {
            let (dir, git) = temp_index(repo, &repo.gix.index_path())?;
            trust_stat_data(&dir.path().join("index"))?;
            Some((dir, git))
        }
        _ => None,
    };
    let (index_path, git) = match &trusted {
        Some((dir, git)) => (dir.path().join("index"), git.clone()),
        None => (repo.gix.index_path(), repo.git()),
    };
    let status = if quick.is_none() { Some(spawn_status(&git)?) } else { None };
    let intent_to_add: Vec<BString> = index
        .entries()
        .iter()
        .filter(|e| e.flags.contains(gix::index::entry::Flags::INTENT_TO_ADD))
        .map(|e| e.path(&index).to_owned())
        .collect();
    let (head, branch) = head_of(repo)?;
    let parsed = match (status, &quick) {
        (Some(status), _) => parse_status(&status.finish()?, &root),
        (None, quick) => Parsed {
            paths: quick.iter().flat_map(|q| q.tracked.iter().chain(&q.untracked)).cloned().collect(),
            changes: Changes::default(),
            submodules: Vec::new(),
        },
    };
    let changed = parsed.paths;
    let mut changes = parsed.changes;

    let mut tmp = None;
    // Built here from the index and its cached trees; git's write-tree only for what that leaves.
    let index_tree = match index_tree::write(repo, &index)? {
        Some(id) => id,
        None => {
            let (dir, git) = temp_index(repo, &index_path)?;
            let id = parse_id(&git.text(["write-tree"])?)?;
            tmp = Some((dir, git));
            id
        }
    };
    if let Some(quick) = &quick {
        // No git status counted: the index against HEAD, and what the scan found.
        changes = quick_capture::counts(repo, head, index_tree, &root, quick)?;
    }
    let may_convert = converted::may_convert(repo, &index, &changed);
    let worktree_tree = if changed.is_empty() {
        index_tree
    } else if let Some(tree) = quick.as_ref().and_then(|q| q.tree) {
        tree
    } else {
        let git = match &tmp {
            Some((dir, git)) => {
                // write-tree rewrote the copy just now, which makes every
                // entry of a just-restored worktree racily clean again.
                if scan == Scan::JustRestored {
                    trust_stat_data(&dir.path().join("index"))?;
                }
                git.clone()
            }
            None => {
                let (dir, git) = temp_index(repo, &index_path)?;
                tmp = Some((dir, git.clone()));
                git
            }
        };
        let (mut rest, big) = big_files::split(repo, &root, &changed, may_convert);
        // The big files' blobs go into a pack here: git is given their entries, and hashes none of them again.
        let info = if big.is_empty() { None } else { big_files::index_info(repo, &root, &big, just_restored)? };
        if info.is_none() {
            rest.extend(big);
        }
        let mut list = Vec::new();
        for path in &rest {
            list.extend_from_slice(path);
            list.push(0);
        }
        // Only the named paths: update-index neither walks the tree nor matches pathspecs.
        if !list.is_empty() {
            git.run_with_input(["update-index", "-z", "--add", "--remove", "--stdin"], Some(&list))?;
        }
        if let Some(info) = info {
            git.run_with_input(["update-index", "-z", "--add", "--replace", "--index-info"], Some(&info))?;
        }
        if let (Scan::JustRestored, Some((dir, _))) = (scan, &tmp) {
            trust_stat_data(&dir.path().join("index"))?;
        }
        parse_id(&git.text(["write-tree"])?)?
    };
    // The index that holds the working files tree: a copy, or the one read when nothing changed.
    let staged = tmp.as_ref().map(|(_, git)| git.clone()).unwrap_or_else(|| git.clone());
    let files = converted::check(repo, head, worktree_tree, &staged, may_convert)?;
    drop(tmp);
    drop(trusted);
    let mut lfs_pointers = files.pointers;
    if lfs::in_use(repo) {
        lfs_pointers.extend(lfs::unsmudged_tracked(repo)?);
    }
    let (submodules, submodule_changes) = capture_submodules(repo, &index, &parsed.submodules, scan)?;
    changes.submodules = submodule_changes;
    let mut state = WorktreeState {
        head,
        branch,
        index_tree,
        worktree_tree,
        intent_to_add,
        exact_bytes: files.exact_bytes,
        lfs_pointers,
        lfs_objects: Vec::new(),
        sparse: checkout_settings::capture_sparse(repo)?,
        settings: checkout_settings::carried_settings(repo),
        submodules,
    };
    state.normalize();
    Ok((state, changes))
}

/// The index, without verifying its checksum (a damaged index makes git's
/// scan fail anyway).
fn read_index(repo: &Repo, path: &Path) -> Result<gix::index::File> {
    let options = gix::index::decode::Options::default();
    match gix::index::File::at(path, repo.gix.object_hash(), true, options) {
        Ok(index) => Ok(index),
        Err(_) if !path.exists() => {
            Ok(gix::index::File::from_state(gix::index::State::new(repo.gix.object_hash()), path.to_owned()))
        }
        Err(e) => {
            Err(Error::failed("index_unreadable", format!("could not read the index {}", path.display()))
                .with_source(e))
        }
    }
}

pub fn head_of(repo: &Repo) -> Result<(Option<ObjectId>, Option<String>)> {
    let head = repo.gix.head()?;
    // Branch names travel as JSON text: one that is not UTF-8 would arrive renamed.
    let branch = match head.referent_name().map(|name| name.shorten()) {
        Some(name) => Some(name.to_str().map(str::to_owned).map_err(|_| {
            Error::refused(
                "branch_not_utf8",
                format!(
                    "the branch name {:?} is not valid UTF-8, so it cannot travel with the thread",
                    name.to_str_lossy()
                ),
            )
            .with_help("rename the branch (`git branch -m <new-name>`), then try again")
        })?),
        None => None,
    };
    let id = head.id().map(|id| id.detach());
    Ok((id, branch))
}

/// `git status` running in the background; its paths that differ in the
/// working tree (modified, deleted, type-changed, untracked, intent-to-add).
struct Status {
    child: std::process::Child,
    reader: std::thread::JoinHandle<std::io::Result<Vec<u8>>>,
}

fn spawn_status(git: &crate::git::Git) -> Result<Status> {
    use std::io::Read;
    let mut cmd = git.command([
        "status",
        "--porcelain=v2",
        "-z",
        "--untracked-files=all",
        "--no-renames",
        "--ignore-submodules=none",
    ]);
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        Error::failed("git_missing", "could not run git status").with_help("install git").with_source(e)
    })?;
    let mut stdout = child.stdout.take().expect("stdout was piped");
    // Read on a thread so a long listing cannot fill the pipe and stall git.
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).map(|_| out)
    });
    Ok(Status { child, reader })
}

impl Status {
    /// git status's output (`--porcelain=v2 -z`).
    fn finish(self) -> Result<Vec<u8>> {
        let Status { child, reader } = self;
        let out = reader.join().map_err(|_| Error::failed("git_status", "reading git status failed"))??;
        let output = child.wait_with_output()?;
        if !output.status.success() {
            return Err(Error::failed(
                "git_failed",
                format!("`git status` failed: {}", String::from_utf8_lossy(&output.stderr).trim()),
            ));
        }
        Ok(out)
    }
}

/// What one `git status --porcelain=v2 -z` says.
pub(crate) struct Parsed {
    /// Paths whose working-tree side differs from the index (modified,
    /// deleted, untracked, intent-to-add, submodules that moved).
    pub paths: Vec<BString>,
    /// The counts of a plan (submodules not yet filled in).
    pub changes: Changes,
    /// Submodules with any change: path and the commit HEAD records for it.
    pub submodules: Vec<(BString, Option<ObjectId>)>,
}

/// From `git status --porcelain=v2 -z`: the paths whose working-tree side
/// differs from the index, and the counts of a plan. A submodule counts as
/// a submodule change, not as a directory's bytes.
pub(crate) fn parse_status(out: &[u8], root: &Path) -> Parsed {
    use std::os::unix::ffi::OsStrExt;
    let size = |path: &[u8]| -> u64 {
        std::fs::symlink_metadata(root.join(std::ffi::OsStr::from_bytes(path))).map(|m| m.len()).unwrap_or(0)
    };
    let mut parsed = Parsed { paths: Vec::new(), changes: Changes::default(), submodules: Vec::new() };
    for record in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        match record.first() {
            // Ordinary entry: `1 XY sub mH mI mW hH hI path`; X is the index, Y the working tree.
            Some(b'1') => {
                let fields: Vec<&[u8]> = record.splitn(9, |b| *b == b' ').collect();
                let (Some(xy), Some(sub), Some(path)) = (fields.get(1), fields.get(2), fields.get(8)) else { continue };
                if sub.first() == Some(&b'S') {
                    let head = fields.get(6).and_then(|h| ObjectId::from_hex(h).ok()).filter(|h| !h.is_null());
                    parsed.submodules.push((path.as_bstr().to_owned(), head));
                    if xy.get(1) != Some(&b'.') {
                        parsed.paths.push(path.as_bstr().to_owned());
                    }
                    continue;
                }
                if xy.first() != Some(&b'.') {
                    parsed.changes.staged += 1;
                }
                if xy.get(1) != Some(&b'.') {
                    parsed.changes.unstaged += 1;
                    parsed.paths.push(path.as_bstr().to_owned());
                }
                parsed.changes.bytes += size(path);
            }
            Some(b'?') if record.len() > 2 => {
                parsed.changes.untracked += 1;
                parsed.changes.bytes += size(&record[2..]);
                parsed.paths.push(record[2..].as_bstr().to_owned());
            }
            _ => {}
        }
    }
    parsed
}

/// A private copy of the index and a git bound to it.
fn temp_index(repo: &Repo, index_path: &Path) -> Result<(tempfile::TempDir, crate::git::Git)> {
    let dir = tempfile::Builder::new()
        .prefix("snapshot-")
        .tempdir_in(repo.private_dir()?)
        .context("tempdir", || "could not create a temporary directory".into())?;
    let tmp_index = dir.path().join("index");
    copy_index(index_path, &tmp_index)?;
    let git = repo.git().with_index(&tmp_index);
    Ok((dir, git))
}

/// Date the index file `index` a second ahead, so that git trusts the stat
/// data of every entry written before now (none is racily clean). Only for
/// an index whose entries' stat data was recorded by the checkout that
/// wrote their files, in a worktree no one else writes to meanwhile.
pub fn trust_stat_data(index: &Path) -> Result<()> {
    let ahead = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
    match std::fs::OpenOptions::new().write(true).open(index) {
        Ok(file) => Ok(file.set_modified(ahead)?),
        // No index yet: nothing to trust.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Copy an index file keeping its modification time, so git's racy-timestamp
/// check treats the copy exactly like the original.
pub fn copy_index(from: &Path, to: &Path) -> Result<()> {
    match std::fs::metadata(from) {
        Ok(meta) => {
            std::fs::copy(from, to)?;
            if let Ok(modified) = meta.modified() {
                let file = std::fs::OpenOptions::new().write(true).open(to)?;
                file.set_modified(modified)?;
            }
            Ok(())
        }
        // No index yet (a fresh repository): git treats that as empty.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub fn count_changes(repo: &Repo) -> Result<Changes> {
    let out = repo.git().run([
        "status",
        "--porcelain=v2",
        "-z",
        "--untracked-files=all",
        "--no-renames",
        "--ignore-submodules=none",
    ])?;
    let parsed = parse_status(&out, &repo.workdir()?);
    let mut changes = parsed.changes;
    changes.submodules = count_submodules(repo, &parsed.submodules)?;
    Ok(changes)
}

/// Capture every populated submodule (recursively), with the plan's counts.
fn capture_submodules(
    repo: &Repo,
    index: &gix::index::File,
    changed: &[(BString, Option<ObjectId>)],
    scan: Scan,
) -> Result<(Vec<SubmoduleState>, Vec<SubmoduleChange>)> {
    let mut states = Vec::new();
    let mut changes = Vec::new();
    for sub in submodules::populated(repo, index)? {
        let (state, counts) = capture_scanned(&sub.repo, scan).map_err(|e| submodules::in_submodule(&sub.path, e))?;
        if let Some((_, recorded)) = changed.iter().find(|(p, _)| p.as_bytes() == sub.path.as_bytes()) {
            changes.extend(change_of(&sub.repo, &sub.path, *recorded, state.head, counts));
        }
        states.push(SubmoduleState {
            path: sub.path,
            name: sub.name,
            state,
            snapshot: None,
            git_dir: Some(sub.repo.git_dir()),
        });
    }
    Ok((states, changes))
}

/// The plan's counts for the submodules `git status` named.
fn count_submodules(repo: &Repo, changed: &[(BString, Option<ObjectId>)]) -> Result<Vec<SubmoduleChange>> {
    let root = repo.workdir()?;
    let mut changes = Vec::new();
    for (path, recorded) in changed {
        let dir = root.join(&*path.to_os_str_lossy());
        if !dir.join(".git").exists() {
            continue;
        }
        let path = path.to_str_lossy().into_owned();
        let sub = Repo::open(&dir)?;
        let counts = count_changes(&sub).map_err(|e| submodules::in_submodule(&path, e))?;
        let (head, _) = head_of(&sub)?;
        changes.extend(change_of(&sub, &path, *recorded, head, counts));
    }
    Ok(changes)
}

fn change_of(
    sub: &Repo,
    path: &str,
    recorded: Option<ObjectId>,
    head: Option<ObjectId>,
    counts: Changes,
) -> Vec<SubmoduleChange> {
    let new_commits = match (recorded, head) {
        (Some(recorded), Some(head)) if recorded == head => Some(0),
        (Some(recorded), Some(head)) => sub
            .git()
            .text(["rev-list", "--count", &head.to_string(), "--not", &recorded.to_string()])
            .ok()
            .and_then(|n| n.parse().ok()),
        _ => None,
    };
    let mut out = vec![SubmoduleChange {
        path: path.to_owned(),
        new_commits,
        staged: counts.staged,
        unstaged: counts.unstaged,
        untracked: counts.untracked,
        bytes: counts.bytes,
    }];
    for mut nested in counts.submodules {
        nested.path = format!("{path}/{}", nested.path);
        out.push(nested);
    }
    out
}
