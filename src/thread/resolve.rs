//! THREAD on the command line: a thread number, a thread UUID or prefix
//! (at least 6 hex digits), a Codex thread id or prefix, a Codex thread
//! name, or a thread's title. A Codex thread of any worktree of this
//! repository that no thread links yet is found too, for the commands that
//! make it a thread on the fly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::codex;
use crate::codex::threads::CodexThread;
use crate::error::{Error, Result};
use crate::repo::Repo;
use crate::thread::store::Thread;

/// What THREAD names.
#[derive(Debug, Clone)]
pub enum Target {
    Thread(Box<Thread>),
    /// A Codex thread working in a worktree of this repository that no thread links yet.
    Codex(CodexThread),
}

/// The thread THREAD names; a Codex thread no thread links is an error that says how to link it.
pub fn resolve(repo: &Repo, spec: &str) -> Result<Thread> {
    match resolve_target(repo, spec)? {
        Target::Thread(thread) => Ok(*thread),
        Target::Codex(codex) => Err(Error::not_found(
            "codex_thread_not_linked",
            format!("Codex thread {} is not a thread of git-codex-handoff yet", codex.id),
        )
        .with_help(format!(
            "hand it off with `git codex-handoff {} <HOST>`, or link it with `git codex-handoff thread new --codex-session {}`",
            codex.id, codex.id
        ))),
    }
}

/// Find what THREAD names. A string of digits is a thread number first;
/// hex digits are a UUID or Codex thread id (or a prefix of one); any other
/// text is a Codex thread name or a thread's title, matched exactly.
pub fn resolve_target(repo: &Repo, spec: &str) -> Result<Target> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(Error::usage("bad_thread", "no thread given")
            .with_help("give a thread number (42), a UUID, a title, or a Codex thread id or name"));
    }
    let number = spec.bytes().all(|b| b.is_ascii_digit()).then(|| spec.parse::<u64>().ok()).flatten();
    if let Some(number) = number {
        if let Some(thread) = crate::thread::listing::by_number(repo, number)? {
            return Ok(Target::Thread(Box::new(thread)));
        }
    }
    let threads = crate::thread::listing::list(repo)?;
    if spec.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(number) = spec.parse::<u64>() {
            if let Some(thread) = threads.iter().find(|t| t.state.number == number) {
                return Ok(Target::Thread(Box::new(thread.clone())));
            }
        }
    }
    let lower = spec.to_ascii_lowercase();
    let hex_digits = lower.chars().filter(char::is_ascii_hexdigit).count();
    let id_like = hex_digits >= 6 && lower.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    let mut found = Found::default();
    if id_like {
        for thread in &threads {
            let codex_id = thread.state.transcript.codex_session.as_deref().map(str::to_ascii_lowercase);
            if thread.state.uuid == lower || codex_id.as_deref() == Some(lower.as_str()) {
                return Ok(Target::Thread(Box::new(thread.clone())));
            }
            if thread.state.uuid.starts_with(&lower) || codex_id.is_some_and(|id| id.starts_with(&lower)) {
                found.thread(thread);
            }
        }
        let linked = linked_ids(&threads);
        let sessions = codex::rollout::sessions_dir()?;
        let mut exact = None;
        for (id, path) in codex::rollout::scan(&sessions) {
            if id.starts_with(&lower) && !linked.contains_key(&id) {
                if id == lower {
                    exact = Some((id.clone(), path.clone()));
                }
                found.codex.insert(id, path);
            }
        }
        if let Some((id, path)) = exact {
            found.codex = BTreeMap::from([(id, path)]);
            found.threads.clear();
        }
    }
    if found.is_empty() {
        let names = codex::thread_names();
        let linked = linked_ids(&threads);
        for thread in &threads {
            let current_name = thread.state.transcript.codex_session.as_ref().and_then(|id| names.get(id));
            if thread.state.title == spec
                || thread.state.transcript.codex_thread_name.as_deref() == Some(spec)
                || current_name.map(String::as_str) == Some(spec)
            {
                found.thread(thread);
            }
        }
        for (id, name) in &names {
            if name == spec && !linked.contains_key(id) {
                if let Some(path) = codex::rollout::locate(id)? {
                    found.codex.insert(id.clone(), path);
                }
            }
        }
    }
    found.into_target(repo, spec)
}

