//! What a snapshot records beside its trees, as files of its data tree:
//! intent-to-add paths, the exact bytes of converted files, Git LFS files
//! that are pointers and the LFS objects the snapshot needs, the
//! sparse-checkout patterns, carried settings, and the submodules, each
//! with a snapshot commit of its own in its own repository.
//!
//! A submodule's snapshot S has the parents HEAD (if any), I (tree = its
//! index) and D (tree = these files; parent: the submodule snapshot pinned
//! before), as the top snapshot has HEAD, I and the thread-data commit T.

use std::collections::BTreeMap;

use gix::bstr::{BString, ByteSlice};
use gix::object::tree::EntryKind;
use gix::ObjectId;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::repo::Repo;
use crate::worktree::state::{
    is_plain_path, not_a_worktree_path, Pointer, Sparse, SparseFlags, SubmoduleState, WorktreeState,
};
use crate::worktree::submodules::{
    check_name, check_path, check_url, in_submodule, missing_module, module_dir, ModuleSource, SubmoduleRecord,
};
use crate::worktree::{checkout_settings, lfs};

pub const INTENT_TO_ADD_FILE: &str = "intent-to-add";
pub const EXACT_BYTES_DIR: &str = "exact-bytes";
pub const LFS_POINTERS_FILE: &str = "lfs-pointers";
pub const LFS_OBJECTS_FILE: &str = "lfs-objects";
pub const SPARSE_FILE: &str = "sparse-checkout";
pub const WORKTREE_FILE: &str = "worktree.json";

/// No snapshot holds more entries than this in one list: what arrives is hostile.
const MAX_ENTRIES: usize = 10_000_000;

#[derive(Debug, Default, Serialize, Deserialize)]
struct WorktreeJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sparse: Option<SparseFlags>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    settings: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    submodules: Vec<SubmoduleRecord>,
}

/// Add what `state` records beside its trees to the data tree being edited.
/// Submodule snapshots are written (and pinned under `pin`) first.
pub fn write(repo: &Repo, tree: &mut gix::object::tree::Editor<'_>, state: &WorktreeState, pin: &str) -> Result<()> {
    if !state.intent_to_add.is_empty() {
        tree.upsert(INTENT_TO_ADD_FILE, EntryKind::Blob, path_list(repo, &state.intent_to_add)?)?;
    }
    for (path, blob) in &state.exact_bytes {
        let mut full = BString::from(format!("{EXACT_BYTES_DIR}/"));
        full.extend_from_slice(path);
        tree.upsert(&full, EntryKind::Blob, *blob)?;
    }
    if !state.lfs_pointers.is_empty() {
        tree.upsert(LFS_POINTERS_FILE, EntryKind::Blob, path_list(repo, &state.lfs_pointers)?)?;
    }
    if !state.lfs_objects.is_empty() {
        let blob = repo.gix.write_blob(lfs::encode_list(&state.lfs_objects))?.detach();
        tree.upsert(LFS_OBJECTS_FILE, EntryKind::Blob, blob)?;
    }
    let mut json = WorktreeJson::default();
    if let Some(sparse) = &state.sparse {
        tree.upsert(SPARSE_FILE, EntryKind::Blob, sparse.patterns)?;
        json.sparse = Some(SparseFlags { cone: sparse.cone, sparse_index: sparse.sparse_index });
    }
    json.settings = state.settings.iter().cloned().collect();
    let mut subs = state.submodules.clone();
    json.submodules = write_snapshots(&mut subs, pin)?;
    if json.sparse.is_some() || !json.settings.is_empty() || !json.submodules.is_empty() {
        let text = serde_json::to_vec_pretty(&json)
            .map_err(|e| Error::failed("json", "could not encode JSON").with_source(e))?;
        tree.upsert(WORKTREE_FILE, EntryKind::Blob, repo.gix.write_blob(text)?.detach())?;
    }
    Ok(())
}

fn path_list(repo: &Repo, paths: &[BString]) -> Result<ObjectId> {
    let mut list = Vec::new();
    for path in paths {
        list.extend_from_slice(path);
        list.push(0);
    }
    Ok(repo.gix.write_blob(&list)?.detach())
}

/// What a data tree records beside the snapshot's trees.
#[derive(Debug, Default)]
pub struct Extras {
    pub intent_to_add: Vec<BString>,
    pub exact_bytes: Vec<(BString, ObjectId)>,
    pub lfs_pointers: Vec<BString>,
    pub lfs_objects: Vec<Pointer>,
    pub sparse: Option<Sparse>,
    pub settings: Vec<(String, String)>,
    pub submodules: Vec<SubmoduleRecord>,
}

