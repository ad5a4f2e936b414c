//! The thread store: `refs/codex-handoff/threads/<uuid>` points at a thread's
//! latest snapshot commit S, and `refs/notes/codex-handoff` holds the thread
//! state as a note on every S.
//!
//! S: tree = working files; parents = HEAD (if any), I, T.
//! I: tree = the index; parent = HEAD (if any).
//! T: tree = thread data (transcript, intent-to-add paths); parents = the
//!    previous T and the previous S, so every snapshot of a thread stays
//!    reachable from its ref and survives `git gc`.

use gix::bstr::ByteSlice;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::Target;
use gix::ObjectId;

use crate::error::{Error, Result};
use crate::machine::Machine;
use crate::repo::Repo;
use crate::thread::state::ThreadState;
use crate::worktree::record;
use crate::worktree::state::{Trees, WorktreeState};
use crate::worktree::submodules::ModuleSource;
use crate::worktree::verify::Expected;

// The ref and object plumbing the store is built on.
pub use crate::objects::{delete_refs_under, parse_hex, ref_target, set_ref};
use crate::objects::{signature, write_commit};

pub const THREAD_REF_PREFIX: &str = "refs/codex-handoff/threads/";
pub const NOTES_REF: &str = "refs/notes/codex-handoff";
/// The transcript's file name inside the thread-data tree (`worktree_data` names the others).
pub const TRANSCRIPT_FILE: &str = "transcript";

/// A transcript stored as a blob, with the sha256 and size its note records.
#[derive(Debug, Clone)]
pub struct TranscriptBlob {
    pub id: ObjectId,
    pub sha256: String,
    pub size: u64,
}

impl TranscriptBlob {
    /// The transcript of a thread that has none yet.
    pub fn empty(repo: &Repo) -> Result<TranscriptBlob> {
        use sha2::Digest;
        let id = repo.gix.write_blob(b"")?.detach();
        let sha256 = sha2::Sha256::digest(b"").iter().map(|b| format!("{b:02x}")).collect();
        Ok(TranscriptBlob { id, sha256, size: 0 })
    }
}

/// A thread as found in the store: its latest snapshot and the state noted on it.
#[derive(Debug, Clone)]
pub struct Thread {
    pub snapshot: ObjectId,
    pub state: ThreadState,
}

impl Thread {
    /// Where the thread is, as this computer names it: `local`, the host name
    /// this computer handed it to, or else the owner machine's own name.
    pub fn owner_name(&self, this_machine: &Machine) -> String {
        if self.state.owned_by(this_machine) {
            "local".to_owned()
        } else {
            self.state.sent_by(this_machine).unwrap_or(&self.state.owner_machine).to_owned()
        }
    }

    /// The machine where the thread works on a detached HEAD although it has
    /// a branch (checked out elsewhere there), as this computer names it.
    pub fn branch_detached_on(&self, this_machine: &Machine) -> Option<String> {
        let detached = self.state.branch_detached_on.as_ref().filter(|_| self.state.branch.is_some())?;
        let owner = Machine {
            id: self.state.owner_machine_id.clone().unwrap_or_default(),
            name: self.state.owner_machine.clone(),
        };
        let on_owner = match (&detached.machine_id, &self.state.owner_machine_id) {
            (Some(_), Some(_)) => detached.is(&owner),
            _ => detached.machine == owner.name,
        };
        Some(if detached.is(this_machine) {
            "local".to_owned()
        } else if on_owner {
            self.owner_name(this_machine)
        } else {
            detached.machine.clone()
        })
    }
}

impl Thread {
    /// The worktree state this thread's snapshot records; its submodules'
    /// snapshots are read where `modules` says.
    pub fn expected(&self, repo: &Repo, modules: &ModuleSource) -> Result<Expected> {
        let head = self.state.head.as_deref().map(parse_hex).transpose()?;
        let index_commit = parse_hex(&self.state.index_commit)?;
        let data_commit = parse_hex(&self.state.data_commit)?;
        let branch = self.state.branch.clone();
        let state = record::read_state(repo, self.snapshot, head, index_commit, data_commit, branch, modules)?;
        Ok(Expected { snapshot: self.snapshot, state, pin: thread_ref(&self.state.uuid) })
    }
}

