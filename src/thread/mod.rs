//! Threads on one machine: the store (a ref and a note per thread), the
//! state a note holds, the transcript, per-thread locks, running agents and
//! the commit guard; and, in this file, the operations on one thread (start,
//! checkpoint, history, its worktree).
//!
//! May use `worktree` (a worktree's exact state), `codex` (rollout files)
//! and the root helpers; knows nothing of hosts, connections or the command
//! line.

pub mod attach;
pub mod carried;
pub mod case_fold;
pub mod gitlocks;
pub mod guard;
pub mod listing;
pub mod lock;
pub mod places;
pub mod resolve;
pub mod running;
pub mod state;
pub mod store;
pub mod transcript;

pub use places::{
    owner_worktree, project_dir, set_worktree_record, worktree_here, worktree_made_here, worktree_record,
};

use std::path::PathBuf;

use gix::ObjectId;

use crate::codex::threads::CodexThread;

use self::lock::Lock;
use self::state::{Status, ThreadState, Transcript, SCHEMA};
use self::store::Thread;
use crate::error::{Error, Result};
use crate::machine::Machine;
use crate::repo::Repo;
use crate::time::now_rfc3339;
use crate::worktree::{capture, restore, submodules};

/// The lock that serialises writers of one thread on this machine.
pub fn lock_thread(repo: &Repo, uuid: &str) -> Result<Lock> {
    Lock::acquire(&repo.private_dir()?.join("locks"), uuid, &format!("thread {uuid}"))
}

/// Start a thread on the Git state of the worktree `repo` is opened at.
/// With `branch`, HEAD moves onto that branch first (created at HEAD if new);
/// no file and no index entry changes.
pub fn create(
    repo: &Repo,
    machine: &Machine,
    title: Option<String>,
    branch: Option<String>,
    codex_session: Option<String>,
) -> Result<Thread> {
    create_at(repo, machine, title, branch, codex_session, repo.subdirectory()?)
}

/// [`create`], for a thread whose project is `subdirectory` of the worktree.
fn create_at(
    repo: &Repo,
    machine: &Machine,
    title: Option<String>,
    branch: Option<String>,
    codex_session: Option<String>,
    subdirectory: String,
) -> Result<Thread> {
    let workdir = repo.workdir()?;
    // Numbers are handed out one at a time.
    let _lock = Lock::acquire(&repo.private_dir()?.join("locks"), "new-thread", "starting a thread")?;
    // Check before anything changes.
    let index = repo.gix.index_or_empty()?;
    capture::check_capturable(repo, &index)?;
    // The Codex session's rollout is checked before anything changes.
    let rollout = codex_session.as_deref().map(crate::codex::rollout::find).transpose()?;
    if let Some(rollout) = &rollout {
        if let Some(other) = listing::list(repo)?.into_iter().find(|t| {
            t.state.transcript.codex_session.as_deref().is_some_and(|id| id.eq_ignore_ascii_case(&rollout.thread_id))
        }) {
            return Err(Error::refused(
                "codex_session_taken",
                format!("Codex session {} is already thread #{}", rollout.thread_id, other.state.number),
            )
            .with_help(format!(
                "use thread {} (`git codex-handoff thread show {}`)",
                other.state.number, other.state.number
            )));
        }
    }
    // Stored (and so read through) before anything changes.
    let rollout_blob = rollout.as_ref().map(|r| crate::thread::transcript::store_rollout(repo, &r.path)).transpose()?;
    if let Some(branch) = &branch {
        crate::repo::check_branch_name(branch)?;
        switch_to_new_branch(repo, branch)?;
    }
    let worktree = capture::capture(repo)?;
    let number = listing::next_number(repo)?;
    let uuid = uuid::Uuid::new_v4().to_string();
    let now = now_rfc3339();
    let title_was_default = title.as_ref().is_none_or(|t| t.trim().is_empty());
    let state = ThreadState {
        schema: SCHEMA,
        title: title.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| format!("Thread {number}")),
        uuid,
        number,
        branch: worktree.branch.clone(),
        branch_detached_on: None,
        head: None,
        epoch: 0,
        owner_machine: machine.name.clone(),
        owner_machine_id: Some(machine.id.clone()),
        status: Status::Idle,
        worktree: Some(workdir.to_string_lossy().into_owned()),
        source_machine: Some(machine.name.clone()),
        source_machine_id: Some(machine.id.clone()),
        subdirectory,
        index_commit: String::new(),
        data_commit: String::new(),
        intent_to_add: 0,
        transcript: Transcript::default(),
        created_at: now.clone(),
        updated_at: now,
        handoff: None,
        extra: Default::default(),
    };
    let mut state = state;
    let transcript = match &rollout {
        Some(rollout) => {
            state.transcript.codex_session = Some(rollout.thread_id.clone());
            state.transcript.codex_rollout = Some(rollout.relative.clone());
            state.transcript.codex_thread_name = crate::codex::thread_name(&rollout.thread_id);
            if let Some(name) = &state.transcript.codex_thread_name {
                if title_was_default {
                    state.title.clone_from(name);
                }
            }
            rollout_blob
        }
        None => None,
    };
    let _thread_lock = lock_thread(repo, &state.uuid)?;
    let thread = store::record(repo, &worktree, state, None, transcript)?;
    set_worktree_record(repo, &thread.state.uuid, &workdir, false)?;
    Ok(thread)
}

