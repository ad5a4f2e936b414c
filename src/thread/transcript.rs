//! A thread's transcript: the rollout file of a linked Codex thread, or a
//! plain file. It travels inside the thread-data commit, streamed in and out
//! (a large transcript never sits in memory), with its sha256 and size in
//! the note, verified on arrival.

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use gix::ObjectId;
use sha2::{Digest, Sha256};

use crate::codex;
use crate::codex::relocate::next_comparable;
use crate::error::{Error, Result};
use crate::repo::Repo;
use crate::thread::state::{is_thread_uuid, ThreadState};
use crate::thread::store::{self, TranscriptBlob};

/// Where this machine keeps the thread's transcript: for a Codex thread
/// its rollout (found by the thread id), else a file beside the repository.
/// No path a note names is used: a note may come from another machine.
pub fn local_path(repo: &Repo, state: &ThreadState) -> Result<PathBuf> {
    match &state.transcript.codex_session {
        Some(id) => match codex::rollout::locate(id)? {
            Some(path) => Ok(path),
            None => Ok(codex::placement::place(id, None)?.path),
        },
        None if is_thread_uuid(&state.uuid) => Ok(repo.private_dir()?.join("transcripts").join(&state.uuid)),
        None => Err(Error::refused("bad_thread", format!("{:?} is not a thread UUID", state.uuid))),
    }
}

/// The size of the thread's transcript on this machine now, if it has one.
pub fn current_size(repo: &Repo, state: &ThreadState) -> Option<u64> {
    let path = local_path(repo, state).ok()?;
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// Read the thread's transcript into the object store, if this machine has
/// one. A compressed Codex rollout is stored decompressed.
pub fn capture(repo: &Repo, state: &ThreadState) -> Result<Option<TranscriptBlob>> {
    let path = local_path(repo, state)?;
    if !path.is_file() {
        return Ok(None);
    }
    if state.transcript.codex_session.is_some() {
        return store_rollout(repo, &path).map(Some);
    }
    store_file(repo, &path).map(Some)
}

/// Store a Codex rollout (decompressed if it is compressed) as a blob.
pub fn store_rollout(repo: &Repo, path: &Path) -> Result<TranscriptBlob> {
    codex::rollout::check(path)?;
    if codex::rollout::is_compressed(path) {
        let mut plain = tempfile::tempfile_in(repo.private_dir()?)?;
        let size = std::io::copy(&mut codex::rollout::open(path)?, &mut plain)?;
        plain.seek(SeekFrom::Start(0))?;
        return store_stream(repo, path, plain, size, true);
    }
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    store_stream(repo, path, file, size, true)
}

/// The name the Codex thread has in this machine's session index now, else the one recorded.
pub fn current_codex_name(state: &ThreadState) -> Option<String> {
    let id = state.transcript.codex_session.as_deref()?;
    codex::thread_name(id).or_else(|| state.transcript.codex_thread_name.clone())
}

/// Where an arriving Codex thread's rollout will go on this machine, and
/// anything Codex here will do that the plan should say.
pub fn codex_placement(state: &ThreadState) -> Result<Option<codex::placement::Placement>> {
    match &state.transcript.codex_session {
        Some(id) => codex::placement::place(id, None).map(Some),
        None => Ok(None),
    }
}

/// The same for Codex thread `id`, made at `created` (UTC), as the plan shows it.
pub fn codex_placement_of(id: &str, created: Option<&str>) -> Result<codex::placement::Placement> {
    codex::placement::place(id, created)
}

/// When the thread's Codex thread was made (UTC), from this machine's rollout.
pub fn codex_created(repo: &Repo, state: &ThreadState) -> Option<String> {
    state.transcript.codex_session.as_ref()?;
    codex::rollout::meta_of(&local_path(repo, state).ok()?)?.timestamp
}

/// Hashes and counts what passes through, and looks for a segmented rollout's marker.
struct Tee<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
    /// The last bytes read, so a marker split between two reads is found.
    tail: Vec<u8>,
    segmented: bool,
}

