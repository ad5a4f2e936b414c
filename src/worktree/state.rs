//! What a worktree's exact state is made of, at the bottom of `worktree`:
//! the captured state and its parts (submodules, Git LFS pointers, sparse
//! settings), the counts a plan shows, and the parsers of what git prints
//! about them. Capture and restore both stand on these and never on each other.

use std::path::PathBuf;

use gix::bstr::{BString, ByteSlice};
use gix::ObjectId;

use crate::error::{Error, Result};

/// The Git state of one worktree at one moment, as object ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorktreeState {
    /// The HEAD commit; `None` on an unborn branch.
    pub head: Option<ObjectId>,
    /// Short branch name HEAD points at; `None` when detached.
    pub branch: Option<String>,
    /// The tree of the index (intent-to-add entries excluded, as git does).
    pub index_tree: ObjectId,
    /// The tree of the working files: tracked and untracked, ignored excluded.
    pub worktree_tree: ObjectId,
    /// Paths added with `git add -N`; a tree cannot tell them apart.
    pub intent_to_add: Vec<BString>,
    /// Changed files whose bytes are not what git's checkout writes for
    /// their blob (line-ending conversion, filters): the bytes as blobs.
    pub exact_bytes: Vec<(BString, ObjectId)>,
    /// Git LFS files whose working copy is the pointer, not the content.
    pub lfs_pointers: Vec<BString>,
    /// The LFS objects the snapshot refers to and its machine has: filled
    /// in for a departure, to say what must travel; derived from the trees,
    /// so never a difference of its own.
    pub lfs_objects: Vec<Pointer>,
    /// The sparse-checkout settings, when the worktree is sparse.
    pub sparse: Option<Sparse>,
    /// Settings that change the bytes checkout writes (`core.autocrlf`, `core.eol`).
    pub settings: Vec<(String, String)>,
    /// Populated submodules, each with its own state, by path.
    pub submodules: Vec<SubmoduleState>,
}

impl WorktreeState {
    /// Sort every list, so two states compare equal whatever order they were read in.
    pub fn normalize(&mut self) {
        self.intent_to_add.sort();
        self.intent_to_add.dedup();
        self.exact_bytes.sort();
        self.lfs_pointers.sort();
        self.lfs_pointers.dedup();
        self.lfs_objects.sort();
        self.lfs_objects.dedup();
        self.settings.sort();
        self.submodules.sort_by(|a, b| a.path.cmp(&b.path));
    }
}

/// The trees a worktree holds exactly: a snapshot's index and working files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trees {
    pub index: ObjectId,
    pub files: ObjectId,
}

/// How far a capture may trust the stat data the index records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// As git does: a file written in the same second as the index is
    /// "racily clean" and is hashed to be sure. For worktrees people work in.
    Exact,
    /// The worktree was just written by this process's restore, which
    /// recorded the stat data of every file it wrote: trust it (files whose
    /// stat data differs are still hashed). Without this, every file a
    /// checkout wrote is racily clean for a second and would be hashed again.
    JustRestored,
}

/// How much of a worktree differs from HEAD, as `git status` counts it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Changes {
    pub staged: usize,
    pub unstaged: usize,
    pub untracked: usize,
    /// Bytes of the changed and untracked files in the working tree.
    pub bytes: u64,
    /// Submodules with changes of their own, nested ones by their full path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub submodules: Vec<SubmoduleChange>,
}

/// What changed in one submodule.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubmoduleChange {
    pub path: String,
    /// Commits on the submodule's HEAD that the superproject's HEAD does not
    /// record (`None` when git cannot count them, e.g. HEAD records an unknown commit).
    pub new_commits: Option<u64>,
    pub staged: usize,
    pub unstaged: usize,
    pub untracked: usize,
    pub bytes: u64,
}

/// A populated submodule's state, with where that state can be found.
#[derive(Debug, Clone, Eq)]
pub struct SubmoduleState {
    /// Relative to the worktree of the repository that holds it.
    pub path: String,
    /// Its name in `.gitmodules`: where its repository lives (`modules/<name>`).
    pub name: String,
    pub state: WorktreeState,
    /// Its snapshot commit, once written or when loaded from a snapshot.
    pub snapshot: Option<ObjectId>,
    /// The repository that holds its objects (the snapshot's, once written or loaded).
    pub git_dir: Option<PathBuf>,
}

impl PartialEq for SubmoduleState {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.name == other.name && self.state == other.state
    }
}

