//! `git codex-handoff thread ...`

use std::path::PathBuf;

use serde_json::json;

use crate::cli::args::{ThreadArg, ThreadCommand, ThreadListArgs, ThreadNewArgs, ThreadRestoreArgs, ThreadRunArgs};
use crate::cli::commands::thread_view::{self, thread_view};
use crate::cli::output::Ui;
use crate::error::{Error, Result};
use crate::machine::Machine;
use crate::repo::{absolute, Repo};
use crate::text::printable;
use crate::thread::state::Status;
use crate::thread::{self, store};

pub fn run(command: ThreadCommand, ui: &mut Ui) -> Result<()> {
    match command {
        ThreadCommand::New(args) => new(args, ui),
        ThreadCommand::List(args) => list(args, ui),
        ThreadCommand::Show(args) => show(args, ui),
        ThreadCommand::Log(args) => log(args, ui),
        ThreadCommand::Snapshot(args) => snapshot_now(args, ui),
        ThreadCommand::Restore(args) => restore_into(args, ui),
        ThreadCommand::Run(args) => run_command(args, ui),
    }
}

fn new(args: ThreadNewArgs, ui: &mut Ui) -> Result<()> {
    let repo = Repo::discover()?;
    let machine = Machine::this(Some(&repo))?;
    let thread = thread::create(&repo, &machine, args.title, args.branch, args.codex_session)?;
    ui.json(&thread_view(&repo, &thread, &machine));
    ui.say(format!(
        "Started thread #{} {} on {} (snapshot {})",
        thread.state.number,
        thread.state.uuid,
        branch_text(&thread.state.branch),
        short(&thread.snapshot.to_string())
    ));
    Ok(())
}

fn list(args: ThreadListArgs, ui: &mut Ui) -> Result<()> {
    let repo = Repo::discover()?;
    if args.codex {
        return list_codex(&repo, ui);
    }
    let machine = Machine::this(Some(&repo))?;
    let here = if args.all || repo.gix.workdir().is_none() { None } else { Some(repo.subdirectory()?) };
    let threads: Vec<store::Thread> = crate::thread::listing::list(&repo)?
        .into_iter()
        .filter(|t| match &here {
            None => true,
            Some(dir) => within(dir, &t.state.subdirectory),
        })
        .collect();
    if ui.json {
        #[derive(serde::Serialize)]
        struct List<'a> {
            schema: u32,
            threads: Vec<thread_view::ThreadView<'a>>,
        }
        ui.json_document(&List { schema: 1, threads: thread_view::thread_views(&repo, &threads, &machine) });
    }
    if threads.is_empty() {
        ui.say("No threads. Start one with `git codex-handoff thread new`.");
    }
    for t in &threads {
        let s = &t.state;
        ui.say(format!(
            "#{:<4} {}  {:<8} {:<7} {:<24} {}",
            s.number,
            printable(&s.uuid.chars().take(8).collect::<String>()),
            printable(&t.owner_name(&machine)),
            status_text(s.status),
            thread_branch_text(t, &machine),
            printable(&s.title)
        ));
    }
    Ok(())
}

