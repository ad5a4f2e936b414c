//! What must hold for any input from the other machine, one function per
//! reader: the helper's request reader and dispatcher (raw bytes beside its
//! requests included), the note parser, the restricted command parser, the
//! rollout name check, a pack taken in as git takes it, and the trust
//! options of `~/.ssh/config` the ssh2 transport reads. Each takes raw
//! bytes and panics only when a property breaks. The property tests call
//! them with generated input and replay `tests/fuzz-corpus/`; the cargo-fuzz
//! targets in `fuzz/` call the same functions.

use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use git_codex_handoff::codex::rollout::{id_of_name, is_relative_for, is_rollout_path_for};
use git_codex_handoff::handoff::helper;
use git_codex_handoff::remote::restricted::{decide, split_words, Allowed};
use git_codex_handoff::thread::state::{is_thread_uuid, ThreadState};
use serde_json::Value;

/// Stands for the saved project's git dir in helper input, so generated
/// requests reach past the project check.
pub const REPO_MARK: &[u8] = b"@R";
/// A thread id that generated input may use (it names no thread there).
pub const THREAD: &str = "8d1c7a52-2b1e-4c8a-9d4e-6f0a1b2c3d4e";
pub const SESSION: &str = "0199f3a2-7b1c-7d2e-9f00-123456789abc";

/// A scratch directory that lives as long as the process.
fn scratch(name: &str) -> PathBuf {
    let base = option_env!("CARGO_TARGET_TMPDIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("codex-handoff-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git").current_dir(dir).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A machine of its own for the helper: HOME with one saved project (a
/// repository with one commit), a worktree root and CODEX_HOME inside the
/// scratch directory, which is also the working directory, so nothing a
/// request names relatively can reach anything else.
pub struct HelperMachine {
    /// The saved project's git dir, as the helper names it.
    pub repo: String,
}

pub fn helper_machine() -> &'static HelperMachine {
    static MACHINE: OnceLock<HelperMachine> = OnceLock::new();
    MACHINE.get_or_init(|| {
        let root = scratch("helper");
        let home = root.join("home");
        let project = root.join("project");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&project).unwrap();
        std::fs::write(
            home.join(".gitconfig"),
            format!(
                "[user]\n\tname = Fuzz\n\temail = fuzz@example.com\n[init]\n\tdefaultBranch = main\n\
                 [codex-handoff]\n\tmachine = fuzzbox\n\tproject = {}\n\tworktreeRoot = {}\n",
                project.display(),
                root.join("worktrees").display()
            ),
        )
        .unwrap();
        // Set once, before any request runs; the other cases read no environment.
        std::env::set_var("HOME", &home);
        std::env::set_var("GIT_CONFIG_NOSYSTEM", "1");
        std::env::set_var("CODEX_HOME", root.join("codex"));
        std::env::set_current_dir(&root).unwrap();
        git(&project, &["init", "-q"]);
        git(&project, &["commit", "-q", "--allow-empty", "-m", "one"]);
        HelperMachine { repo: project.join(".git").to_string_lossy().into_owned() }
    })
}