/// Make a Codex thread of a worktree of this repository a thread (as
/// `thread new --codex-session` would there), titled with its Codex name:
/// the thread works in the worktree the Codex thread works in, in the
/// project directory it works in.
pub fn adopt_codex(repo: &Repo, machine: &Machine, codex: &CodexThread) -> Result<Thread> {
    let (worktree, subdirectory) = codex_worktree(repo, codex)?;
    create_at(&worktree, machine, None, None, Some(codex.path.to_string_lossy().into_owned()), subdirectory)
}

/// The worktree a Codex thread works in (this one if it is in none), and its project directory there.
fn codex_worktree(repo: &Repo, codex: &CodexThread) -> Result<(Repo, String)> {
    let root = match resolve::worktree_of_codex(repo, codex) {
        Some(root) => root,
        None => repo.workdir()?,
    };
    let subdirectory = resolve::codex_subdirectory(codex, &root);
    Ok((Repo::open(&root)?, subdirectory))
}

/// The thread `adopt_codex` would make, without recording anything (for a dry run).
pub fn preview_codex(repo: &Repo, machine: &Machine, codex: &CodexThread) -> Result<Thread> {
    let (worktree, subdirectory) = codex_worktree(repo, codex)?;
    let repo = &worktree;
    let workdir = repo.workdir()?;
    let number = listing::next_number(repo)?;
    let now = now_rfc3339();
    let (head, branch) = capture::head_of(repo)?;
    let state = ThreadState {
        schema: SCHEMA,
        uuid: uuid::Uuid::new_v4().to_string(),
        number,
        title: codex.name.clone().unwrap_or_else(|| format!("Thread {number}")),
        branch,
        branch_detached_on: None,
        head: head.map(|h| h.to_string()),
        epoch: 0,
        owner_machine: machine.name.clone(),
        owner_machine_id: Some(machine.id.clone()),
        status: Status::Idle,
        worktree: Some(workdir.to_string_lossy().into_owned()),
        source_machine: Some(machine.name.clone()),
        source_machine_id: Some(machine.id.clone()),
        subdirectory,
        index_commit: String::new(),
        data_commit: String::new(),
        intent_to_add: 0,
        transcript: Transcript {
            codex_session: Some(codex.id.clone()),
            codex_thread_name: codex.name.clone(),
            ..Transcript::default()
        },
        created_at: now.clone(),
        updated_at: now,
        handoff: None,
        extra: Default::default(),
    };
    Ok(Thread { snapshot: ObjectId::null(repo.gix.object_hash()), state })
}

