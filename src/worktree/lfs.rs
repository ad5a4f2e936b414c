//! Git LFS. Files under the LFS filter are pointers in the index and in
//! the snapshot's trees, and their content is a file under
//! `.git/lfs/objects`. The objects a snapshot needs travel with it, as
//! blobs of one extra commit in the same git push or fetch (compressed,
//! streamed, over the handoff's own connection, never through an LFS
//! server); the destination checks each against its sha256 before putting
//! it in its own LFS storage. A file whose working copy is the pointer
//! itself (its content was never fetched) stays a pointer there.

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use gix::bstr::{BString, ByteSlice};
use gix::ObjectId;
use sha2::Digest;

use crate::error::{Error, Result};
use crate::git::Git;
use crate::objects::parse_id;
use crate::repo::Repo;
use crate::worktree::state::{parse_pointer, parse_raw_diff, valid_oid, Pointer, MAX_POINTER};

/// Does this repository use Git LFS? (It has LFS storage, or its root
/// `.gitattributes` puts files under the LFS filter.)
pub fn in_use(repo: &Repo) -> bool {
    if storage(repo).join("objects").is_dir() {
        return true;
    }
    repo.workdir()
        .ok()
        .and_then(|root| std::fs::read(root.join(".gitattributes")).ok())
        .is_some_and(|attributes| attributes.find(b"filter=lfs").is_some())
}

/// Where this repository keeps LFS objects (`lfs.storage`, else `<common git dir>/lfs`).
pub fn storage(repo: &Repo) -> PathBuf {
    let common = repo.common_dir();
    match repo.config_string("lfs.storage").filter(|s| !s.trim().is_empty()) {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => common.join(dir),
        None => common.join("lfs"),
    }
}

fn object_path(storage: &Path, oid: &str) -> PathBuf {
    storage.join("objects").join(&oid[0..2]).join(&oid[2..4]).join(oid)
}

pub fn has_object(repo: &Repo, pointer: &Pointer) -> bool {
    std::fs::metadata(object_path(&storage(repo), &pointer.oid)).is_ok_and(|m| m.len() == pointer.size)
}

/// Refuse unless git-lfs is installed here and set up as git's filter.
pub fn check_available(repo: &Repo, machine: &str) -> Result<()> {
    let configured = ["filter.lfs.process", "filter.lfs.smudge"]
        .iter()
        .any(|key| repo.config_string(key).is_some_and(|v| v.contains("git-lfs")));
    let runs = std::process::Command::new("git-lfs")
        .arg("version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if configured && runs {
        return Ok(());
    }
    let what = if runs { "is not set up for this user" } else { "is not installed" };
    Err(Error::refused("lfs_missing", format!("the repository uses Git LFS, but git-lfs {what} on {machine}"))
        .with_help(format!("install git-lfs on {machine} and run `git lfs install` there, then try again")))
}

/// Tracked files under the LFS filter whose working copy is a pointer.
pub fn unsmudged_tracked(repo: &Repo) -> Result<Vec<BString>> {
    let root = repo.workdir()?;
    let mut found = Vec::new();
    for (path, _) in lfs_entries(&repo.git())? {
        let file = root.join(std::ffi::OsStr::from_bytes(&path));
        let small = std::fs::symlink_metadata(&file).is_ok_and(|m| m.is_file() && m.len() <= MAX_POINTER as u64);
        if small && parse_pointer(&std::fs::read(&file)?).is_some() {
            found.push(path);
        }
    }
    Ok(found)
}

/// Index entries under the LFS filter, with their blobs (of the index `git` reads).
fn lfs_entries(git: &Git) -> Result<Vec<(BString, ObjectId)>> {
    let out = git.run(["ls-files", "-s", "-z", "--", ":(attr:filter=lfs)"])?;
    let mut entries = Vec::new();
    for record in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        // `<mode> <blob> <stage>\t<path>`
        let Some(tab) = record.iter().position(|b| *b == b'\t') else { continue };
        let fields: Vec<&[u8]> = record[..tab].split(|b| *b == b' ').collect();
        let (Some(mode), Some(blob)) = (fields.first(), fields.get(1)) else { continue };
        if *mode != b"100644" && *mode != b"100755" {
            continue;
        }
        if let Ok(id) = ObjectId::from_hex(blob) {
            entries.push((record[tab + 1..].as_bstr().to_owned(), id));
        }
    }
    Ok(entries)
}

