//! THREAD on the command line: a thread number, a thread UUID or prefix
//! (at least 6 hex digits), a Codex thread id or prefix, a Codex thread
//! name, or a thread's title. A Codex thread of this worktree that no thread
//! links yet is found too, for the commands that make it a thread on the fly.

use std::collections::BTreeMap;

use crate::codex;
use crate::codex::threads::CodexThread;
use crate::error::{Error, Result};
use crate::repo::Repo;
use crate::thread::store::Thread;

/// What THREAD names.
#[derive(Debug, Clone)]
pub enum Target {
    Thread(Box<Thread>),
    /// A Codex thread working in this worktree that no thread links yet.
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
        // A Codex thread of another directory is no candidate here.
        let root = repo.workdir().ok();
        let mut elsewhere = Vec::new();
        let mut codex = Vec::new();
        for (id, path) in std::mem::take(&mut self.codex) {
            let meta = codex::rollout::meta_of(&path);
            let cwd = meta.as_ref().and_then(|m| m.cwd.clone()).map(std::path::PathBuf::from);
            let here = match (&cwd, &root) {
                (Some(cwd), Some(root)) => {
                    codex::threads::inside(cwd, &root.canonicalize().unwrap_or_else(|_| root.clone()))
                }
                _ => false,
            };
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
            let at = cwd.as_ref().map_or("an unknown directory".to_owned(), |c| c.display().to_string());
            return Err(Error::not_found(
                "codex_thread_elsewhere",
                format!("Codex thread {id} works in {at}, not in this worktree"),
            )
            .with_help("run the command in the repository the Codex thread works in"));
        }
        Err(Error::not_found("thread_not_found", format!("no thread {spec} in this repository")).with_help(
            "`git codex-handoff thread list --all` shows the threads, `thread list --codex` this worktree's Codex threads",
        ))
    }
}