/// Codex thread id -> the number of the thread that links it.
pub fn linked_ids(threads: &[Thread]) -> BTreeMap<String, u64> {
    threads
        .iter()
        .filter_map(|t| t.state.transcript.codex_session.as_ref().map(|id| (id.to_ascii_lowercase(), t.state.number)))
        .collect()
}

#[derive(Default)]
struct Found {
    threads: Vec<Thread>,
    /// Unlinked Codex threads: id -> rollout path.
    codex: BTreeMap<String, std::path::PathBuf>,
}

impl Found {
    fn thread(&mut self, thread: &Thread) {
        if !self.threads.iter().any(|t| t.state.uuid == thread.state.uuid) {
            self.threads.push(thread.clone());
        }
    }

    fn is_empty(&self) -> bool {
        self.threads.is_empty() && self.codex.is_empty()
    }

    fn into_target(mut self, repo: &Repo, spec: &str) -> Result<Target> {
        // A Codex thread is a candidate when it works in any worktree of this
        // repository (the Codex App gives each thread a worktree of its own).
        let roots = canonical_worktrees(repo);
        let mut elsewhere = Vec::new();
        let mut codex = Vec::new();
        for (id, path) in std::mem::take(&mut self.codex) {
            let meta = codex::rollout::meta_of(&path);
            let cwd = meta.as_ref().and_then(|m| m.cwd.clone()).map(std::path::PathBuf::from);
            let here = cwd.as_deref().is_some_and(|cwd| innermost(&roots, cwd).is_some());
            if here {
                let updated = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                let name = codex::thread_name(&id);
                let source = meta.and_then(|m| m.source);
                codex.push(CodexThread { id, path, cwd: cwd.unwrap_or_default(), name, updated, source });
            } else {
                elsewhere.push((id, cwd));
            }
        }
        match (self.threads.len(), codex.len()) {
            (1, 0) => return Ok(Target::Thread(Box::new(self.threads.remove(0)))),
            (0, 1) => return Ok(Target::Codex(codex.remove(0))),
            (0, 0) => {}
            _ => {
                let mut list: Vec<String> = self
                    .threads
                    .iter()
                    .map(|t| format!("#{} {} ({})", t.state.number, t.state.uuid, t.state.title))
                    .collect();
                list.extend(codex.iter().map(|c| match &c.name {
                    Some(name) => format!("Codex thread {} ({name})", c.id),
                    None => format!("Codex thread {}", c.id),
                }));
                return Err(Error::usage(
                    "ambiguous_thread",
                    format!("{spec} matches several threads: {}", list.join("; ")),
                )
                .with_help("give the thread number, or more digits of the id"));
            }
        }
        if let [(id, cwd)] = elsewhere.as_slice() {
            return Err(elsewhere_error(repo, id, cwd.as_deref()));
        }
        Err(Error::not_found("thread_not_found", format!("no thread {spec} in this repository")).with_help(
            "`git codex-handoff thread list --all` shows the threads, `thread list --codex` the repository's Codex threads",
        ))
    }
}

/// Every worktree root of `repo`, symlinks resolved (this worktree's alone if git cannot list them).
fn canonical_worktrees(repo: &Repo) -> Vec<PathBuf> {
    let roots = repo.worktrees().unwrap_or_else(|_| repo.workdir().into_iter().collect());
    roots.into_iter().map(|r| r.canonicalize().unwrap_or(r)).collect()
}

/// The innermost of `roots` that `dir` is in (a worktree may sit inside another's directory).
fn innermost<'a>(roots: &'a [PathBuf], dir: &Path) -> Option<&'a PathBuf> {
    roots.iter().filter(|root| codex::threads::inside(dir, root)).max_by_key(|root| root.components().count())
}

/// The worktree of this repository a Codex thread works in (its working
/// directory is there or below), if it works in one.
pub fn worktree_of_codex(repo: &Repo, codex: &CodexThread) -> Option<PathBuf> {
    innermost(&canonical_worktrees(repo), &codex.cwd).cloned()
}