/// The LFS objects a snapshot of the worktree `worktree` refers to and this
/// machine has: pointers of the index, of the changed files and of HEAD.
pub fn needed(
    worktree: &Repo,
    head: Option<ObjectId>,
    index_tree: ObjectId,
    worktree_tree: ObjectId,
) -> Result<Vec<Pointer>> {
    if !in_use(worktree) {
        return Ok(Vec::new());
    }
    let git = worktree.git();
    let mut blobs: Vec<ObjectId> = lfs_entries(&git)?.into_iter().map(|(_, id)| id).collect();
    let mut sides = vec![(index_tree, worktree_tree)];
    if let Some(head) = head {
        let head_tree = worktree.gix.find_commit(head)?.tree_id()?.detach();
        sides.push((head_tree, index_tree));
    }
    for (from, to) in sides {
        if from == to {
            continue;
        }
        let diff = git.run(["diff-tree", "-r", "-z", "--no-renames", &from.to_string(), &to.to_string()])?;
        for change in parse_raw_diff(&diff)? {
            blobs.extend(change.old.into_iter().chain(change.new).map(|(_, id)| id));
        }
    }
    blobs.sort();
    blobs.dedup();
    let mut pointers = Vec::new();
    for blob in blobs {
        let Ok(header) = worktree.gix.find_header(blob) else { continue };
        if header.kind() != gix::objs::Kind::Blob || header.size() > MAX_POINTER as u64 {
            continue;
        }
        if let Some(pointer) = parse_pointer(&worktree.gix.find_blob(blob)?.data) {
            if has_object(worktree, &pointer) {
                pointers.push(pointer);
            }
        }
    }
    pointers.sort();
    pointers.dedup();
    Ok(pointers)
}

/// The list as a snapshot stores it: `<oid> <size>` lines.
pub fn encode_list(pointers: &[Pointer]) -> Vec<u8> {
    pointers.iter().map(|p| format!("{} {}\n", p.oid, p.size)).collect::<String>().into_bytes()
}

pub fn decode_list(data: &[u8]) -> Result<Vec<Pointer>> {
    let bad = || Error::failed("bad_snapshot", "the snapshot's list of LFS objects is damaged");
    let text = std::str::from_utf8(data).map_err(|_| bad())?;
    text.lines()
        .map(|line| {
            let (oid, size) = line.split_once(' ').ok_or_else(bad)?;
            let size = size.parse().map_err(|_| bad())?;
            if !valid_oid(oid) {
                return Err(bad());
            }
            Ok(Pointer { oid: oid.to_owned(), size })
        })
        .collect()
}

/// A commit whose tree holds the content of `objects` as blobs named by
/// their oid, written into `repo`: what carries them over git's connection.
pub fn pack(repo: &Repo, objects: &[Pointer]) -> Result<Option<ObjectId>> {
    if objects.is_empty() {
        return Ok(None);
    }
    let storage = storage(repo);
    let mut list = Vec::new();
    for object in objects {
        list.extend_from_slice(object_path(&storage, &object.oid).as_os_str().as_bytes());
        list.push(b'\n');
    }
    // git streams large files straight into a pack; gix would hold each in memory.
    let out = Git::new(repo.common_dir(), None)
        .run_with_input(["hash-object", "-w", "--no-filters", "--stdin-paths"], Some(&list))?;
    let ids: Vec<&str> = std::str::from_utf8(&out).unwrap_or_default().lines().collect();
    if ids.len() != objects.len() {
        return Err(Error::failed("lfs_pack", "git hash-object did not store every LFS object"));
    }
    let mut tree = repo.gix.edit_tree(ObjectId::empty_tree(repo.gix.object_hash()))?;
    for (object, id) in objects.iter().zip(ids) {
        let id = parse_id(id)?;
        tree.upsert(object.oid.as_str(), gix::object::tree::EntryKind::Blob, id)?;
    }
    let tree = tree.write()?.detach();
    let signature = gix::actor::Signature {
        name: "git-codex-handoff".into(),
        email: "git-codex-handoff@localhost".into(),
        time: gix::date::Time::now_utc(),
    };
    let commit = gix::objs::Commit {
        tree,
        parents: Default::default(),
        author: signature.clone(),
        committer: signature,
        encoding: None,
        message: format!("codex-handoff: {} Git LFS objects\n", objects.len()).into(),
        extra_headers: Vec::new(),
    };
    Ok(Some(repo.gix.write_object(&commit)?.detach()))
}

