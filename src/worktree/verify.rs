//! Checking a worktree against the state a snapshot records, and saying
//! what differs by path (submodules included), not only by tree id.

use gix::bstr::{BString, ByteSlice};
use gix::ObjectId;

use crate::error::{Error, Result};
use crate::repo::Repo;
use crate::worktree::capture;
use crate::worktree::state::{Scan, WorktreeState};

/// What a snapshot says the worktree must look like.
#[derive(Debug, Clone)]
pub struct Expected {
    pub state: WorktreeState,
    pub snapshot: ObjectId,
    /// The ref that pins the submodules' snapshots in their repositories.
    pub pin: String,
}

/// How many paths of one kind a message names.
const SHOWN: usize = 10;

/// Recompute the state of a worktree this process just restored and compare
/// it with the snapshot. The stat data the restore's checkout recorded is
/// trusted (every file it wrote is otherwise racily clean and hashed again);
/// a file changed since, by size or time, is still found.
pub fn verify(repo: &Repo, expected: &Expected, on_branch: bool) -> Result<()> {
    crate::progress::report(crate::progress::Step::Verify, 0, 1);
    let problems = differences_scanned(repo, &expected.state, on_branch, Scan::JustRestored)?;
    crate::progress::report(crate::progress::Step::Verify, 1, 1);
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
    .with_help("please report this with the snapshot id"))
}

/// What differs between the worktree `repo` is opened at and `want`
/// (empty when nothing does). The branch counts only with `on_branch`.
pub fn differences(repo: &Repo, want: &WorktreeState, on_branch: bool) -> Result<Vec<String>> {
    differences_scanned(repo, want, on_branch, Scan::Exact)
}

fn differences_scanned(repo: &Repo, want: &WorktreeState, on_branch: bool, scan: Scan) -> Result<Vec<String>> {
    let (actual, _) = capture::capture_scanned(repo, scan)?;
    let mut problems = Vec::new();
    compare(repo, &actual, want, on_branch, "", &mut problems)?;
    Ok(problems)
}

fn compare(
    repo: &Repo,
    actual: &WorktreeState,
    want: &WorktreeState,
    on_branch: bool,
    prefix: &str,
    problems: &mut Vec<String>,
) -> Result<()> {
    let at = |what: &str| {
        if prefix.is_empty() {
            what.to_owned()
        } else {
            format!("{what} of submodule {}", prefix.trim_end_matches('/'))
        }
    };
    if actual.head != want.head {
        problems.push(format!("{} is {}, expected {}", at("HEAD"), show(actual.head), show(want.head)));
    }
    if on_branch && actual.branch != want.branch {
        problems.push(format!("{} is {:?}, expected {:?}", at("the branch"), actual.branch, want.branch));
    }
    if actual.index_tree != want.index_tree {
        let paths = changed_paths(repo, want.index_tree, actual.index_tree, prefix)?;
        problems.push(format!("{} differs at {paths}", at("the index")));
    }
    if actual.worktree_tree != want.worktree_tree {
        let paths = changed_paths(repo, want.worktree_tree, actual.worktree_tree, prefix)?;
        problems.push(format!("{} differ at {paths}", at("the working files")));
    }
    let lists = [
        ("intent-to-add entries", &actual.intent_to_add, &want.intent_to_add),
        ("LFS files left as pointers", &actual.lfs_pointers, &want.lfs_pointers),
    ];
    for (what, got, expected) in lists {
        let extra: Vec<BString> = got.iter().filter(|p| !expected.contains(p)).cloned().collect();
        let missing: Vec<BString> = expected.iter().filter(|p| !got.contains(p)).cloned().collect();
        if !extra.is_empty() {
            problems.push(format!("{} include {}, which the snapshot does not", at(what), list(&extra, prefix)));
        }
        if !missing.is_empty() {
            problems.push(format!("{} lack {}", at(what), list(&missing, prefix)));
        }
    }
    if actual.exact_bytes != want.exact_bytes {
        let got: Vec<BString> = actual.exact_bytes.iter().map(|(p, _)| p.clone()).collect();
        let expected: Vec<BString> = want.exact_bytes.iter().map(|(p, _)| p.clone()).collect();
        let mut paths = symmetric(&got, &expected);
        paths.extend(
            actual
                .exact_bytes
                .iter()
                .filter(|e| want.exact_bytes.iter().any(|w| w.0 == e.0 && w.1 != e.1))
                .map(|e| e.0.clone()),
        );
        problems.push(format!("{} differ at {}", at("file bytes"), list(&paths, prefix)));
    }
    if actual.sparse != want.sparse {
        problems.push(format!("{} differ", at("the sparse-checkout settings")));
    }
    if actual.settings != want.settings {
        problems.push(format!(
            "{} are {:?}, expected {:?}",
            at("the line-ending settings"),
            actual.settings,
            want.settings
        ));
    }
    let root = repo.workdir()?;
    for sub in &want.submodules {
        match actual.submodules.iter().find(|a| a.path == sub.path) {
            None => problems.push(format!("submodule {prefix}{} is not checked out", sub.path)),
            Some(found) if found.name != sub.name => {
                problems.push(format!("submodule {prefix}{} is {:?}, expected {:?}", sub.path, found.name, sub.name))
            }
            Some(found) => {
                let sub_repo = Repo::open(&root.join(&sub.path))?;
                compare(&sub_repo, &found.state, &sub.state, true, &format!("{prefix}{}/", sub.path), problems)?;
            }
        }
    }
    for extra in actual.submodules.iter().filter(|a| !want.submodules.iter().any(|w| w.path == a.path)) {
        problems.push(format!("submodule {prefix}{} is checked out, but the snapshot has it empty", extra.path));
    }
    Ok(())
}

fn show(id: Option<ObjectId>) -> String {
    id.map(|id| id.to_string()).unwrap_or_else(|| "unborn".into())
}

/// The paths where two trees differ, as a short list.
fn changed_paths(repo: &Repo, want: ObjectId, got: ObjectId, prefix: &str) -> Result<String> {
    let out =
        repo.git().run(["diff-tree", "-r", "-z", "--name-only", "--no-renames", &want.to_string(), &got.to_string()]);
    let paths: Vec<BString> = match out {
        Ok(out) => out.split(|b| *b == 0).filter(|p| !p.is_empty()).map(|p| p.as_bstr().to_owned()).collect(),
        Err(_) => Vec::new(),
    };
    if paths.is_empty() {
        return Ok(format!("(tree {got}, expected {want})"));
    }
    Ok(list(&paths, prefix))
}

fn symmetric(a: &[BString], b: &[BString]) -> Vec<BString> {
    let mut out: Vec<BString> =
        a.iter().filter(|p| !b.contains(p)).chain(b.iter().filter(|p| !a.contains(p))).cloned().collect();
    out.sort();
    out
}

fn list(paths: &[BString], prefix: &str) -> String {
    let mut shown: Vec<String> = paths.iter().take(SHOWN).map(|p| format!("{prefix}{}", p.to_str_lossy())).collect();
    if paths.len() > SHOWN {
        shown.push(format!("and {} more", paths.len() - SHOWN));
    }
    shown.join(", ")
}