/// Read the records of data tree `tree` (from the other machine: checked, never trusted).
pub fn read(repo: &Repo, tree: ObjectId) -> Result<Extras> {
    let tree = repo.gix.find_tree(tree)?;
    let mut extras = Extras::default();
    let blob = |name: &str| -> Result<Option<Vec<u8>>> {
        match tree.find_entry(name) {
            Some(entry) if entry.mode().is_blob() => Ok(Some(repo.gix.find_blob(entry.object_id())?.data.clone())),
            Some(_) => Err(bad(name)),
            None => Ok(None),
        }
    };
    if let Some(data) = blob(INTENT_TO_ADD_FILE)? {
        extras.intent_to_add = checked_paths(split_paths(&data), "intent-to-add")?;
    }
    if let Some(data) = blob(LFS_POINTERS_FILE)? {
        extras.lfs_pointers = checked_paths(split_paths(&data), "LFS pointer")?;
    }
    if let Some(data) = blob(LFS_OBJECTS_FILE)? {
        extras.lfs_objects = lfs::decode_list(&data)?;
    }
    if let Some(entry) = tree.find_entry(EXACT_BYTES_DIR) {
        if !entry.mode().is_tree() {
            return Err(bad(EXACT_BYTES_DIR));
        }
        collect_blobs(repo, entry.object_id(), &mut BString::default(), &mut extras.exact_bytes)?;
        if let Some((bad, _)) = extras.exact_bytes.iter().find(|(path, _)| !is_plain_path(path)) {
            return Err(not_a_worktree_path("exact-bytes", bad));
        }
    }
    if let Some(data) = blob(WORKTREE_FILE)? {
        let json: WorktreeJson = serde_json::from_slice(&data).map_err(|_| bad(WORKTREE_FILE))?;
        if let Some(flags) = json.sparse {
            let patterns =
                tree.find_entry(SPARSE_FILE).filter(|e| e.mode().is_blob()).ok_or_else(|| bad(SPARSE_FILE))?;
            extras.sparse =
                Some(Sparse { cone: flags.cone, sparse_index: flags.sparse_index, patterns: patterns.object_id() });
        }
        extras.settings = checkout_settings::checked_settings(json.settings.into_iter().collect())?;
        extras.submodules = json.submodules;
    }
    Ok(extras)
}

fn checked_paths(paths: Vec<BString>, what: &str) -> Result<Vec<BString>> {
    match paths.iter().find(|p| !is_plain_path(p)) {
        Some(bad) => Err(not_a_worktree_path(what, bad)),
        None => Ok(paths),
    }
}

fn bad(name: &str) -> Error {
    Error::failed("bad_snapshot", format!("the snapshot's {name} is damaged"))
        .with_help("it may come from a newer version of git-codex-handoff; upgrade")
}

fn split_paths(data: &[u8]) -> Vec<BString> {
    data.split(|b| *b == 0).filter(|p| !p.is_empty()).take(MAX_ENTRIES).map(|p| p.as_bstr().to_owned()).collect()
}

fn collect_blobs(repo: &Repo, tree: ObjectId, prefix: &mut BString, out: &mut Vec<(BString, ObjectId)>) -> Result<()> {
    for entry in repo.gix.find_tree(tree)?.iter() {
        let entry = entry.map_err(|_| bad(EXACT_BYTES_DIR))?;
        let len = prefix.len();
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(entry.filename());
        if entry.mode().is_tree() {
            collect_blobs(repo, entry.object_id(), prefix, out)?;
        } else if entry.mode().is_blob() && out.len() < MAX_ENTRIES {
            out.push((prefix.clone(), entry.object_id()));
        }
        prefix.truncate(len);
    }
    Ok(())
}

/// Write a submodule's snapshot S (parents: HEAD, I, D) in its own
/// repository and pin it under `pin` there.
pub fn write_submodule_snapshot(repo: &Repo, state: &WorktreeState, path: &str, pin: &str) -> Result<ObjectId> {
    let signature = crate::objects::signature(repo);
    let heads: Vec<ObjectId> = state.head.into_iter().collect();
    let index_commit = crate::objects::write_commit(
        repo,
        &signature,
        format!("index of submodule {path}\n"),
        state.index_tree,
        heads.clone(),
    )?;
    let mut data = repo.gix.edit_tree(ObjectId::empty_tree(repo.gix.object_hash()))?;
    write(repo, &mut data, state, pin)?;
    let data_tree = data.write()?.detach();
    // Chained to the snapshot pinned before, so every earlier one stays reachable (and survives gc).
    let previous = crate::objects::ref_target(repo, pin)?;
    let data_commit = crate::objects::write_commit(
        repo,
        &signature,
        format!("data of submodule {path}\n"),
        data_tree,
        previous.into_iter().collect(),
    )?;
    let mut parents = heads;
    parents.push(index_commit);
    parents.push(data_commit);
    let snapshot = crate::objects::write_commit(
        repo,
        &signature,
        format!("codex-handoff snapshot of submodule {path}\n"),
        state.worktree_tree,
        parents,
    )?;
    crate::objects::set_ref(repo, pin, previous, Some(snapshot), "codex-handoff: submodule snapshot")?;
    Ok(snapshot)
}