fn substitute(data: &[u8], mark: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while !rest.is_empty() {
        if rest.starts_with(mark) {
            out.extend_from_slice(with);
            rest = &rest[mark.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// The restricted helper reading `data` as its whole input: it ends (no
/// panic), answers each request with one JSON line, and every refusal
/// carries a documented exit status.
pub fn helper_session(data: &[u8]) {
    helper_answers(data);
}

/// `helper_session`, returning the answers.
pub fn helper_answers(data: &[u8]) -> Vec<Value> {
    // One session at a time: each checks the object store it shares with the others when it ends.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let machine = helper_machine();
    let input = substitute(data, REPO_MARK, machine.repo.as_bytes());
    let mut output = Vec::new();
    let result = helper::serve(&input[..], &mut output, std::io::sink(), true);
    if let Err(err) = result {
        assert!(matches!(err.code.as_ref(), "line_too_long" | "io"), "the helper failed: {err:?}");
    }
    // A refused or failed stream leaves nothing behind: no quarantine, no temporary pack.
    let objects = Path::new(&machine.repo).join("objects");
    let left: Vec<String> = std::fs::read_dir(&objects)
        .into_iter()
        .flatten()
        .chain(std::fs::read_dir(objects.join("pack")).into_iter().flatten())
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("incoming-") || n.starts_with("tmp_"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let lines = input.split(|b| *b == b'\n').count();
    let answers: Vec<Value> = output
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("every answer is one JSON line"))
        .collect();
    assert!(answers.len() <= lines, "{} answers to {lines} lines", answers.len());
    for answer in &answers {
        match answer["ok"].as_bool() {
            Some(true) => {}
            Some(false) => {
                let code = answer["error"]["exit_code"].as_u64().unwrap_or(0);
                assert!((1..=6).contains(&code), "exit status {code} in {answer}");
            }
            None => panic!("an answer without ok: {answer}"),
        }
    }
    answers
}

/// A note that parses survives a write and a read unchanged; one that passes
/// the arrival check names only safe places, and is refused for any other thread.
pub fn note(data: &[u8]) {
    let Ok(state) = ThreadState::from_note(data) else { return };
    let written = state.to_note();
    let again = ThreadState::from_note(&written).expect("a note this version writes, it reads");
    assert_eq!(again.to_note(), written, "a note changes when read and written again");
    if state.uuid != THREAD {
        assert!(state.check_arrived(THREAD).is_err(), "a note about another thread was accepted");
    }
    if state.check_arrived(&state.uuid).is_err() {
        return;
    }
    assert!(is_thread_uuid(&state.uuid));
    if let Some(branch) = &state.branch {
        assert!(
            !branch.starts_with('-') && !branch.contains("..") && !branch.chars().any(char::is_control),
            "{branch:?}"
        );
    }
    let subdirectory = Path::new(&state.subdirectory);
    assert!(subdirectory.components().all(|c| matches!(c, Component::Normal(_))), "{subdirectory:?}");
    if let Some(relative) = &state.transcript.codex_rollout {
        let session = state.transcript.codex_session.as_deref().expect("a rollout has a session");
        assert!(is_relative_for(relative, session), "{relative:?}");
        rollout_stays_inside(relative, session);
    }
}

/// A line `split_words` accepts splits the same way once each word is quoted
/// again; `decide` allows only the helper, and git on the saved repository.
pub fn restricted_command(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else { return };
    let words = split_words(line);
    if let Some(words) = &words {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{}'", w.replace('\'', "'\\''"))).collect();
        assert_eq!(split_words(&quoted.join(" ")).as_ref(), Some(words), "requoting {line:?}");
    }
    let saved = saved_repository();
    match decide(Some(line), std::slice::from_ref(saved)) {
        Ok(Allowed::Serve) => {
            let words = words.expect("allowed lines split");
            assert_eq!(words.get(1..), Some(&["remote".to_owned(), "serve".to_owned()][..]), "{line:?}");
            assert_eq!(
                Path::new(&words[0]).file_name().and_then(|n| n.to_str()),
                Some("git-codex-handoff"),
                "{line:?}"
            );
        }
        Ok(Allowed::Git { service, repository }) => {
            assert!(matches!(service, "receive-pack" | "upload-pack"));
            assert_eq!(&repository, saved, "{line:?} reached another repository");
        }
        Err(err) => assert_eq!(err.exit_code(), 4, "{line:?}: {err:?}"),
    }
}

/// The saved repository of `restricted_command`: `<scratch>/project/.git`.
pub fn saved_repository() -> &'static PathBuf {
    static SAVED: OnceLock<PathBuf> = OnceLock::new();
    SAVED.get_or_init(|| {
        let git_dir = scratch("restricted").join("project/.git");
        std::fs::create_dir_all(&git_dir).unwrap();
        git_dir
    })
}