/// The trees snapshot `snapshot` holds: its index (named by its note) and its working files.
pub fn snapshot_trees(repo: &Repo, snapshot: ObjectId) -> Result<Trees> {
    let note = read_note(repo, snapshot)?;
    let index = repo.gix.find_commit(parse_hex(&note.index_commit)?)?.tree_id()?.detach();
    Ok(Trees { index, files: repo.gix.find_commit(snapshot)?.tree_id()?.detach() })
}

pub fn thread_ref(uuid: &str) -> String {
    format!("{THREAD_REF_PREFIX}{uuid}")
}

/// The thread with this exact UUID, if the store has it.
pub fn load(repo: &Repo, uuid: &str) -> Result<Option<Thread>> {
    let Some(reference) = repo.gix.try_find_reference(thread_ref(uuid).as_str())? else {
        return Ok(None);
    };
    let Some(id) = reference.target().try_id().map(ToOwned::to_owned) else {
        return Ok(None);
    };
    let state = read_note(repo, id)?;
    Ok(Some(Thread { snapshot: id, state }))
}

/// The thread state noted on snapshot `snapshot`.
pub fn read_note(repo: &Repo, snapshot: ObjectId) -> Result<ThreadState> {
    read_note_in(repo, snapshot, NOTES_REF)
}

/// The thread state noted on `snapshot` in the notes ref `notes_ref`.
pub fn read_note_in(repo: &Repo, snapshot: ObjectId, notes_ref: &str) -> Result<ThreadState> {
    let mut notes = repo.gix.notes()?.with_refs([notes_ref])?;
    let found = notes.get(snapshot)?;
    let Some(note) = found.first() else {
        return Err(Error::failed("note_missing", format!("snapshot {snapshot} has no note in {NOTES_REF}"))
            .with_help(format!("fetch {NOTES_REF} from the machine that made the snapshot")));
    };
    ThreadState::from_note(&note.blob.data).map_err(|e| {
        Error::failed("note_unreadable", format!("the note on snapshot {snapshot} is not a thread state"))
            .with_help("it may have been written by a newer version of git-codex-handoff; upgrade")
            .with_source(e)
    })
}

/// Record a snapshot: write I, T and S, note the state on S, then move the
/// thread's ref from `previous` to S (compare-and-swap). Returns the new thread.
///
/// `transcript` replaces the transcript; `None` carries the previous one over.
pub fn record(
    repo: &Repo,
    worktree: &WorktreeState,
    state: ThreadState,
    previous: Option<&Thread>,
    transcript: Option<TranscriptBlob>,
) -> Result<Thread> {
    let thread = write_snapshot(repo, worktree, state, previous, transcript, NOTES_REF)?;
    move_thread_ref(repo, &thread.state.uuid, previous.map(|p| p.snapshot), thread.snapshot)?;
    Ok(thread)
}

/// Where a departing snapshot's note waits until the destination has it:
/// the shared notes ref changes only once the handoff is confirmed.
pub fn staged_notes_ref(uuid: &str) -> String {
    format!("refs/codex-handoff/staged/{uuid}/notes")
}

/// Start the staged notes ref afresh at the current notes tip.
pub fn reset_staged_notes(repo: &Repo, uuid: &str) -> Result<()> {
    let staged = staged_notes_ref(uuid);
    set_ref(repo, &staged, None, None, "codex-handoff: reset staged notes")?;
    if let Some(tip) = ref_target(repo, NOTES_REF)? {
        set_ref(repo, &staged, None, Some(tip), "codex-handoff: stage notes")?;
    }
    Ok(())
}

/// Merge the staged note into the shared notes ref and drop the staged ref.
pub fn publish_staged_notes(repo: &Repo, uuid: &str) -> Result<()> {
    let staged = staged_notes_ref(uuid);
    if let Some(tip) = ref_target(repo, &staged)? {
        merge_notes(repo, tip)?;
        set_ref(repo, &staged, Some(tip), None, "codex-handoff: published")?;
    }
    Ok(())
}