/// Put the LFS objects carried by commit `carrier` into this repository's
/// LFS storage. Each must be one the snapshot lists (`expected`), and its
/// bytes must hash to its oid: a carrier comes from the other machine.
pub fn unpack(repo: &Repo, carrier: ObjectId, expected: &[Pointer]) -> Result<usize> {
    let storage = storage(repo);
    let tree = repo.gix.find_commit(carrier)?.tree()?;
    let git = Git::new(repo.common_dir(), None);
    let mut count = 0;
    for entry in tree.iter() {
        let entry = entry
            .map_err(|e| Error::failed("bad_carrier", "the LFS objects that arrived are damaged").with_source(e))?;
        let name = entry.filename().to_str_lossy().into_owned();
        let Some(pointer) = expected.iter().find(|p| p.oid == name) else {
            return Err(Error::failed(
                "bad_carrier",
                format!("an LFS object that arrived ({name}) is not one the snapshot needs"),
            ));
        };
        if has_object(repo, pointer) {
            continue;
        }
        // The size the snapshot declares is the blob's, and within the ceiling, before a byte is written.
        let size = repo.gix.find_header(entry.object_id())?.size();
        if size != pointer.size {
            return Err(Error::failed(
                "bad_carrier",
                format!("the LFS object {} that arrived is {size} bytes, not {}", pointer.oid, pointer.size),
            ));
        }
        crate::intake::Ceiling::of(repo).check(&format!("the Git LFS object {}", pointer.oid), size)?;
        let target = object_path(&storage, &pointer.oid);
        let tmp_dir = storage.join("tmp");
        std::fs::create_dir_all(&tmp_dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&tmp_dir)?;
        let mut child = git
            .command(["cat-file", "blob", &entry.object_id().to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        if let Some(mut out) = child.stdout.take() {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = out.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                tmp.write_all(&buf[..n])?;
                size += n as u64;
            }
        }
        let ok = child.wait()?.success();
        let digest: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if !ok || digest != pointer.oid || size != pointer.size {
            return Err(Error::failed(
                "bad_carrier",
                format!("the LFS object {} that arrived does not match its oid", pointer.oid),
            ));
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        tmp.persist(&target).map_err(|e| Error::failed("io", "could not store an LFS object").with_source(e.error))?;
        count += 1;
    }
    Ok(count)
}

/// With `GIT_LFS_SKIP_SMUDGE=1` git-lfs writes every file as its pointer;
/// write the content of those not in `pointers` whose objects are here, so
/// only the files that were pointers at the source stay pointers. A
/// pointer whose object is not here stays a pointer: git-lfs would fetch
/// it from whatever server the snapshot's `.lfsconfig` names.
pub fn smudge_except(repo: &Repo, git: &Git, root: &Path, pointers: &[BString]) -> Result<()> {
    let mut list = Vec::new();
    for (path, blob) in lfs_entries(git)? {
        let missing = repo
            .gix
            .find_header(blob)
            .is_ok_and(|h| h.size() <= MAX_POINTER as u64)
            .then(|| repo.gix.find_blob(blob).ok().and_then(|b| parse_pointer(&b.data)))
            .flatten()
            .is_some_and(|pointer| !has_object(repo, &pointer));
        if pointers.binary_search(&path).is_err() && !missing {
            // checkout-index leaves a file whose stat matches the index alone, even with -f.
            let file = root.join(std::ffi::OsStr::from_bytes(&path));
            if std::fs::symlink_metadata(&file).is_ok_and(|m| m.is_file()) {
                std::fs::remove_file(&file)?;
            }
            list.extend_from_slice(&path);
            list.push(0);
        }
    }
    if !list.is_empty() {
        git.run_with_input(["checkout-index", "-f", "-u", "-z", "--stdin"], Some(&list))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_are_recognised_and_nothing_else() {
        let oid = "e7df6ff47779933d49c19a55cad4346f74140836504e41ea5978480e039cc888";
        let text = format!("version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize 3000\n");
        assert_eq!(parse_pointer(text.as_bytes()), Some(Pointer { oid: oid.into(), size: 3000 }));
        assert_eq!(parse_pointer(b"raw bytes\n"), None);
        let bad_oid = text.replace(oid, "../../etc/passwd");
        assert_eq!(parse_pointer(bad_oid.as_bytes()), None);
        let list = encode_list(&[Pointer { oid: oid.into(), size: 3000 }]);
        assert_eq!(decode_list(&list).unwrap(), vec![Pointer { oid: oid.into(), size: 3000 }]);
        assert!(decode_list(b"../x 1\n").is_err());
        assert!(decode_list(format!("{oid} many\n").as_bytes()).is_err());
    }
}