/// `data` is a rollout name, optionally followed by a newline and the thread
/// id; an accepted name is Codex's shape and its place stays in `sessions/`.
pub fn rollout_name(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (relative, id) = text.split_once('\n').unwrap_or((text, SESSION));
    rollout_stays_inside(relative, id);
}

/// `sessions/` with real date folders, a symlink that stays inside and one that leads out.
fn sessions_root() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = scratch("sessions");
        let sessions = root.join("sessions");
        std::fs::create_dir_all(sessions.join("2026/01/01")).unwrap();
        std::fs::create_dir_all(root.join("outside/24")).unwrap();
        std::os::unix::fs::symlink(root.join("outside"), sessions.join("2026/11")).unwrap();
        std::os::unix::fs::symlink(sessions.join("2026"), sessions.join("2025")).unwrap();
        sessions
    })
}

/// What a rollout name from elsewhere may lead to: a name of that thread's
/// rollout under plain folders, and a write only where existing folders
/// resolve inside `sessions/`.
fn rollout_stays_inside(relative: &str, id: &str) {
    let sessions = sessions_root();
    let path = sessions.join(relative);
    let named = is_relative_for(relative, id);
    let writable = is_rollout_path_for(sessions, &path, id);
    if !named && !writable {
        return;
    }
    assert!(is_thread_uuid(id), "{id:?}");
    let name = path.file_name().and_then(|n| n.to_str()).expect("a file name");
    // The id in the name is compared as a UUID: its hex digits may be upper case.
    assert_eq!(id_of_name(name).as_deref(), Some(id), "{relative:?}");
    if named {
        assert!(Path::new(relative).components().all(|c| matches!(c, Component::Normal(_))), "{relative:?}");
    }
    if writable {
        assert!(name.ends_with(".jsonl"), "{relative:?}");
        let mut dir = path.clone();
        while dir.pop() && dir.starts_with(sessions) {
            if let Ok(real) = dir.canonicalize() {
                assert!(real.starts_with(sessions), "{relative:?} goes through {}", real.display());
            }
        }
    }
}

/// A restricted key's push: the command list is read exactly (what is passed
/// on to git is a prefix of what came), and every ref it names is reported.
pub fn restricted_push(data: &[u8]) {
    use git_codex_handoff::remote::incoming_only::{read_commands, refs_of};
    let mut input = data;
    let Ok(commands) = read_commands(&mut input) else { return };
    assert!(data.starts_with(&commands.raw), "passed on bytes that did not come");
    assert_eq!(commands.raw.len() + input.len(), data.len(), "read past the command list");
    let named = refs_of(&commands);
    let naming = commands.lines.iter().filter(|l| !l.starts_with(b"shallow ")).count();
    assert_eq!(named.len(), naming, "a command line went unchecked");
}

/// `data` taken in as a pack (its first byte says as whose: receive-pack's
/// or fetch's) by a repository that checks objects: never a panic, and
/// nothing of it reaches the object store; a refusal leaves nothing behind.
pub fn pack_intake(data: &[u8]) {
    use git_codex_handoff::intake::{take_pack, Taker};
    // One repository, one intake at a time: its object store is compared before and after.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let repo = intake_repository();
    let (taker, pack) = match data.split_first() {
        Some((first, rest)) if first % 2 == 0 => (Taker::Receive, rest),
        Some((_, rest)) => (Taker::Fetch, rest),
        None => (Taker::Receive, data),
    };
    let repo = &repo;
    let before = store_listing(repo);
    let mut input = pack;
    let taken = take_pack(repo, &mut input, pack.len() as u64, taker, "the input");
    if let Err(err) = &taken {
        assert!((1..=6).contains(&err.exit_code()), "{err:?}");
    }
    // Not migrated: the quarantine goes, and with it everything that came.
    drop(taken);
    assert_eq!(store_listing(repo), before, "the object store changed");
}