impl<R: Read> Tee<R> {
    fn new(inner: R) -> Self {
        Tee { inner, hasher: Sha256::new(), size: 0, tail: Vec::new(), segmented: false }
    }
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let data = &buf[..n];
        self.hasher.update(data);
        self.size += n as u64;
        let marker = codex::rollout::SEGMENT_MARKER;
        let head = &data[..data.len().min(marker.len())];
        self.tail.extend_from_slice(head);
        if memchr::memmem::find(&self.tail, marker).is_some() || memchr::memmem::find(data, marker).is_some() {
            self.segmented = true;
        }
        self.tail.clear();
        self.tail.extend_from_slice(&data[data.len().saturating_sub(marker.len())..]);
        Ok(n)
    }
}

pub fn store_file(repo: &Repo, path: &Path) -> Result<TranscriptBlob> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    store_stream(repo, path, file, size, false)
}

/// Store `size` bytes of `input` (read from `path`) as a blob, streamed.
fn store_stream(repo: &Repo, path: &Path, input: impl Read, size: u64, rollout: bool) -> Result<TranscriptBlob> {
    use gix::objs::Write as _;
    let mut tee = Tee::new(BufReader::with_capacity(256 * 1024, input).take(size));
    let id = if size >= crate::blob_pack::PACK_FROM && repo.gix.object_hash() == gix::hash::Kind::Sha1 {
        // Packed once here, it crosses to the other machine as it is.
        let objects = repo.gix.objects.store_ref().path().to_owned();
        crate::blob_pack::write_blob(&objects, &mut tee, size, None, |id| repo.gix.has_object(id)).map_err(|e| {
            Error::failed("transcript_store", format!("could not store {}: {}", path.display(), e.message))
        })?
    } else {
        repo.gix.objects.write_stream(gix::objs::Kind::Blob, size, &mut tee).map_err(|e| {
            Error::failed("transcript_store", format!("could not store {}", path.display())).with_source(e)
        })?
    };
    if rollout && tee.segmented {
        return Err(codex::rollout::segmented(path));
    }
    Ok(TranscriptBlob { id, sha256: hex(&tee.hasher.finalize()), size: tee.size })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The thread's transcript blob and its size, when it is large enough to
/// cross beside the snapshot rather than inside git's pack.
pub fn travelling(repo: &Repo, state: &ThreadState) -> Result<Option<(ObjectId, u64)>> {
    if repo.gix.object_hash() != gix::hash::Kind::Sha1 {
        return Ok(None);
    }
    let blob = store::transcript_blob(repo, store::parse_hex(&state.data_commit)?)?;
    let size = repo.gix.find_header(blob)?.size();
    Ok((size >= crate::blob_pack::PACK_FROM).then_some((blob, size)))
}

/// A blob's bytes, streamed out of the repository by git.
pub struct BlobStream {
    child: std::process::Child,
    out: std::process::ChildStdout,
}

impl BlobStream {
    pub fn open(repo: &Repo, blob: ObjectId) -> Result<BlobStream> {
        let (child, out) = open_blob_raw(repo, blob)?;
        Ok(BlobStream { child, out })
    }
}

impl Read for BlobStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.out.read(buf)
    }
}

impl Drop for BlobStream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Store `size` bytes of `input`, which must be blob `expected`, as a
/// pack of its own (a transcript that came beside a snapshot).
pub fn store_arriving(repo: &Repo, input: &mut dyn Read, size: u64, expected: ObjectId) -> Result<()> {
    crate::intake::Ceiling::of(repo).check("a transcript", size)?;
    let objects = repo.gix.objects.store_ref().path().to_owned();
    crate::blob_pack::write_blob(&objects, input, size, Some(expected), |id| repo.gix.has_object(id))?;
    Ok(())
}