/// Write I, T and S and the note on S (into `notes_ref`), without moving the thread's ref.
pub fn write_snapshot(
    repo: &Repo,
    worktree: &WorktreeState,
    mut state: ThreadState,
    previous: Option<&Thread>,
    transcript: Option<TranscriptBlob>,
    notes_ref: &str,
) -> Result<Thread> {
    state.schema = crate::thread::state::SCHEMA;
    let signature = signature(repo);
    let head_parents: Vec<ObjectId> = worktree.head.into_iter().collect();

    let index_commit = write_commit(
        repo,
        &signature,
        format!("index of thread #{} ({})\n", state.number, state.uuid),
        worktree.index_tree,
        head_parents.clone(),
    )?;

    // Thread data: the transcript and the intent-to-add paths.
    let previous_data = match previous {
        Some(p) => Some(parse_hex(&p.state.data_commit)?),
        None => None,
    };
    // A new transcript, or the previous one carried over (its sha256 and size with it).
    let transcript = match (transcript, previous_data, previous) {
        (Some(blob), _, _) => blob,
        (None, Some(data), Some(previous)) => TranscriptBlob {
            id: transcript_blob(repo, data)?,
            sha256: previous.state.transcript.sha256.clone(),
            size: previous.state.transcript.size,
        },
        _ => TranscriptBlob::empty(repo)?,
    };
    state.transcript.sha256 = transcript.sha256.clone();
    state.transcript.size = transcript.size;
    let transcript = transcript.id;
    let mut data_tree = repo.gix.edit_tree(ObjectId::empty_tree(repo.gix.object_hash()))?;
    data_tree.upsert(TRANSCRIPT_FILE, gix::object::tree::EntryKind::Blob, transcript)?;
    // Intent-to-add paths, exact bytes, LFS, sparse checkout, settings, submodule snapshots.
    crate::worktree::record::write(repo, &mut data_tree, worktree, &thread_ref(&state.uuid))?;
    let data_tree = data_tree.write()?.detach();
    let mut data_parents = Vec::new();
    data_parents.extend(previous_data);
    data_parents.extend(previous.map(|p| p.snapshot));
    let data_commit = write_commit(
        repo,
        &signature,
        format!("thread #{} ({}): {}\n", state.number, state.uuid, state.title),
        data_tree,
        data_parents,
    )?;

    let mut parents = head_parents;
    parents.push(index_commit);
    parents.push(data_commit);
    let snapshot = write_commit(
        repo,
        &signature,
        format!("codex-handoff snapshot of thread #{} ({}), epoch {}\n", state.number, state.uuid, state.epoch),
        worktree.worktree_tree,
        parents,
    )?;

    state.head = worktree.head.map(|h| h.to_string());
    state.index_commit = index_commit.to_string();
    state.data_commit = data_commit.to_string();
    state.intent_to_add = worktree.intent_to_add.len();

    state.set_source(&Machine::this(Some(repo))?);
    write_note(repo, notes_ref, snapshot, &state)?;
    Ok(Thread { snapshot, state })
}