/// DESIGN §5: a worktree a handoff made here lets go of its branch once the
/// thread has left this machine — HEAD detached at the same commit, files
/// and index untouched — so the branch can be checked out elsewhere here.
/// The thread takes the branch again when it returns. A worktree the user
/// made is left as it is. Returns what was done, for the user.
pub fn let_go_of_branch(repo: &Repo, thread: &Thread, me: &Machine) -> Result<Option<String>> {
    if thread.state.owned_by(me) || !worktree_made_here(repo, &thread.state.uuid)? {
        return Ok(None);
    }
    let Some(path) = worktree_record(repo, &thread.state.uuid)?.filter(|p| p.exists()) else { return Ok(None) };
    let worktree = Repo::open(&path)?;
    let head = worktree.gix.head()?;
    let (Some(branch), Some(id)) = (head.referent_name().map(|n| n.shorten().to_string()), head.id()) else {
        return Ok(None);
    };
    let id = id.detach().to_string();
    worktree.git().run([
        "update-ref",
        "--no-deref",
        "-m",
        "codex-handoff: the thread left; its branch is free here",
        "HEAD",
        &id,
        &id,
    ])?;
    Ok(Some(format!("{} let go of branch {branch} (HEAD detached at {})", path.display(), &id[..12])))
}

/// Point HEAD at `branch` without touching files or the index: create the
/// branch at HEAD if it does not exist; an existing one must be at HEAD.
fn switch_to_new_branch(repo: &Repo, branch: &str) -> Result<()> {
    let git = repo.git();
    let full = format!("refs/heads/{branch}");
    let (head, current) = capture::head_of(repo)?;
    if current.as_deref() == Some(branch) {
        return Ok(());
    }
    let existing = repo.gix.try_find_reference(full.as_str())?.and_then(|r| r.target().try_id().map(ToOwned::to_owned));
    match (existing, head) {
        (Some(at), Some(head)) if at == head => {}
        (Some(_), _) => {
            return Err(Error::refused("branch_exists", format!("branch {branch} already exists at another commit"))
                .with_help("choose a new branch name, or switch to that branch yourself first"));
        }
        (None, Some(head)) => {
            git.run(["update-ref", "-m", "codex-handoff: thread new", &full, &head.to_string(), ""])?;
        }
        (None, None) => {}
    }
    git.run(["symbolic-ref", "-m", "codex-handoff: thread new", "HEAD", &full])?;
    Ok(())
}

/// Record the thread's Git state now, in its worktree on this machine.
pub fn checkpoint(repo: &Repo, machine: &Machine, spec: &str) -> Result<Thread> {
    let thread = resolve::resolve(repo, spec)?;
    let _lock = lock_thread(repo, &thread.state.uuid)?;
    // Re-read under the lock: another writer may have moved it meanwhile.
    let thread = store::load(repo, &thread.state.uuid)?
        .ok_or_else(|| Error::not_found("thread_not_found", format!("thread {} disappeared", thread.state.uuid)))?;
    if !thread.state.owned_by(machine) {
        return Err(Error::refused(
            "not_owner",
            format!("thread #{} is on {}, not on this machine", thread.state.number, thread.state.owner_machine),
        )
        .with_help("snapshots are taken where the thread is; bring it back with `git codex-handoff <THREAD> local`"));
    }
    let worktree_repo = thread_worktree(repo, &thread)?;
    let worktree = capture::capture(&worktree_repo)?;
    let mut state = thread.state.clone();
    let (branch, still_detached) = thread.state.branch_from_worktree(worktree.branch.clone(), machine);
    state.branch = branch;
    if !still_detached {
        state.branch_detached_on = None;
    }
    state.worktree = Some(worktree_repo.workdir()?.to_string_lossy().into_owned());
    state.updated_at = now_rfc3339();
    state.handoff = None;
    let transcript = crate::thread::transcript::capture(repo, &thread.state)?;
    store::record(repo, &worktree, state, Some(&thread), transcript)
}