/// The state a submodule snapshot `snapshot` records (in `repo`, its repository).
pub fn read_submodule_snapshot(
    repo: &Repo,
    snapshot: ObjectId,
    branch: Option<String>,
    nested: &ModuleSource,
) -> Result<WorktreeState> {
    let commit = repo.gix.find_commit(snapshot)?;
    let parents: Vec<ObjectId> = commit.parent_ids().map(|id| id.detach()).collect();
    let (head, index_commit, data_commit) = match parents.as_slice() {
        [head, index, data] => (Some(*head), *index, *data),
        [index, data] => (None, *index, *data),
        _ => return Err(Error::failed("bad_snapshot", format!("{snapshot} is not a submodule snapshot"))),
    };
    if let Some(branch) = &branch {
        crate::repo::check_received_branch_name(branch)?;
    }
    read_state(repo, snapshot, head, index_commit, data_commit, branch, nested)
}

/// The state a snapshot records: `snapshot`'s tree holds the working files,
/// `index_commit`'s the index, `data_commit`'s the record beside them; the
/// submodules' snapshots are read where `modules` says.
pub fn read_state(
    repo: &Repo,
    snapshot: ObjectId,
    head: Option<ObjectId>,
    index_commit: ObjectId,
    data_commit: ObjectId,
    branch: Option<String>,
    modules: &ModuleSource,
) -> Result<WorktreeState> {
    let worktree_tree = repo.gix.find_commit(snapshot)?.tree_id()?.detach();
    let index_tree = repo.gix.find_commit(index_commit)?.tree_id()?.detach();
    let extras = read(repo, repo.gix.find_commit(data_commit)?.tree_id()?.detach())?;
    let submodules = load(repo, worktree_tree, &extras.submodules, modules)?;
    let mut state = WorktreeState {
        head,
        branch,
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
    Ok(state)
}

/// Write each submodule's snapshot in its own repository (recursively) and
/// pin it there under `pin`; the records for the enclosing snapshot.
pub fn write_snapshots(subs: &mut [SubmoduleState], pin: &str) -> Result<Vec<SubmoduleRecord>> {
    let mut records = Vec::new();
    for sub in subs.iter_mut() {
        let git_dir = sub
            .git_dir
            .clone()
            .ok_or_else(|| Error::failed("submodule_lost", "a submodule's repository is unknown"))?;
        let repo = Repo::open(&git_dir)?;
        let snapshot = crate::worktree::record::write_submodule_snapshot(&repo, &sub.state, &sub.path, pin)
            .map_err(|e| in_submodule(&sub.path, e))?;
        sub.snapshot = Some(snapshot);
        records.push(SubmoduleRecord {
            path: sub.path.clone(),
            name: sub.name.clone(),
            snapshot: snapshot.to_string(),
            branch: sub.state.branch.clone(),
        });
    }
    Ok(records)
}

/// The states `records` describe, read from where `source` says the
/// submodules' objects are. `worktree_tree` is the enclosing snapshot's
/// working files: every record must be a gitlink there.
pub fn load(
    repo: &Repo,
    worktree_tree: ObjectId,
    records: &[SubmoduleRecord],
    source: &ModuleSource,
) -> Result<Vec<SubmoduleState>> {
    let tree = repo.gix.find_tree(worktree_tree)?;
    let mut states = Vec::new();
    for record in records {
        check_path(&record.path)?;
        check_name(&record.name)?;
        let gitlink = tree.lookup_entry_by_path(&record.path)?.is_some_and(|e| e.mode().is_commit());
        if !gitlink {
            return Err(Error::failed(
                "bad_snapshot",
                format!("the snapshot names a submodule at {} that it does not hold", record.path),
            ));
        }
        check_url(repo, worktree_tree, &record.name, &record.path)?;
        let snapshot = crate::objects::parse_hex(&record.snapshot)?;
        let (git_dir, nested) = match source {
            ModuleSource::Modules(git_dir) => {
                let dir = module_dir(git_dir, &record.name)?;
                (dir.clone(), ModuleSource::Modules(dir))
            }
            ModuleSource::Worktree(root) => {
                let dir = root.join(&record.path);
                (Repo::open(&dir)?.git_dir(), ModuleSource::Worktree(dir))
            }
        };
        let sub = Repo::open(&git_dir).map_err(|_| missing_module(&record.path, &git_dir))?;
        if sub.gix.find_commit(snapshot).is_err() {
            return Err(Error::failed(
                "submodule_snapshot_missing",
                format!("submodule {}: its snapshot {snapshot} is not in {}", record.path, git_dir.display()),
            )
            .with_help("run the handoff again"));
        }
        let state = crate::worktree::record::read_submodule_snapshot(&sub, snapshot, record.branch.clone(), &nested)
            .map_err(|e| in_submodule(&record.path, e))?;
        states.push(SubmoduleState {
            path: record.path.clone(),
            name: record.name.clone(),
            state,
            snapshot: Some(snapshot),
            git_dir: Some(git_dir),
        });
    }
    Ok(states)
}
