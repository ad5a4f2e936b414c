//! What must hold for any input from the other machine, one function per
//! reader: the helper's request reader and dispatcher, the note parser, the
//! restricted command parser and the rollout name check. Each takes raw
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
    let machine = helper_machine();
    let input = substitute(data, REPO_MARK, machine.repo.as_bytes());
    let mut output = Vec::new();
    let result = helper::serve(&input[..], &mut output, std::io::sink(), true);
    if let Err(err) = result {
        assert!(matches!(err.code.as_ref(), "line_too_long" | "io"), "the helper failed: {err:?}");
    }
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