/// The Codex threads of every worktree of this repository (the Codex App
/// gives each thread a worktree of its own), found in Codex's sessions folder.
fn list_codex(repo: &Repo, ui: &mut Ui) -> Result<()> {
    let workdir = repo.workdir()?;
    let linked = thread::resolve::linked_ids(&crate::thread::listing::list(repo)?);
    let mut found = Vec::new();
    for root in repo.worktrees().unwrap_or_else(|_| vec![workdir.clone()]) {
        for codex in crate::codex::threads::under(&root)? {
            if !found.iter().any(|f: &crate::codex::threads::CodexThread| f.id == codex.id) {
                found.push(codex);
            }
        }
    }
    found.sort_by(|a, b| b.updated.cmp(&a.updated).then(a.id.cmp(&b.id)));
    let updated = |t: &crate::codex::threads::CodexThread| {
        t.updated
            .and_then(|u| u.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| crate::time::format_rfc3339(d.as_secs() as i64))
    };
    let views: Vec<serde_json::Value> = found
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "name": t.name,
                "updated_at": updated(t),
                "thread": linked.get(&t.id),
                "cwd": t.cwd,
                "source": t.source,
                "rollout": t.path,
            })
        })
        .collect();
    ui.json(&json!({ "schema": 1, "codex_threads": views }));
    if found.is_empty() {
        ui.say(format!("No Codex threads work in the worktrees of {}.", workdir.display()));
    }
    for t in &found {
        let number = linked.get(&t.id).map_or("-".to_owned(), |n| format!("#{n}"));
        ui.say(format!(
            "{}  {:<5} {:<20} {}",
            t.id,
            number,
            updated(t).unwrap_or_default(),
            t.name.as_deref().unwrap_or("")
        ));
    }
    Ok(())
}

/// Is `dir` (the current directory, relative to the worktree root) inside the project `project`?
fn within(dir: &str, project: &str) -> bool {
    project.is_empty() || dir == project || dir.starts_with(&format!("{project}/"))
}

fn show(args: ThreadArg, ui: &mut Ui) -> Result<()> {
    let repo = Repo::discover()?;
    let machine = Machine::this(Some(&repo))?;
    let thread = crate::thread::resolve::resolve(&repo, &args.thread)?;
    ui.json(&thread_view(&repo, &thread, &machine));
    let s = &thread.state;
    ui.say(format!("thread    #{} {}", s.number, s.uuid));
    ui.say(format!("title     {}", printable(&s.title)));
    ui.say(format!("branch    {}", thread_branch_text(&thread, &machine)));
    if let (Some(on), Some(worktree)) =
        (thread.branch_detached_on(&machine), s.branch_detached_on.as_ref().and_then(|d| d.checked_out_in.as_ref()))
    {
        let place = if on == "local" { "here" } else { "there" };
        ui.say(format!("          (the branch is checked out in {} {place})", printable(worktree)));
    }
    ui.say(format!("head      {}", s.head.as_deref().unwrap_or("(none: unborn branch)")));
    ui.say(format!("owner     {} ({})", printable(&thread.owner_name(&machine)), printable(&s.owner_machine)));
    ui.say(format!("status    {}", status_text(s.status)));
    ui.say(format!("epoch     {}", s.epoch));
    ui.say(format!("snapshot  {}", thread.snapshot));
    match (thread::worktree_here(&repo, &thread, &machine), thread::owner_worktree(&repo, &thread, &machine)) {
        (Some(here), _) => ui.say(format!("worktree  {}", printable(&here.to_string_lossy()))),
        (None, Some(there)) => ui.say(format!(
            "worktree  {} (on {})",
            printable(&there.to_string_lossy()),
            printable(&thread.owner_name(&machine))
        )),
        (None, None) => {}
    }
    ui.say(format!("updated   {}", s.updated_at));
    Ok(())
}

fn log(args: ThreadArg, ui: &mut Ui) -> Result<()> {
    let repo = Repo::discover()?;
    let thread = crate::thread::resolve::resolve(&repo, &args.thread)?;
    let entries = thread::history(&repo, &thread)?;
    let values: Vec<serde_json::Value> = entries
        .iter()
        .map(|(id, s)| {
            json!({
                "snapshot": id.to_string(),
                "epoch": s.epoch,
                "owner_machine": s.owner_machine,
                "owner_machine_id": s.owner_machine_id,
                "status": s.status,
                "branch": s.branch,
                "branch_detached_on": s.branch_detached_on.as_ref().filter(|_| s.branch.is_some()).map(|d| &d.machine),
                "head": s.head,
                "at": s.updated_at,
                "handoff": s.handoff,
            })
        })
        .collect();
    ui.json(&json!({ "schema": 1, "thread": thread.state.uuid, "number": thread.state.number, "entries": values }));
    for (id, s) in &entries {
        let what = match &s.handoff {
            Some(h) => format!("handoff {} -> {}", printable(&h.from_machine), printable(&h.to_machine)),
            None => "snapshot".to_owned(),
        };
        ui.say(format!(
            "{}  epoch {:<3} {}  on {}  {}  {}",
            short(&id.to_string()),
            s.epoch,
            printable(&s.updated_at),
            printable(&s.owner_machine),
            match (&s.branch, &s.branch_detached_on) {
                (Some(branch), Some(d)) => format!("{} (detached on {})", printable(branch), printable(&d.machine)),
                _ => branch_text(&s.branch),
            },
            what
        ));
    }
    Ok(())
}