/// Where a Codex thread's working directory is relative to the root of its worktree `root` ("" at the root).
pub fn codex_subdirectory(codex: &CodexThread, root: &Path) -> String {
    let cwd = codex.cwd.canonicalize().unwrap_or_else(|_| codex.cwd.clone());
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let relative = cwd.strip_prefix(&root).map(|p| p.to_string_lossy().replace('\\', "/")).unwrap_or_default();
    if crate::thread::state::is_relative_dir(&relative) {
        relative
    } else {
        String::new()
    }
}

/// A Codex thread that works outside every worktree of this repository:
/// say where, and in which repository.
fn elsewhere_error(repo: &Repo, id: &str, cwd: Option<&Path>) -> Error {
    let here = repo.workdir().unwrap_or_else(|_| repo.common_dir());
    let Some(cwd) = cwd else {
        return Error::not_found("codex_thread_elsewhere", format!("Codex thread {id} does not say where it works"))
            .with_help(format!("it is no thread of the repository {}", here.display()));
    };
    let theirs = Repo::discover_at(cwd).ok().map(|r| r.workdir().unwrap_or_else(|_| r.common_dir()));
    let (what, help) = match &theirs {
        Some(other) => (
            format!("the repository {}", other.display()),
            format!("run the command in that repository: `git -C {} codex-handoff {id} <HOST>`", cwd.display()),
        ),
        None if cwd.exists() => ("no git repository".to_owned(), "it is no thread of this repository".to_owned()),
        None => ("a directory that is gone".to_owned(), "it is no thread of this repository".to_owned()),
    };
    Error::not_found(
        "codex_thread_elsewhere",
        format!(
            "Codex thread {id} works in {}, which is in {what}, not in any worktree of this repository ({})",
            cwd.display(),
            here.display()
        ),
    )
    .with_help(help)
}

/// The thread of the worktree `repo` is opened in, for a command that
/// leaves THREAD out there: the thread whose worktree here it is (the one
/// this machine owns, if several were), else the one Codex thread working
/// in it that no thread links yet. `None` when no thread works there.
pub fn of_this_worktree(repo: &Repo, me: &crate::machine::Machine) -> Result<Option<Target>> {
    let Ok(root) = repo.workdir() else { return Ok(None) };
    let root = root.canonicalize().unwrap_or(root);
    let threads = crate::thread::listing::list(repo)?;
    let same = |p: PathBuf| p.canonicalize().unwrap_or(p) == root;
    let mut here: Vec<&Thread> = threads
        .iter()
        .filter(|t| crate::thread::places::worktree_record(repo, &t.state.uuid).ok().flatten().is_some_and(same))
        .collect();
    if here.len() > 1 && here.iter().any(|t| t.state.owned_by(me)) {
        here.retain(|t| t.state.owned_by(me));
    }
    let roots = canonical_worktrees(repo);
    let linked = linked_ids(&threads);
    let codex: Vec<CodexThread> = match here.is_empty() {
        true => codex::threads::under(&root)?
            .into_iter()
            .filter(|c| !linked.contains_key(&c.id) && innermost(&roots, &c.cwd) == Some(&root))
            .collect(),
        false => Vec::new(),
    };
    let several = |list: Vec<String>| {
        Err(Error::usage(
            "ambiguous_thread",
            format!("several threads work in this worktree ({}): {}", root.display(), list.join("; ")),
        )
        .with_help("name the thread: `git codex-handoff <THREAD> <HOST>`"))
    };
    match (here.as_slice(), codex.as_slice()) {
        ([thread], _) => Ok(Some(Target::Thread(Box::new((*thread).clone())))),
        ([], [one]) => Ok(Some(Target::Codex(one.clone()))),
        ([], []) => Ok(None),
        ([], many) => several(many.iter().map(|c| format!("Codex thread {}", c.id)).collect()),
        (many, _) => several(many.iter().map(|t| format!("#{} {}", t.state.number, t.state.title)).collect()),
    }
}