/// Write the note on `snapshot`. The notes ref is shared by all threads, so a
/// concurrent writer (of another thread) makes us retry on the new tip.
pub fn write_note(repo: &Repo, notes_ref: &str, snapshot: ObjectId, state: &ThreadState) -> Result<()> {
    let data = state.to_note();
    let mut last_error = None;
    for _ in 0..20 {
        let mut notes = repo
            .gix
            .notes()?
            .with_refs([notes_ref])?
            .with_commit_message(format!("thread #{} ({}) epoch {}", state.number, state.uuid, state.epoch));
        // The full name as given: `replace` would put non-`refs/notes/` names under refs/notes/.
        let full: gix::refs::FullName = notes_ref
            .try_into()
            .map_err(|e| Error::failed("bad_ref", format!("bad ref name {notes_ref}")).with_source(e))?;
        match notes.replace_at_ref(full.as_ref(), snapshot, &data) {
            Ok(_) => return Ok(()),
            Err(e) => {
                last_error = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
    Err(Error::failed("notes_update", format!("could not update {notes_ref}"))
        .with_help("another process keeps changing it; try again")
        .with_source(last_error.expect("at least one attempt")))
}

/// Compare-and-swap the thread's ref: it must still be at `expected`.
pub fn move_thread_ref(repo: &Repo, uuid: &str, expected: Option<ObjectId>, new: ObjectId) -> Result<()> {
    let name = thread_ref(uuid);
    let expected = match expected {
        Some(old) => PreviousValue::MustExistAndMatch(Target::Object(old)),
        None => PreviousValue::MustNotExist,
    };
    let edit = RefEdit {
        change: Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: false,
                message: "codex-handoff snapshot".into(),
            },
            expected,
            new: Target::Object(new),
        },
        name: name
            .as_str()
            .try_into()
            .map_err(|e| Error::failed("bad_ref", format!("bad ref name {name}")).with_source(e))?,
        deref: false,
    };
    repo.gix.edit_reference(edit).map_err(|e| {
        Error::refused("thread_moved", format!("thread {uuid} was changed by another process while this one worked"))
            .with_help("run `git codex-handoff thread show` to see its state, then try again")
            .with_source(e)
    })?;
    Ok(())
}

/// The transcript blob of thread-data commit `data_commit`.
pub fn transcript_blob(repo: &Repo, data_commit: ObjectId) -> Result<ObjectId> {
    data_entry(repo, data_commit, TRANSCRIPT_FILE)?
        .ok_or_else(|| Error::failed("transcript_missing", format!("thread data {data_commit} has no transcript")))
}

fn data_entry(repo: &Repo, data_commit: ObjectId, name: &str) -> Result<Option<ObjectId>> {
    let tree = repo.gix.find_commit(data_commit)?.tree()?;
    Ok(tree.find_entry(name).map(|e| e.object_id()))
}

pub fn incoming_ref(uuid: &str, what: &str) -> String {
    format!("refs/codex-handoff/incoming/{uuid}/{what}")
}

pub fn outgoing_ref(uuid: &str) -> String {
    format!("refs/codex-handoff/outgoing/{uuid}")
}

/// Merge the notes commit `incoming` into our notes ref as a union: a
/// snapshot's note is written once, on the machine that made the snapshot,
/// so two notes trees never disagree about one object.
pub fn merge_notes(repo: &Repo, incoming: ObjectId) -> Result<()> {
    for _ in 0..20 {
        let local = ref_target(repo, NOTES_REF)?;
        let Some(local) = local else {
            if set_ref(repo, NOTES_REF, None, Some(incoming), "codex-handoff: notes").is_ok() {
                return Ok(());
            }
            continue;
        };
        if local == incoming || repo.is_ancestor(incoming, local)? {
            return Ok(());
        }
        let mine = note_entries(repo, repo.gix.find_commit(local)?.tree_id()?.detach())?;
        let theirs = note_entries(repo, repo.gix.find_commit(incoming)?.tree_id()?.detach())?;
        // Notes that came from another machine only add: one that would
        // change or drop a note this machine holds is not taken, even when
        // the incoming history descends from ours.
        let keeps_ours = mine.iter().all(|(key, (_, blob))| theirs.get(key).is_some_and(|(_, b)| b == blob));
        let new = if keeps_ours && repo.is_ancestor(local, incoming)? {
            incoming
        } else {
            let missing: Vec<_> = theirs.into_iter().filter(|(key, _)| !mine.contains_key(key)).collect();
            if missing.is_empty() {
                return Ok(());
            }
            let mut tree = repo.gix.edit_tree(repo.gix.find_commit(local)?.tree_id()?.detach())?;
            for (_, (path, blob)) in missing {
                tree.upsert(path.as_str(), gix::object::tree::EntryKind::Blob, blob)?;
            }
            let tree = tree.write()?.detach();
            write_commit(
                repo,
                &signature(repo),
                "Notes merged by git-codex-handoff (union)\n".into(),
                tree,
                vec![local, incoming],
            )?
        };
        if set_ref(repo, NOTES_REF, Some(local), Some(new), "codex-handoff: merge notes").is_ok() {
            return Ok(());
        }
    }
    Err(Error::failed("notes_update", format!("could not merge into {NOTES_REF}")).with_help("try again"))
}

/// Every note of a notes tree, whatever its fan-out: annotated object (hex) -> (path, blob).
pub(crate) fn note_entries(
    repo: &Repo,
    tree: ObjectId,
) -> Result<std::collections::BTreeMap<String, (String, ObjectId)>> {
    let mut out = std::collections::BTreeMap::new();
    let mut pending = vec![(String::new(), tree)];
    while let Some((prefix, id)) = pending.pop() {
        let tree = repo.gix.find_tree(id)?;
        for entry in tree.iter() {
            let entry = entry.map_err(|e| Error::failed("bad_tree", "a notes tree is damaged").with_source(e))?;
            let name = entry.filename().to_str_lossy();
            let path = if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
            if entry.mode().is_tree() {
                pending.push((path, entry.object_id()));
            } else if entry.mode().is_blob() {
                let key: String = path.chars().filter(|c| *c != '/').collect();
                if key.len() == 40 && key.chars().all(|c| c.is_ascii_hexdigit()) {
                    out.insert(key, (path, entry.object_id()));
                }
            }
        }
    }
    Ok(out)
}