/// Pointer files are small; git-lfs itself never reads more than this.
pub const MAX_POINTER: usize = 1024;

/// One LFS object a pointer names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pointer {
    /// The sha256 of the content, 64 lowercase hex digits.
    pub oid: String,
    pub size: u64,
}

/// The pointer in `data`, if `data` is a Git LFS pointer file.
pub fn parse_pointer(data: &[u8]) -> Option<Pointer> {
    if data.len() > MAX_POINTER {
        return None;
    }
    let text = std::str::from_utf8(data).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "version https://git-lfs.github.com/spec/v1" {
        return None;
    }
    let (mut oid, mut size) = (None, None);
    for line in lines {
        if let Some(hex) = line.strip_prefix("oid sha256:") {
            oid = Some(hex);
        } else if let Some(n) = line.strip_prefix("size ") {
            size = n.parse::<u64>().ok();
        }
    }
    let oid = oid.filter(|h| valid_oid(h))?;
    Some(Pointer { oid: oid.to_owned(), size: size? })
}

pub fn valid_oid(oid: &str) -> bool {
    oid.len() == 64 && oid.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The sparse-checkout settings of a worktree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sparse {
    /// `core.sparseCheckoutCone`.
    pub cone: bool,
    /// `index.sparse`.
    pub sparse_index: bool,
    /// The patterns (`$GIT_DIR/info/sparse-checkout`), as a blob.
    pub patterns: ObjectId,
}

/// The sparse-checkout settings as they travel (the patterns travel as a file beside them).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SparseFlags {
    pub cone: bool,
    pub sparse_index: bool,
}

/// One entry of `git diff-tree -r -z` raw output.
pub(crate) struct RawChange {
    pub path: BString,
    /// Mode and id on the old side; `None` when the path is new.
    pub old: Option<(String, ObjectId)>,
    /// Mode and id on the new side; `None` when the path is gone there.
    pub new: Option<(String, ObjectId)>,
}

/// Parse `git diff-tree -r -z` raw output.
pub(crate) fn parse_raw_diff(out: &[u8]) -> Result<Vec<RawChange>> {
    let bad = || Error::failed("bad_diff", "git diff-tree printed something unexpected");
    let mut fields = out.split(|b| *b == 0).filter(|f| !f.is_empty());
    let mut changes = Vec::new();
    while let Some(header) = fields.next() {
        let header = header.to_str().map_err(|_| bad())?;
        let parts: Vec<&str> = header.trim_start_matches(':').split(' ').collect();
        let [old_mode, new_mode, old_id, new_id, status, ..] = parts.as_slice() else {
            return Err(bad());
        };
        let path = fields.next().ok_or_else(bad)?.as_bstr().to_owned();
        let side = |mode: &str, id: &str| -> Result<Option<(String, ObjectId)>> {
            if mode.chars().all(|c| c == '0') {
                return Ok(None);
            }
            Ok(Some((mode.to_owned(), ObjectId::from_hex(id.as_bytes()).map_err(|_| bad())?)))
        };
        let old = if status.starts_with('A') { None } else { side(old_mode, old_id)? };
        let new = if status.starts_with('D') { None } else { side(new_mode, new_id)? };
        changes.push(RawChange { path, old, new });
    }
    Ok(changes)
}

/// A path git could track in a worktree: plain names joined by `/`, none of
/// them `.`, `..` or `.git`. Paths in a snapshot's records come from another
/// machine and are held to this before anything is written from them.
pub fn is_plain_path(path: &[u8]) -> bool {
    path.split(|b| *b == b'/')
        .all(|part| !part.is_empty() && part != b"." && part != b".." && !is_dot_git(part) && !part.contains(&0))
}

/// `.git` as a case-insensitive file system, or macOS's (which ignores
/// some invisible characters), would read `part`.
pub fn is_dot_git(part: &[u8]) -> bool {
    let ignorable = |c: &char| matches!(*c, '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}');
    let visible: String = String::from_utf8_lossy(part).chars().filter(|c| !ignorable(c)).collect();
    visible.eq_ignore_ascii_case(".git")
}

pub fn not_a_worktree_path(what: &str, path: &[u8]) -> Error {
    Error::refused(
        "bad_snapshot_path",
        format!("the snapshot names {:?} ({what}), which is not a path inside the worktree", path.as_bstr()),
    )
    .with_help("the snapshot was not made by git-codex-handoff; nothing was changed")
}