/// A repository with `transfer.fsckObjects` for `pack_intake`.
fn intake_repository() -> git_codex_handoff::repo::Repo {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = scratch("intake");
        git(&dir, &["init", "-q", "--bare"]);
        git(&dir, &["config", "transfer.fsckObjects", "true"]);
        dir
    });
    git_codex_handoff::repo::Repo::open(dir).unwrap()
}

fn store_listing(repo: &git_codex_handoff::repo::Repo) -> Vec<String> {
    let objects = repo.common_dir().join("objects");
    let mut names: Vec<String> = walkdir(&objects);
    names.sort();
    names
}

fn walkdir(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        out.push(path.to_string_lossy().into_owned());
        if path.is_dir() {
            out.extend(walkdir(&path));
        }
    }
    out
}

/// `data` as `~/.ssh/config`: resolving a host never panics, every host key
/// algorithm it allows is one offered, and a trust option the ssh2
/// transport cannot follow, set for every host before any block, is named
/// among what it refuses.
pub fn ssh_config(data: &[u8]) {
    use git_codex_handoff::ssh_config::{trust, SshConfig};
    // A HOME of its own per call: cases run on several threads at once.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let home = scratch_home().join(CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_string());
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/config"), data).unwrap();
    let config = SshConfig::user(&home);
    let _ = std::fs::remove_dir_all(&home);
    let Ok(config) = config else { return };
    let resolved = config.resolve("devbox", "me");
    let offered = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "ssh-rsa", "ssh-dss"];
    let allowed = trust::host_key_algorithms(resolved.host_key_algorithms.as_deref(), &offered);
    assert!(allowed.iter().all(|a| offered.contains(&a.as_str())), "{allowed:?}");
    if resolved.host_key_algorithms.is_none() {
        assert!(!allowed.iter().any(|a| a == "ssh-rsa" || a == "ssh-dss"), "SHA-1 by default: {allowed:?}");
    }
    let text = String::from_utf8_lossy(data);
    let mut seen: Vec<String> = Vec::new();
    for line in text.lines() {
        let mut words = line.split(|c: char| c.is_whitespace() || c == '=').filter(|w| !w.is_empty());
        let Some(keyword) = words.next().map(str::to_ascii_lowercase) else { continue };
        if matches!(keyword.as_str(), "host" | "match" | "include") {
            break;
        }
        // Comments name nothing; a quoted value is the parser's own business (its keyword is set all the same).
        if keyword.starts_with('#') {
            continue;
        }
        if line.contains('"') {
            seen.push(keyword);
            continue;
        }
        let args: Vec<String> = words.take_while(|w| !w.starts_with('#')).map(str::to_owned).collect();
        if !seen.contains(&keyword) && trust::refused(&keyword, &args).is_some() {
            let name = trust::keyword_name(&keyword);
            assert!(resolved.unsupported.iter().any(|u| u.starts_with(name)), "{name} not refused: {resolved:?}");
        }
        seen.push(keyword);
    }
}

/// Where `ssh_config` makes its HOMEs.
fn scratch_home() -> &'static PathBuf {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| scratch("ssh-config"))
}

/// A small pack as git writes it: one commit, its tree and a blob.
pub fn sample_pack() -> Vec<u8> {
    static PACK: OnceLock<Vec<u8>> = OnceLock::new();
    PACK.get_or_init(|| {
        let dir = scratch("sample-pack");
        git(&dir, &["init", "-q"]);
        std::fs::write(dir.join("a.txt"), "alpha\n").unwrap();
        git(&dir, &["add", "a.txt"]);
        git(&dir, &["-c", "user.name=Fuzz", "-c", "user.email=fuzz@example.com", "commit", "-q", "-m", "one"]);
        let mut child = Command::new("git")
            .current_dir(&dir)
            .args(["pack-objects", "--revs", "--stdout", "-q"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"HEAD\n").unwrap();
        child.wait_with_output().unwrap().stdout
    })
    .clone()
}
