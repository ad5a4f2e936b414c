//! The tree an index describes, as `git write-tree` would write it, built
//! in this process: the index's own cached trees are taken where still
//! valid, every other directory is hashed from its entries, and only trees
//! the repository lacks are written. A clean 100,000-file worktree whose
//! index lost its cached trees (a `git reset`, one `git add`) is then its
//! tree without copying the index and running git. The same builder makes
//! the tree of a worktree from entries found changed in it.
//!
//! Anything `write-tree` treats specially (unmerged, intent-to-add or
//! sparse-directory entries) or would refuse (a blob the repository lacks)
//! gives `None`, and the caller asks git.

use gix::objs::tree::{Entry, EntryKind};
use gix::ObjectId;

use crate::error::Result;
use crate::repo::Repo;

/// One file of a tree to build: its full path, kind and object.
#[derive(Debug, Clone)]
pub struct Item<'a> {
    pub path: &'a [u8],
    pub kind: EntryKind,
    pub id: ObjectId,
}

/// The kind of tree entry an index entry's mode makes, if it is one `write-tree` writes as it is.
pub fn kind_of(mode: gix::index::entry::Mode) -> Option<EntryKind> {
    use gix::index::entry::Mode;
    match mode {
        Mode::FILE => Some(EntryKind::Blob),
        Mode::FILE_EXECUTABLE => Some(EntryKind::BlobExecutable),
        Mode::SYMLINK => Some(EntryKind::Link),
        Mode::COMMIT => Some(EntryKind::Commit),
        _ => None,
    }
}

/// The id of the tree `index` holds, written when missing; `None`: ask git.
pub fn write(repo: &Repo, index: &gix::index::File) -> Result<Option<ObjectId>> {
    use gix::index::entry::Flags;
    let entries = index.entries();
    let special =
        |e: &gix::index::Entry| e.stage_raw() != 0 || e.flags.contains(Flags::INTENT_TO_ADD) || e.mode.is_sparse();
    if index.is_sparse() || entries.iter().any(special) {
        return Ok(None);
    }
    let mut items = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(kind) = kind_of(entry.mode) else { return Ok(None) };
        items.push(Item { path: entry.path(index), kind, id: entry.id });
    }
    Builder { repo, items: &items }.tree(b"", 0, items.len(), index.tree())
}

/// The id of the tree of `items`, sorted by path as an index is; written when missing.
pub fn write_items(repo: &Repo, items: &[Item]) -> Result<Option<ObjectId>> {
    Builder { repo, items }.tree(b"", 0, items.len(), None)
}

struct Builder<'a> {
    repo: &'a Repo,
    items: &'a [Item<'a>],
}

impl Builder<'_> {
    /// The tree of directory `prefix` (empty, or ending in `/`), whose
    /// items are `start..end`, with its cached tree if the index has one.
    fn tree(
        &self,
        prefix: &[u8],
        start: usize,
        end: usize,
        cached: Option<&gix::index::extension::Tree>,
    ) -> Result<Option<ObjectId>> {
        if let Some(cached) = cached {
            let covers = cached.num_entries.is_some_and(|n| n as usize == end - start);
            if covers && self.repo.gix.has_object(cached.id) {
                return Ok(Some(cached.id));
            }
        }
        let items = self.items;
        let mut tree = gix::objs::Tree::empty();
        let mut at = start;
        while at < end {
            let path = items[at].path;
            let Some(rest) = path.get(prefix.len()..) else { return Ok(None) };
            match rest.iter().position(|b| *b == b'/') {
                Some(slash) => {
                    let name = &rest[..slash];
                    let sub_prefix = &path[..prefix.len() + slash + 1];
                    let sub_end = at + items[at..end].partition_point(|i| i.path.starts_with(sub_prefix));
                    let sub_cached = cached.and_then(|c| c.children.iter().find(|t| t.name.as_slice() == name));
                    let Some(id) = self.tree(sub_prefix, at, sub_end, sub_cached)? else { return Ok(None) };
                    tree.entries.push(Entry { mode: EntryKind::Tree.into(), filename: name.into(), oid: id });
                    at = sub_end;
                }
                None => {
                    let item = &items[at];
                    tree.entries.push(Entry { mode: item.kind.into(), filename: rest.into(), oid: item.id });
                    at += 1;
                }
            }
        }
        tree.entries.sort();
        let mut bytes = Vec::new();
        gix::objs::WriteTo::write_to(&tree, &mut bytes)?;
        let id = gix::objs::compute_hash(self.repo.gix.object_hash(), gix::objs::Kind::Tree, &bytes)?;
        if self.repo.gix.has_object(id) {
            return Ok(Some(id));
        }
        // A new tree: git would refuse one naming a blob it does not have.
        let blobs_present = tree.entries.iter().all(|e| e.mode.is_commit() || self.repo.gix.has_object(e.oid));
        if !blobs_present {
            return Ok(None);
        }
        Ok(Some(self.repo.gix.write_object(&tree)?.detach()))
    }
}
