//! A thread's transcript: the Codex rollout file of a linked session, or a
//! plain file. It travels inside the thread-data commit, streamed in and out
//! (a large transcript never sits in memory), with its sha256 and size in
//! the note, verified on arrival.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use gix::ObjectId;
use sha2::{Digest, Sha256};

use crate::codex;
use crate::error::{Error, Result};
use crate::repo::Repo;
use crate::thread::state::{is_thread_uuid, ThreadState};

#[derive(Debug, Clone)]
pub struct TranscriptBlob {
    pub id: ObjectId,
    pub sha256: String,
    pub size: u64,
}

/// Where this machine keeps the thread's transcript. The names come from a
/// note, which may have come from another machine: they are checked against
/// the folder they must stay in.
pub fn local_path(repo: &Repo, state: &ThreadState) -> Result<PathBuf> {
    match &state.transcript.codex_rollout {
        Some(relative) => {
            let session = state.transcript.codex_session.as_deref().unwrap_or_default();
            codex::rollout::checked_location(&codex::codex_home()?.join("sessions"), relative, session)
        }
        None if is_thread_uuid(&state.uuid) => Ok(repo.private_dir()?.join("transcripts").join(&state.uuid)),
        None => Err(Error::refused("bad_thread", format!("{:?} is not a thread UUID", state.uuid))),
    }
}

/// The size of the thread's transcript on this machine now, if it has one.
pub fn current_size(repo: &Repo, state: &ThreadState) -> Option<u64> {
    let path = local_path(repo, state).ok()?;
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// Read the thread's transcript into the object store, if this machine has one.
pub fn capture(repo: &Repo, state: &ThreadState) -> Result<Option<TranscriptBlob>> {
    let path = local_path(repo, state)?;
    if !path.is_file() {
        return Ok(None);
    }
    if state.transcript.codex_session.is_some() {
        codex::rollout::check(&path)?;
    }
    store_file(repo, &path).map(Some)
}

/// Hashes and counts what passes through.
struct Tee<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

pub fn store_file(repo: &Repo, path: &Path) -> Result<TranscriptBlob> {
    use gix::objs::Write as _;
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut tee = Tee { inner: BufReader::new(file).take(size), hasher: Sha256::new(), size: 0 };
    let id =
        repo.gix.objects.write_stream(gix::objs::Kind::Blob, size, &mut tee).map_err(|e| {
            Error::failed("transcript_store", format!("could not store {}", path.display())).with_source(e)
        })?;
    Ok(TranscriptBlob { id, sha256: hex(&tee.hasher.finalize()), size: tee.size })
}

pub fn empty(repo: &Repo) -> Result<TranscriptBlob> {
    let id = repo.gix.write_blob(b"")?.detach();
    Ok(TranscriptBlob { id, sha256: hex(&Sha256::digest(b"")), size: 0 })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Stream a blob out of the repository with git (which streams large blobs).
fn open_blob(repo: &Repo, blob: ObjectId) -> Result<(std::process::Child, BufReader<std::process::ChildStdout>)> {
    let mut cmd = crate::git::Git::new(repo.common_dir(), None).command(["cat-file", "blob", &blob.to_string()]);
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).stdin(std::process::Stdio::null());
    let mut child = cmd.spawn()?;
    let out = BufReader::new(child.stdout.take().expect("stdout was piped"));
    Ok((child, out))
}

/// Refuse, before anything changes, an incoming Codex transcript that does
/// not extend this machine's copy (the conversation went on here too).
pub fn check_incoming(repo: &Repo, state: &ThreadState, blob: ObjectId) -> Result<()> {
    if state.transcript.codex_session.is_none() {
        return Ok(());
    }
    let path = local_path(repo, state)?;
    let Ok(existing) = std::fs::File::open(&path) else { return Ok(()) };
    let mut mine = BufReader::new(existing);
    let (mut child, mut theirs) = open_blob(repo, blob)?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut line_no = 0usize;
    let conflict = loop {
        a.clear();
        b.clear();
        let got_mine = mine.read_until(b'\n', &mut a)?;
        let got_theirs = theirs.read_until(b'\n', &mut b)?;
        line_no += 1;
        if got_mine == 0 {
            break false;
        }
        if got_theirs == 0 {
            break true;
        }
        // The first line differs by design (each machine's cwd); the rest must match.
        let same = if line_no == 1 { true } else { trim_newline(&a) == trim_newline(&b) };
        if !same {
            break true;
        }
    };
    drop(theirs);
    let _ = child.kill();
    let _ = child.wait();
    if conflict {
        return Err(Error::refused(
            "transcript_conflict",
            format!("the Codex session here ({}) has lines the incoming conversation lacks", path.display()),
        )
        .with_help(
            "the conversation went on on both machines; keep one (move the other file away), then hand off again",
        ));
    }
    Ok(())
}

fn trim_newline(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

/// The session's working directory in the new worktree: the same place
/// relative to the worktree root as on the machine it came from.
fn moved_cwd(first_line: &[u8], state: &ThreadState, worktree: &Path) -> PathBuf {
    let old_cwd = codex::rollout::meta_cwd(first_line).map(PathBuf::from);
    let relative = match (old_cwd, state.worktree.as_deref().map(Path::new)) {
        (Some(cwd), Some(root)) => cwd.strip_prefix(root).map(Path::to_path_buf).ok(),
        _ => None,
    }
    .unwrap_or_else(|| PathBuf::from(&state.subdirectory));
    // `join("")` would add a trailing slash, and Codex matches cwd exactly.
    if relative.as_os_str().is_empty() {
        worktree.to_path_buf()
    } else {
        worktree.join(relative)
    }
}

/// Write the transcript of `state` (blob `blob`) where this machine keeps it,
/// atomically, verifying size and sha256. A Codex session gets `cwd` (and its
/// git fields) rewritten for the new worktree; every other line is byte-identical.
pub fn install(repo: &Repo, state: &ThreadState, blob: ObjectId, worktree: &Path) -> Result<PathBuf> {
    let path = local_path(repo, state)?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir)?;
    // Checked again now that the folders exist: nothing may have moved them elsewhere meanwhile.
    let path = local_path(repo, state)?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    let (mut child, mut reader) = open_blob(repo, blob)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    {
        let mut out = std::io::BufWriter::new(tmp.as_file_mut());
        if state.transcript.codex_session.is_some() {
            let mut first = Vec::new();
            reader.read_until(b'\n', &mut first)?;
            hasher.update(&first);
            size += first.len() as u64;
            if !first.is_empty() {
                let cwd = moved_cwd(&first, state, worktree);
                out.write_all(&codex::rollout::rewrite_meta(
                    &first,
                    &cwd,
                    state.branch.as_deref(),
                    state.head.as_deref(),
                )?)?;
            }
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
            out.write_all(&buf[..n])?;
        }
        out.flush()?;
    }
    let status = child.wait()?;
    let sha256 = hex(&hasher.finalize());
    if !status.success() || size != state.transcript.size || sha256 != state.transcript.sha256 {
        return Err(Error::failed(
            "transcript_corrupt",
            format!("the transcript of thread {} arrived damaged ({size} bytes, sha256 {sha256})", state.uuid),
        )
        .with_help("run the handoff again"));
    }
    tmp.as_file().sync_all()?;
    tmp.persist(&path)
        .map_err(|e| Error::failed("io", format!("could not write {}", path.display())).with_source(e))?;
    if let (Some(id), Some(name)) = (&state.transcript.codex_session, &state.transcript.codex_thread_name) {
        codex::record_thread_name(id, name)?;
    }
    Ok(path)
}