/// The environment of a thread's agent command here (`thread run`, an
/// attached session): which thread it is (so it cannot hand itself off),
/// where its transcript is, and `CODEX_HOME` where only the login shell sets it.
pub fn agent_env(repo: &Repo, thread: &Thread) -> Result<Vec<(String, String)>> {
    let transcript = crate::thread::transcript::local_path(repo, &thread.state)?;
    if let Some(parent) = transcript.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut env = vec![
        ("CODEX_HANDOFF_THREAD".to_owned(), thread.state.uuid.clone()),
        ("CODEX_HANDOFF_TRANSCRIPT".to_owned(), transcript.to_string_lossy().into_owned()),
    ];
    if let Ok((home, crate::codex::HomeOrigin::LoginShell)) = crate::codex::codex_home_and_origin() {
        env.push(("CODEX_HOME".to_owned(), home.to_string_lossy().into_owned()));
    }
    Ok(env)
}

/// Open the worktree the thread lives in on this machine.
pub fn thread_worktree(repo: &Repo, thread: &Thread) -> Result<Repo> {
    // A thread not recorded yet (`preview_codex`) is where it is being made.
    let unrecorded = thread.snapshot.is_null().then(|| thread.state.worktree.as_ref().map(PathBuf::from)).flatten();
    let Some(path) = unrecorded.or(worktree_record(repo, &thread.state.uuid)?) else {
        return Err(Error::not_found("no_worktree", format!("thread #{} has no worktree here", thread.state.number)));
    };
    let path = path.as_path();
    if !path.exists() {
        return Err(Error::not_found(
            "worktree_missing",
            format!("the worktree of thread #{} is gone: {}", thread.state.number, path.display()),
        )
        .with_help("restore the thread's last snapshot with `git codex-handoff thread restore <THREAD> <DIR>`"));
    }
    Repo::open(path)
}

/// Write a thread's latest snapshot into a new worktree at `dir` (a copy:
/// the thread stays where it is). Its submodules' snapshots come from the
/// thread's worktree here, else from the module repositories.
pub fn restore_copy(repo: &Repo, thread: &Thread, dir: &std::path::Path, detach: bool) -> Result<restore::Restored> {
    let modules = match worktree_record(repo, &thread.state.uuid)?.filter(|p| p.exists()) {
        Some(path) => submodules::ModuleSource::Worktree(path),
        None => submodules::ModuleSource::Modules(repo.common_dir()),
    };
    let expected = thread.expected(repo, &modules)?;
    restore::into_new_worktree(repo, &expected, dir, detach)
}

/// The HEAD commits of `snapshot` and of every earlier snapshot of its
/// thread, distinct, newest first, at most `limit` (looking at no more than
/// `limit` × 100 snapshots): the project history that a push of the snapshot
/// carries (each snapshot is reachable from the next).
pub fn history_heads(repo: &Repo, snapshot: ObjectId, limit: usize) -> Vec<ObjectId> {
    let mut heads = Vec::new();
    let mut next = Some(snapshot);
    let mut steps = 0;
    while let Some(snapshot) = next.filter(|_| steps < limit.saturating_mul(100)) {
        steps += 1;
        // S: parents = HEAD (unless unborn), I, T; T: parents = the previous T and S (none for the first).
        // A thread not yet recorded (one made on the fly for a dry run) has no snapshot: nothing to walk.
        let Ok(commit) = repo.gix.find_commit(snapshot) else { break };
        let parents: Vec<ObjectId> = commit.parent_ids().map(|id| id.detach()).collect();
        if let (3, Some(head)) = (parents.len(), parents.first()) {
            if !heads.contains(head) {
                heads.push(*head);
            }
        }
        if heads.len() >= limit {
            break;
        }
        next = match parents.last() {
            Some(data) => repo.gix.find_commit(*data).ok().and_then(|c| c.parent_ids().nth(1).map(|id| id.detach())),
            None => None,
        };
    }
    heads
}

/// Every snapshot of a thread, newest first.
pub fn history(repo: &Repo, thread: &Thread) -> Result<Vec<(ObjectId, ThreadState)>> {
    let mut entries = Vec::new();
    let mut next = Some(thread.snapshot);
    while let Some(snapshot) = next {
        let state = store::read_note(repo, snapshot)?;
        let data = store::parse_hex(&state.data_commit)?;
        let parents: Vec<ObjectId> = repo.gix.find_commit(data)?.parent_ids().map(|id| id.detach()).collect();
        next = parents.get(1).copied();
        entries.push((snapshot, state));
    }
    Ok(entries)
}
