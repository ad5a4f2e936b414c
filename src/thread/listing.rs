//! Every thread of a repository at once, as `thread list`, thread numbers
//! and THREAD on the command line need them.
//!
//! Reading a note through git's notes machinery walks the notes tree from
//! its root each time: a thousand threads took a quarter of a second. The
//! notes tree is walked once instead, and the notes read are kept in a
//! small cache file (`<git dir>/codex-handoff/threads.cache`) keyed by the
//! notes ref's commit id: a note on a given snapshot in a given notes commit
//! never changes, so an entry is valid exactly while both ids match. When
//! the notes ref has moved on, the notes tree is walked again, reading only
//! the (fan-out) trees and note blobs not seen before: a tree or blob id
//! names its content. An unreadable cache is read afresh.

use std::collections::BTreeMap;
use std::path::Path;

use gix::ObjectId;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::repo::Repo;
use crate::thread::state::ThreadState;
use crate::thread::store::{self, Thread, NOTES_REF, THREAD_REF_PREFIX};

const CACHE_FILE: &str = "threads.cache";

#[derive(Serialize, Deserialize, Default)]
struct Cache {
    /// The notes commit the notes were read from.
    notes: String,
    /// Snapshot id -> its note.
    notes_of: BTreeMap<String, Cached>,
    /// The notes trees, by id: each entry's name, whether it is a tree, its id.
    #[serde(default)]
    trees: BTreeMap<String, Vec<(String, bool, String)>>,
}

/// Every thread's number by UUID, as notes commit `notes` says (kept in a
/// small file of its own, `threads.numbers`, for [`by_number`]).
#[derive(Default, PartialEq)]
struct Numbers {
    notes: String,
    of: BTreeMap<String, u64>,
}

const NUMBERS_FILE: &str = "threads.numbers";

/// First line the notes commit, then `uuid number` per line.
fn read_numbers(file: &Path) -> Numbers {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut lines = text.lines();
    let notes = lines.next().unwrap_or_default().to_owned();
    let of = lines
        .filter_map(|line| {
            let (uuid, number) = line.split_once(' ')?;
            Some((uuid.to_owned(), number.parse().ok()?))
        })
        .collect();
    Numbers { notes, of }
}

fn write_numbers(file: &Path, numbers: &Numbers) {
    let mut text = format!("{}\n", numbers.notes);
    for (uuid, number) in &numbers.of {
        text += &format!("{uuid} {number}\n");
    }
    crate::cache_file::write(file, text.as_bytes());
}

#[derive(Serialize, Deserialize)]
struct Cached {
    /// The note's blob.
    blob: String,
    /// The note (JSON, kept as it is, not re-escaped).
    note: Box<RawValue>,
}

/// Every thread of the repository, by number.
pub fn list(repo: &Repo) -> Result<Vec<Thread>> {
    let snapshots = thread_snapshots(repo)?;
    let file = repo.private_dir()?.join(CACHE_FILE);
    let mut cache = read_cache(&file);
    let mut changed = false;
    for attempt in 0..2 {
        let tip = store::ref_target(repo, NOTES_REF)?.map(|t| t.to_string()).unwrap_or_default();
        let all_known = snapshots.iter().all(|s| cache.notes_of.contains_key(&s.to_string()));
        if cache.notes == tip && all_known {
            break;
        }
        changed = true;
        let mut trees = BTreeMap::new();
        let mut entries = BTreeMap::new();
        if !tip.is_empty() {
            let root = repo.gix.find_commit(store::parse_hex(&tip)?)?.tree_id()?.detach();
            walk(repo, root, String::new(), &mut cache.trees, &mut trees, &mut entries)?;
        }
        let mut fresh = BTreeMap::new();
        for snapshot in &snapshots {
            let key = snapshot.to_string();
            let Some(blob) = entries.get(&key) else { continue };
            let blob_hex = blob.to_string();
            let cached = cache.notes_of.remove(&key).filter(|c| c.blob == blob_hex);
            let cached = match cached {
                Some(cached) => cached,
                None => Cached { blob: blob_hex, note: read_note_blob(repo, *snapshot, *blob)? },
            };
            fresh.insert(key, cached);
        }
        cache = Cache { notes: tip, notes_of: fresh, trees };
        // A thread's ref moved on (with its note) while the notes were read: once more.
        if attempt == 0 && snapshots.iter().any(|s| !cache.notes_of.contains_key(&s.to_string())) {
            continue;
        }
        break;
    }
    let mut threads = Vec::with_capacity(snapshots.len());
    for snapshot in &snapshots {
        let Some(Cached { note: text, .. }) = cache.notes_of.get(&snapshot.to_string()) else {
            return Err(Error::failed("note_missing", format!("snapshot {snapshot} has no note in {NOTES_REF}"))
                .with_help(format!("fetch {NOTES_REF} from the machine that made the snapshot")));
        };
        let state = ThreadState::from_note(text.get().as_bytes()).map_err(|e| {
            Error::failed("note_unreadable", format!("the note on snapshot {snapshot} is not a thread state"))
                .with_help("it may have been written by a newer version of git-codex-handoff; upgrade")
                .with_source(e)
        })?;
        threads.push(Thread { snapshot: *snapshot, state });
    }
    if changed {
        write_cache(&file, &cache);
    }
    let numbers = Numbers {
        notes: cache.notes.clone(),
        of: threads.iter().map(|t| (t.state.uuid.clone(), t.state.number)).collect(),
    };
    let numbers_file = file.with_file_name(NUMBERS_FILE);
    if changed || read_numbers(&numbers_file) != numbers {
        write_numbers(&numbers_file, &numbers);
    }
    threads.sort_by(|a, b| a.state.number.cmp(&b.state.number).then(a.state.uuid.cmp(&b.state.uuid)));
    Ok(threads)
}

