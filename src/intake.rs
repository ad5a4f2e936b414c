//! What arrives from the other machine as raw bytes, taken in as git itself
//! would take it in that repository:
//!
//! - a ceiling on every stream (`receive.maxInputSize` where set, else
//!   [`DEFAULT_MAX_INPUT`]), checked against the size announced before a
//!   byte is written, and again by git while the bytes stream;
//! - a pack goes through `git index-pack` or `git unpack-objects` with the
//!   arguments `git receive-pack` (a pack this machine is sent) or `git
//!   fetch` (a pack this machine asked for) would give them: the object
//!   checks of `receive.fsckObjects` / `fetch.fsckObjects` /
//!   `transfer.fsckObjects` with their `receive.fsck.*` / `fetch.fsck.*`
//!   settings (git's fetch and receive-pack do not read `fsck.<msg-id>`),
//!   and the unpack limits;
//! - into a quarantine, as receive-pack does: a directory of its own under
//!   `objects/` whose objects git sees only while checking. What fails a
//!   check is refused with git's own reason, and the quarantine goes with
//!   everything in it; only what passed moves into the object store.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::error::{Error, Result};
use crate::git::Git;
use crate::repo::Repo;

/// The ceiling where `receive.maxInputSize` is not set: 4 GiB.
pub const DEFAULT_MAX_INPUT: u64 = 4 << 30;

/// Which of git's commands would take the pack in here, so whose settings apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taker {
    /// `git receive-pack`: the other machine sends (`receive.*`).
    Receive,
    /// `git fetch`: this machine asked for it (`fetch.*`).
    Fetch,
}

impl Taker {
    fn prefix(self) -> &'static str {
        match self {
            Taker::Receive => "receive",
            Taker::Fetch => "fetch",
        }
    }
}

/// The most bytes one stream may bring into `repo`, and where that figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ceiling {
    /// `u64::MAX`: none (`receive.maxInputSize` set to 0, as git reads it).
    pub bytes: u64,
    /// Set by `receive.maxInputSize` (else the default).
    pub configured: bool,
}

impl Ceiling {
    pub fn of(repo: &Repo) -> Ceiling {
        let config = repo.gix.config_snapshot();
        match config.integer("receive.maxInputSize") {
            Some(n) if n <= 0 => Ceiling { bytes: u64::MAX, configured: true },
            Some(n) => Ceiling { bytes: n as u64, configured: true },
            None => Ceiling { bytes: DEFAULT_MAX_INPUT, configured: false },
        }
    }

    /// Refuse `size` announced bytes of `what` before any is written.
    pub fn check(&self, what: &str, size: u64) -> Result<()> {
        if size <= self.bytes {
            return Ok(());
        }
        let rule = if self.configured {
            format!("receive.maxInputSize ({})", human(self.bytes))
        } else {
            format!("the default ceiling of {} (receive.maxInputSize is not set)", human(self.bytes))
        };
        Err(Error::refused("too_large", format!("refused {what} of {} bytes: over {rule}", size))
            .with_help("raise receive.maxInputSize in the receiving repository if this much is expected"))
    }
}

fn human(bytes: u64) -> String {
    const UNITS: &[(u64, &str)] = &[(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= *unit && bytes.is_multiple_of(*unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes} bytes")
}

/// A reader that fails once more than `left` bytes have been read from it:
/// a stream is checked against its ceiling while it flows, not only before.
pub struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Capped<R> {
    pub fn new(inner: R, ceiling: u64) -> Self {
        Capped { inner, left: ceiling }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "more bytes arrived than the ceiling allows")
        })?;
        Ok(n)
    }
}

/// Objects taken in and checked, not yet in the repository's object store.
pub struct Quarantine {
    dir: Option<tempfile::TempDir>,
    objects: PathBuf,
}

impl Quarantine {
    fn new(repo: &Repo) -> Result<Quarantine> {
        let objects = repo.gix.objects.store_ref().path().to_owned();
        let dir = tempfile::Builder::new()
            .prefix("incoming-")
            .tempdir_in(&objects)
            .map_err(|e| Error::failed("quarantine", "could not make a quarantine for what arrived").with_source(e))?;
        Ok(Quarantine { dir: Some(dir), objects })
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().map_or(self.objects.as_path(), |d| d.path())
    }