/// A commit that holds only the transcript blob `blob`, made the same on
/// both machines from the blob and `time` alone. With it at a ref here, a
/// fetch tells the other side it has it, and git leaves the blob (which
/// came beside the fetch) out of the pack.
pub fn carrier(repo: &Repo, blob: ObjectId, time: i64) -> Result<ObjectId> {
    let mut tree = repo.gix.edit_tree(ObjectId::empty_tree(repo.gix.object_hash()))?;
    tree.upsert(store::TRANSCRIPT_FILE, gix::object::tree::EntryKind::Blob, blob)?;
    let tree = tree.write()?.detach();
    let signature = gix::actor::Signature {
        name: "git-codex-handoff".into(),
        email: "git-codex-handoff@localhost".into(),
        time: gix::date::Time { seconds: time, offset: 0 },
    };
    crate::objects::write_commit(repo, &signature, "transcript in transit\n".into(), tree, Vec::new())
}

/// Stream a blob out of the repository with git. A large blob in a pack is
/// streamed only when it is over `core.bigFileThreshold`, else read whole first.
fn open_blob_raw(repo: &Repo, blob: ObjectId) -> Result<(std::process::Child, std::process::ChildStdout)> {
    let mut cmd = crate::git::Git::new(repo.common_dir(), None).command([
        "-c",
        "core.bigFileThreshold=1m",
        "cat-file",
        "blob",
        &blob.to_string(),
    ]);
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).stdin(std::process::Stdio::null());
    let mut child = cmd.spawn()?;
    let out = child.stdout.take().ok_or_else(|| Error::failed("git", "git cat-file gave no output"))?;
    Ok((child, out))
}

fn open_blob(repo: &Repo, blob: ObjectId) -> Result<(std::process::Child, BufReader<std::process::ChildStdout>)> {
    let (child, out) = open_blob_raw(repo, blob)?;
    Ok((child, BufReader::with_capacity(256 * 1024, out)))
}

/// Refuse, before anything changes, an incoming Codex rollout that does
/// not extend this machine's copy (the conversation went on here too). The
/// working-directory fields differ by design and are left out of the comparison.
pub fn check_incoming(repo: &Repo, state: &ThreadState, blob: ObjectId) -> Result<()> {
    let Some(placement) = codex_placement(state)? else { return Ok(()) };
    let Some(current) = placement.current else { return Ok(()) };
    if unchanged_since_it_left(repo, &state.uuid, &current)? {
        return Ok(());
    }
    let mut mine = codex::rollout::open(&current)?;
    let (mut child, mut theirs) = open_blob(repo, blob)?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut lacking = 0usize;
    loop {
        let Some(here) = next_comparable(&mut mine, &mut a)? else { break };
        if lacking == 0 {
            match next_comparable(&mut theirs, &mut b)? {
                Some(incoming) if incoming == here => continue,
                _ => {}
            }
        }
        lacking += 1;
    }
    drop(theirs);
    let _ = child.kill();
    let _ = child.wait();
    if lacking > 0 {
        let id = state.transcript.codex_session.as_deref().unwrap_or_default();
        return Err(Error::refused(
            "transcript_conflict",
            format!(
                "the Codex thread of thread #{} \"{}\" went on here too: {lacking} line(s) of {} are not in the incoming copy (Codex thread {id})",
                state.number,
                state.title,
                current.display()
            ),
        )
        .with_help(
            "the conversation went on on both machines; keep one (move the other file away), then hand off again",
        ));
    }
    Ok(())
}