fn snapshot_now(args: ThreadArg, ui: &mut Ui) -> Result<()> {
    let repo = Repo::discover()?;
    let machine = Machine::this(Some(&repo))?;
    let thread = thread::checkpoint(&repo, &machine, &args.thread)?;
    ui.json(&json!({ "snapshot": thread.snapshot.to_string(), "thread": thread_view(&repo, &thread, &machine) }));
    ui.say(thread.snapshot.to_string());
    Ok(())
}

fn restore_into(args: ThreadRestoreArgs, ui: &mut Ui) -> Result<()> {
    let repo = Repo::discover()?;
    let thread = crate::thread::resolve::resolve(&repo, &args.thread)?;
    let dir: PathBuf = absolute(&args.dir);
    let restored = thread::restore_copy(&repo, &thread, &dir, args.detach)?;
    ui.json(&json!({
        "thread": thread.state.uuid,
        "snapshot": thread.snapshot.to_string(),
        "worktree": restored.worktree.to_string_lossy(),
        "branch": restored.branch,
    }));
    ui.say(format!(
        "Restored thread #{} (snapshot {}) into {} on {}",
        thread.state.number,
        short(&thread.snapshot.to_string()),
        restored.worktree.display(),
        branch_text(&restored.branch)
    ));
    Ok(())
}

/// Run the thread's agent command in its worktree; exits with its exit code.
fn run_command(args: ThreadRunArgs, ui: &mut Ui) -> Result<()> {
    let repo = Repo::discover()?;
    let machine = Machine::this(Some(&repo))?;
    let thread = crate::thread::resolve::resolve(&repo, &args.thread)?;
    if !thread.state.owned_by(&machine) {
        return Err(Error::refused(
            "not_owner",
            format!("thread #{} is on {}, not on this machine", thread.state.number, thread.state.owner_machine),
        )
        .with_help("bring it back with `git codex-handoff <THREAD> local`, or run it there"));
    }
    let worktree = thread::thread_worktree(&repo, &thread)?.workdir()?;
    let dir = worktree.join(&thread.state.subdirectory);
    let env = thread::agent_env(&repo, &thread)?;
    let code = crate::thread::running::run(&repo, &thread.state.uuid, &dir, &args.command, &env)?;
    ui.flush();
    std::process::exit(code);
}

fn branch_text(branch: &Option<String>) -> String {
    match branch {
        Some(b) => printable(b).into_owned(),
        None => "(detached HEAD)".to_owned(),
    }
}

/// `main`, or `main (detached on devbox)` where the thread's worktree works
/// on a detached HEAD because its branch is checked out elsewhere there.
fn thread_branch_text(thread: &store::Thread, machine: &Machine) -> String {
    match (&thread.state.branch, thread.branch_detached_on(machine)) {
        (Some(branch), Some(on)) if on == "local" => format!("{} (detached here)", printable(branch)),
        (Some(branch), Some(on)) => format!("{} (detached on {})", printable(branch), printable(&on)),
        _ => branch_text(&thread.state.branch),
    }
}

fn status_text(status: Status) -> &'static str {
    match status {
        Status::Idle => "idle",
        Status::Running => "running",
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