/// Every note blob under notes tree `id` (whatever its fan-out), by the
/// hex id of the object it annotates; trees already in `known` are not read
/// again, and every tree walked goes into `seen`.
fn walk(
    repo: &Repo,
    id: ObjectId,
    prefix: String,
    known: &mut BTreeMap<String, Vec<(String, bool, String)>>,
    seen: &mut BTreeMap<String, Vec<(String, bool, String)>>,
    notes: &mut BTreeMap<String, ObjectId>,
) -> Result<()> {
    let key = id.to_string();
    let listing = match known.remove(&key) {
        Some(listing) => listing,
        None => {
            let tree = repo.gix.find_tree(id)?;
            let mut listing = Vec::new();
            for entry in tree.iter() {
                let entry = entry.map_err(|e| Error::failed("bad_tree", "a notes tree is damaged").with_source(e))?;
                let (is_tree, is_blob) = (entry.mode().is_tree(), entry.mode().is_blob());
                if is_tree || is_blob {
                    listing.push((entry.filename().to_string(), is_tree, entry.object_id().to_string()));
                }
            }
            listing
        }
    };
    for (name, is_tree, child) in &listing {
        let path = format!("{prefix}{name}");
        let child = store::parse_hex(child)?;
        if *is_tree {
            walk(repo, child, path, known, seen, notes)?;
        } else if path.len() == 40 && path.bytes().all(|b| b.is_ascii_hexdigit()) {
            notes.insert(path, child);
        }
    }
    seen.insert(key, listing);
    Ok(())
}

/// The note in blob `blob`, on snapshot `snapshot`.
fn read_note_blob(repo: &Repo, snapshot: ObjectId, blob: ObjectId) -> Result<Box<RawValue>> {
    let text = String::from_utf8(repo.gix.find_blob(blob)?.data.clone())
        .map_err(|_| Error::failed("note_unreadable", format!("the note on snapshot {snapshot} is not text")))?;
    RawValue::from_string(text.trim_end().to_owned()).map_err(|e| {
        Error::failed("note_unreadable", format!("the note on snapshot {snapshot} is not JSON")).with_source(e)
    })
}

/// The thread numbered `number`, found without reading every thread's ref
/// when nothing changed since the last list: the same thread refs (by
/// name, each a file of its own) and the same notes commit, whose notes gave
/// every thread its number. `None`: look through the whole list.
pub fn by_number(repo: &Repo, number: u64) -> Result<Option<Thread>> {
    let common = repo.common_dir();
    let files_backend = repo.gix.config_snapshot().string("extensions.refStorage").is_none_or(|v| v == "files");
    let packed = std::fs::read(common.join("packed-refs")).unwrap_or_default();
    if !files_backend || memchr::memmem::find(&packed, THREAD_REF_PREFIX.as_bytes()).is_some() {
        return Ok(None);
    }
    let numbers = read_numbers(&repo.private_path().join(NUMBERS_FILE));
    let tip = store::ref_target(repo, NOTES_REF)?.map(|t| t.to_string()).unwrap_or_default();
    if numbers.notes != tip || numbers.of.is_empty() {
        return Ok(None);
    }
    let names: Vec<String> = std::fs::read_dir(common.join(THREAD_REF_PREFIX))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    if names.len() != numbers.of.len() || !names.iter().all(|n| numbers.of.contains_key(n)) {
        return Ok(None);
    }
    // The first by UUID among those numbered so, as the list orders them.
    let Some((uuid, _)) = numbers.of.iter().find(|(_, n)| **n == number) else { return Ok(None) };
    Ok(store::load(repo, uuid)?.filter(|t| t.state.number == number))
}

/// The snapshot each thread's ref points at.
fn thread_snapshots(repo: &Repo) -> Result<Vec<ObjectId>> {
    let mut snapshots = Vec::new();
    let platform = repo.gix.references()?;
    for reference in platform.prefixed(THREAD_REF_PREFIX.trim_end_matches('/'))? {
        let reference =
            reference.map_err(|e| Error::failed("refs", "could not read the thread refs").with_source(e))?;
        if let Some(id) = reference.target().try_id() {
            snapshots.push(id.to_owned());
        }
    }
    Ok(snapshots)
}

fn read_cache(file: &Path) -> Cache {
    std::fs::read(file).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default()
}

fn write_cache(file: &Path, cache: &Cache) {
    if let Ok(bytes) = serde_json::to_vec(cache) {
        crate::cache_file::write(file, &bytes);
    }
}

/// The next free thread number in this repository.
pub fn next_number(repo: &Repo) -> Result<u64> {
    Ok(list(repo)?.iter().map(|t| t.state.number).max().unwrap_or(0) + 1)
}