/// Write the transcript of `state` (blob `blob`) where this machine keeps
/// it, atomically, verifying size and sha256. A Codex rollout gets its
/// working-directory fields moved to `worktree` (every other byte as it
/// came) and goes where `codex::placement` says.
pub fn install(repo: &Repo, state: &ThreadState, blob: ObjectId, worktree: &Path) -> Result<PathBuf> {
    // The size the note declares is the blob's, and within the ceiling, before a byte is written.
    let size = repo.gix.find_header(blob)?.size();
    if size != state.transcript.size {
        return Err(Error::failed(
            "transcript_corrupt",
            format!(
                "the transcript of thread {} is {size} bytes, but its note says {}",
                state.uuid, state.transcript.size
            ),
        )
        .with_help("run the handoff again"));
    }
    crate::intake::Ceiling::of(repo).check("a transcript", size)?;
    let (mut child, stdout) = open_blob_raw(repo, blob)?;
    let mut reader = BufReader::with_capacity(256 * 1024, Tee::new(stdout));
    let verify = |tee: &Tee<std::process::ChildStdout>| {
        let sha256 = hex(&tee.hasher.clone().finalize());
        if tee.size != state.transcript.size || sha256 != state.transcript.sha256 {
            return Err(Error::failed(
                "transcript_corrupt",
                format!(
                    "the transcript of thread {} arrived damaged ({} bytes, sha256 {sha256})",
                    state.uuid, tee.size
                ),
            )
            .with_help("run the handoff again"));
        }
        Ok(())
    };
    let path = match &state.transcript.codex_session {
        Some(id) => {
            // The first line says when the thread was made, which names a new file.
            let mut first = Vec::new();
            codex::relocate::read_line_limited(&mut reader, &mut first, codex::relocate::LINE_LIMIT)?;
            let meta = codex::rollout::read_meta(&mut first.as_slice());
            if let Some(meta) = &meta {
                if !meta.id.eq_ignore_ascii_case(id) {
                    return Err(Error::failed(
                        "transcript_corrupt",
                        format!("the rollout of thread {} belongs to Codex thread {}, not {id}", state.uuid, meta.id),
                    ));
                }
            }
            let placement = codex::placement::place(id, meta.as_ref().and_then(|m| m.timestamp.as_deref()))?;
            let relocation = codex::relocate::Relocation {
                from: state.worktree.as_deref().map(PathBuf::from),
                to: worktree.to_path_buf(),
                fallback_cwd: join_nonempty(worktree, &state.subdirectory),
            };
            codex::placement::write(&placement, |out| {
                let mut input = first.as_slice().chain(&mut reader);
                codex::relocate::relocate(&mut input, out, &relocation)?;
                finish(&mut child)?;
                verify(reader.get_ref())
            })?;
            if let Some(name) = &state.transcript.codex_thread_name {
                codex::record_thread_name(id, name)?;
            }
            placement.path
        }
        None => {
            let path = local_path(repo, state)?;
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
            std::fs::create_dir_all(&dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
            std::io::copy(&mut reader, tmp.as_file_mut())?;
            finish(&mut child)?;
            verify(reader.get_ref())?;
            tmp.as_file().sync_all()?;
            tmp.persist(&path)
                .map_err(|e| Error::failed("io", format!("could not write {}", path.display())).with_source(e))?;
            path
        }
    };
    Ok(path)
}

/// Is this machine's rollout `current` still exactly what this machine
/// recorded of it when the thread last left here (same size and sha256)?
/// Then the conversation did not go on here, and any incoming copy may
/// replace it; no line-by-line comparison is needed.
fn unchanged_since_it_left(repo: &Repo, uuid: &str, current: &Path) -> Result<bool> {
    let Some(thread) = store::load(repo, uuid)? else { return Ok(false) };
    let recorded = &thread.state.transcript;
    // (A compressed file's size on disk says nothing of its content's.)
    let size_differs = !codex::rollout::is_compressed(current)
        && std::fs::metadata(current).map(|m| m.len()).ok() != Some(recorded.size);
    if recorded.sha256.is_empty() || size_differs {
        return Ok(false);
    }
    let mut tee = Tee::new(codex::rollout::open(current)?);
    std::io::copy(&mut tee, &mut std::io::sink())?;
    Ok(tee.size == recorded.size && hex(&tee.hasher.finalize()) == recorded.sha256)
}

fn finish(child: &mut std::process::Child) -> Result<()> {
    if !child.wait()?.success() {
        return Err(Error::failed("transcript_corrupt", "the transcript could not be read from the repository")
            .with_help("run the handoff again"));
    }
    Ok(())
}

/// `root/sub`, or `root` itself for an empty `sub` (`join("")` would add a
/// trailing slash, and Codex matches a working directory exactly) or one
/// that would leave `root` (it comes from a note).
fn join_nonempty(root: &Path, sub: &str) -> PathBuf {
    let inside = Path::new(sub).components().all(|c| matches!(c, std::path::Component::Normal(_)));
    if sub.is_empty() || !inside {
        root.to_path_buf()
    } else {
        root.join(sub)
    }
}