    /// The environment under which git sees the quarantined objects beside
    /// the repository's own (and cannot change refs), as receive-pack sets it.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("GIT_OBJECT_DIRECTORY", self.path().as_os_str().to_owned()),
            ("GIT_ALTERNATE_OBJECT_DIRECTORIES", self.objects.as_os_str().to_owned()),
            ("GIT_QUARANTINE_PATH", self.path().as_os_str().to_owned()),
        ]
    }

    /// A git command in `repo` that sees the quarantined objects.
    pub fn git(&self, repo: &Repo, args: &[&str]) -> std::process::Command {
        let mut cmd = Git::new(repo.common_dir(), None).command(args);
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd
    }

    /// Move what passed into the object store, as git's `tmp_objdir_migrate`
    /// does: packs before their indexes (git finds a pack by its index), an
    /// object already there left as it is.
    pub fn migrate(mut self) -> Result<()> {
        let Some(dir) = self.dir.take() else { return Ok(()) };
        migrate_dir(dir.path(), &self.objects)
            .map_err(|e| Error::failed("quarantine", "could not move what arrived into place").with_source(e))?;
        Ok(())
    }
}

fn migrate_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut entries: Vec<(u8, std::fs::DirEntry)> = Vec::new();
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        entries.push((copy_priority(&name), entry));
    }
    entries.sort_by_key(|(priority, entry)| (*priority, entry.file_name()));
    for (_, entry) in entries {
        let name = entry.file_name();
        let (source, target) = (entry.path(), to.join(&name));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::create_dir_all(&target)?;
            migrate_dir(&source, &target)?;
        } else if kind.is_file() && !name.to_string_lossy().starts_with("tmp_") {
            if target.symlink_metadata().is_ok() {
                // Objects are named by their content: the one there is the same.
                std::fs::remove_file(&source)?;
            } else {
                std::fs::rename(&source, &target)?;
            }
        }
    }
    Ok(())
}

/// git's order for moving pack files: `.keep`, `.pack`, `.rev`, `.idx`, then the rest.
fn copy_priority(name: &str) -> u8 {
    if !name.starts_with("pack") {
        return 0;
    }
    for (i, suffix) in [".keep", ".pack", ".rev", ".idx"].iter().enumerate() {
        if name.ends_with(suffix) {
            return i as u8 + 1;
        }
    }
    5
}

/// The `--strict` argument git would pass: `--strict` followed by the
/// `<taker>.fsck.<msg-id>` and `<taker>.fsck.skipList` settings of `repo`,
/// in config order, unknown message ids left out as git leaves them out.
fn strict_arg(repo: &Repo, taker: Taker) -> Result<String> {
    let prefix = taker.prefix();
    let git = Git::new(repo.common_dir(), None);
    let pattern = format!("^{prefix}\\.fsck\\.");
    // Exit 1: nothing set.
    let mut cmd = git.command(["config", "-z", "--type=path", "--get-regexp", &pattern]);
    let listed = crate::git::run_command_exiting(&mut cmd, None, &[0, 1])?;
    let mut known: Option<Vec<String>> = None;
    let mut arg = String::from("--strict");
    for record in listed.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let text = String::from_utf8_lossy(record);
        let Some((key, value)) = text.split_once('\n') else { continue };
        let Some(id) = key.strip_prefix(&format!("{prefix}.fsck.")) else { continue };
        let item = if id == "skiplist" {
            format!("skiplist={value}")
        } else {
            let known = match &known {
                Some(k) => k,
                None => known.insert(fsck_message_ids()?),
            };
            if !known.iter().any(|k| k == id) {
                continue;
            }
            format!("{id}={value}")
        };
        arg.push(if arg.len() == "--strict".len() { '=' } else { ',' });
        arg.push_str(&item);
    }
    Ok(arg)
}

/// The fsck message ids this git knows (lowercase), as `git help --config` lists them.
fn fsck_message_ids() -> Result<Vec<String>> {
    let mut cmd = std::process::Command::new("git");
    cmd.args(["help", "--config"]);
    let out = crate::git::run_command(&mut cmd, None)?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.strip_prefix("fsck."))
        .filter(|id| !id.contains(['<', '.']) && !id.eq_ignore_ascii_case("skiplist"))
        .map(str::to_ascii_lowercase)
        .collect())
}

/// Are objects checked when `taker` takes a pack into `repo`?
pub fn checks_objects(repo: &Repo, taker: Taker) -> bool {
    let config = repo.gix.config_snapshot();
    config
        .boolean(format!("{}.fsckObjects", taker.prefix()).as_str())
        .or_else(|| config.boolean("transfer.fsckObjects"))
        .unwrap_or(false)
}

/// A pack at least this large is kept as it came, whatever its count of objects.
const KEEP_FROM: u64 = 4 << 20;

fn unpack_limit(repo: &Repo, taker: Taker) -> i64 {
    let config = repo.gix.config_snapshot();
    config
        .integer(format!("{}.unpackLimit", taker.prefix()).as_str())
        .filter(|n| *n >= 0)
        .or_else(|| config.integer("transfer.unpackLimit").filter(|n| *n >= 0))
        .unwrap_or(100)
}

/// Take a pack of `size` announced bytes from `bytes` into a quarantine of
/// `repo`, as `taker` would: refused before a byte is written when over
/// the ceiling, and by git when more arrives or an object fails its
/// checks (with git's own words). `what` names the pack in messages.
pub fn take_pack(repo: &Repo, bytes: &mut dyn Read, size: u64, taker: Taker, what: &str) -> Result<Quarantine> {
    let ceiling = Ceiling::of(repo);
    ceiling.check(what, size)?;
    let mut header = [0u8; 12];
    bytes.read_exact(&mut header).map_err(|_| Error::failed("not_a_pack", format!("{what} is not a pack")))?;
    if &header[..4] != b"PACK" {
        return Err(Error::failed("not_a_pack", format!("{what} is not a pack")));
    }
    let objects = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    let strict = checks_objects(repo, taker);
    // receive-pack and fetch unpack a pack of few objects loosely; fetch
    // always keeps a pack it checks (index-pack's checks are the ones it wants).
    // A pack of big files is kept too: unpacking would compress every byte
    // again, and index-pack gives the same checks.
    let loose =
        i64::from(objects) < unpack_limit(repo, taker) && !(strict && taker == Taker::Fetch) && size < KEEP_FROM;
    // Blobs over the threshold stream through index-pack instead of sitting in its memory.
    let mut args: Vec<String> = vec!["-c".into(), format!("core.bigFileThreshold={}", crate::blob_pack::PACK_FROM)];
    if loose {
        args.extend(["unpack-objects".into(), "-q".into()]);
    } else {
        args.extend(["index-pack".into(), "--stdin".into(), "--fix-thin".into()]);
    }
    if strict {
        args.push(strict_arg(repo, taker)?);
    }
    if ceiling.bytes != u64::MAX {
        args.push(format!("--max-input-size={}", ceiling.bytes));
    }
    let quarantine = Quarantine::new(repo)?;
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = quarantine.git(repo, &argv);
    cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::failed("git_missing", "could not run git").with_source(e))?;
    let mut stdin = child.stdin.take().ok_or_else(|| Error::failed("git", "no pipe to git"))?;
    let mut rest = Capped::new(bytes.take(size.saturating_sub(12)), ceiling.bytes.saturating_sub(12));
    let copied = stdin.write_all(&header).and_then(|()| std::io::copy(&mut rest, &mut stdin));
    drop(stdin);
    let output = child.wait_with_output()?;
    if !output.status.success() {
        // git's reason comes first: a pipe it closed is only the consequence.
        let said = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        let kind = if said.contains("fsck") || said.contains("maximum allowed size") {
            crate::error::Kind::Refused
        } else {
            crate::error::Kind::Failed
        };
        return Err(Error::new(kind, "pack_refused", format!("{what} was refused: git {} said: {said}", args[2]))
            .with_help("nothing of it was kept; the sending side may be damaged or hostile"));
    }
    let copied = copied.map_err(|e| Error::failed("connection_lost", format!("{what} ended early")).with_source(e))?;
    if copied + 12 != size {
        return Err(Error::failed("connection_lost", format!("{what} ended after {} of {size} bytes", copied + 12)));
    }
    Ok(quarantine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_reads_fail_past_the_ceiling() {
        let data = [7u8; 100];
        let mut ok = Capped::new(&data[..], 100);
        assert_eq!(std::io::copy(&mut ok, &mut std::io::sink()).unwrap(), 100);
        let mut over = Capped::new(&data[..], 99);
        assert!(std::io::copy(&mut over, &mut std::io::sink()).is_err());
    }

    #[test]
    fn ceilings_name_their_rule() {
        let default = Ceiling { bytes: DEFAULT_MAX_INPUT, configured: false };
        assert!(default.check("x", DEFAULT_MAX_INPUT).is_ok());
        let err = default.check("a transcript", DEFAULT_MAX_INPUT + 1).unwrap_err();
        assert_eq!((err.exit_code(), err.code.as_ref()), (4, "too_large"));
        assert!(err.message.contains("4 GiB") && err.message.contains("receive.maxInputSize"), "{}", err.message);
        let set = Ceiling { bytes: 200 << 10, configured: true };
        assert!(set.check("a pack", 300 << 10).unwrap_err().message.contains("receive.maxInputSize (200 KiB)"));
    }

    #[test]
    fn packs_move_before_their_indexes() {
        let mut names = vec!["pack-1.idx", "pack-1.pack", "ab", "pack-1.rev", "pack-1.keep"];
        names.sort_by_key(|n| copy_priority(n));
        assert_eq!(names, ["ab", "pack-1.keep", "pack-1.pack", "pack-1.rev", "pack-1.idx"]);
    }
}
