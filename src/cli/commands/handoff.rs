//! `git codex-handoff <THREAD> <HOST>`: the handoff itself.

use serde_json::json;

use crate::cli::args::HandoffArgs;
use crate::cli::output::Ui;
use crate::error::{Error, Result};
use crate::handoff::{self, Interaction, Plan};
use crate::repo::Repo;
use crate::text::printable;

pub fn run(args: HandoffArgs, ui: &mut Ui) -> Result<()> {
    let no_command = || {
        Error::usage("missing_command", "no thread or command given")
            .with_help("usage: git codex-handoff <THREAD> <HOST>, or a subcommand; see `git codex-handoff --help`")
    };
    let repo = match (&args.thread, &args.host) {
        (None, _) => Repo::discover().map_err(|_| no_command())?,
        _ => Repo::discover()?,
    };
    let (thread, host) = match (args.thread, args.host) {
        (Some(thread), Some(host)) => (thread, host),
        (Some(spec), None) => destination_of(&repo, spec, ui)?,
        (None, _) => {
            let me = crate::machine::Machine::this(Some(&repo))?;
            // Inside a thread's worktree, THREAD may be left out.
            let Some(target) = crate::thread::resolve::of_this_worktree(&repo, &me)? else { return Err(no_command()) };
            let spec = spec_of(&target);
            let host = super::picker::pick(&repo, &spec, &target, ui)?;
            (spec, host)
        }
    };
    if args.attach && !ui.has_terminal() {
        return Err(Error::usage("attach_needs_terminal", "--attach needs a terminal (stdin and stdout)").with_help(
            "run it in a terminal, or hand off without --attach and go on there with \
             `ssh -t <host>`, then `codex resume <id>` in the worktree",
        ));
    }
    let attach_command = repo.config_string(crate::config::ATTACH_COMMAND);
    let request = handoff::Request {
        thread,
        destination: host,
        branch: args.branch,
        detach: args.detach,
        dry_run: args.dry_run,
        no_interrupt: args.no_interrupt,
        interrupt_timeout: std::time::Duration::from_secs(interrupt_timeout(&repo, args.interrupt_timeout)?),
        interactive: !args.yes && !args.dry_run && ui.can_prompt(),
        attach: args.attach,
    };
    let mut console = Console { ui, yes: args.yes, dry_run: args.dry_run, plan: None };
    let outcome = handoff::run(&repo, &request, &mut console)?;
    let plan = console.plan.take();
    let dry_run = outcome.dry_run;
    ui.json(&json!({
        "thread": outcome.thread,
        "uuid": outcome.uuid,
        "host": outcome.host,
        "worktree": outcome.worktree,
        "owner_worktree": outcome.owner_worktree,
        "branch": outcome.branch,
        "branch_detached_on": outcome.detached.then_some(&outcome.host),
        "epoch": outcome.epoch,
        "snapshot": outcome.snapshot,
        "already_there": outcome.already_there,
        "sent_bytes": outcome.sent_bytes,
        "received_bytes": outcome.received_bytes,
        "dry_run": outcome.dry_run,
        "plan": plan,
    }));
    if outcome.dry_run {
        ui.say("Dry run: nothing was changed.");
    } else if outcome.already_there && outcome.owner_worktree.is_none() {
        ui.say(format!("Thread #{} is already on {}.", outcome.thread, outcome.host));
    } else {
        let place = if outcome.host == "local" { "this computer".to_owned() } else { outcome.host.clone() };
        let branch = match (outcome.branch.as_deref().map(printable), outcome.detached) {
            (Some(branch), true) => {
                let place = if outcome.host == "local" { "here" } else { "there" };
                format!("{branch} (detached HEAD; {branch} {place} is left as it is)")
            }
            (Some(branch), false) => branch.into_owned(),
            (None, _) => "detached HEAD".into(),
        };
        ui.say(format!(
            "Thread #{} is now on {place} (epoch {}): {} on {branch}",
            outcome.thread,
            outcome.epoch,
            printable(outcome.owner_worktree.as_deref().unwrap_or_default())
        ));
    }
    if args.attach && !dry_run {
        ui.flush();
        let mut console = Console { ui, yes: true, dry_run: false, plan: None };
        let code = handoff::attach::attach(&repo, outcome, attach_command.as_deref(), &mut console)?;
        console.ui.flush();
        std::process::exit(code);
    }
    Ok(())
}

/// One word given, `git codex-handoff X`: X is the thread, and the person
/// picks where it goes; or, inside a thread's worktree, X is where this
/// worktree's thread goes (when X names no thread but a destination).
fn destination_of(repo: &Repo, spec: String, ui: &mut Ui) -> Result<(String, String)> {
    use crate::thread::resolve::{of_this_worktree, resolve_target};
    match resolve_target(repo, &spec) {
        Ok(target) => {
            let host = super::picker::pick(repo, &spec, &target, ui)?;
            Ok((spec, host))
        }
        Err(e) if e.code == "thread_not_found" && names_destination(&spec) => {
            let me = crate::machine::Machine::this(Some(repo))?;
            match of_this_worktree(repo, &me)? {
                Some(target) => Ok((spec_of(&target), spec)),
                None => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// `local`, `.`, or a host this computer knows.
fn names_destination(word: &str) -> bool {
    handoff::is_local(word) || (crate::config::check_host_name(word).is_ok() && crate::config::find_host(word).is_ok())
}

/// THREAD for a thread found without one.
fn spec_of(target: &crate::thread::resolve::Target) -> String {
    match target {
        crate::thread::resolve::Target::Thread(thread) => thread.state.uuid.clone(),
        crate::thread::resolve::Target::Codex(codex) => codex.id.clone(),
    }
}

/// The flag, else `codex-handoff.interruptTimeout`, else 10 seconds.
fn interrupt_timeout(repo: &Repo, flag: Option<u64>) -> Result<u64> {
    if let Some(seconds) = flag {
        return Ok(seconds);
    }
    match repo.config_string(crate::config::INTERRUPT_TIMEOUT) {
        None => Ok(10),
        Some(text) => text.trim().parse().map_err(|_| {
            Error::usage(
                "bad_config",
                format!("{} = {text:?} is not a number of seconds", crate::config::INTERRUPT_TIMEOUT),
            )
            .with_help(format!("fix it with `git config {} 10`", crate::config::INTERRUPT_TIMEOUT))
        }),
    }
}

struct Console<'a> {
    ui: &'a mut Ui,
    yes: bool,
    dry_run: bool,
    plan: Option<Plan>,
}

impl Interaction for Console<'_> {
    fn confirm(&mut self, plan: &Plan) -> bool {
        self.plan = Some(plan.clone());
        self.ui.note(plan_text(plan));
        if self.dry_run || self.yes || !self.ui.can_prompt() {
            return true;
        }
        self.ui.confirm("Hand it off?")
    }

    fn progress(&mut self, text: &str) {
        self.ui.progress(text);
    }

    fn notice(&mut self, text: &str) {
        self.ui.note(text);
    }
}

fn plan_text(plan: &Plan) -> String {
    let c = &plan.changes;
    let mut text = format!("Hand off thread #{} \"{}\"\n", plan.thread, printable(&plan.title));
    if plan.through_here {
        text += &format!(
            "  route     from {} to {} (through this computer; no files here change)\n",
            printable(&plan.from),
            printable(&plan.to)
        );
    } else {
        text += &format!("  from      {}\n", plan.from);
        text += &format!("  to        {}\n", plan.to);
    }
    let reuse = if plan.reuse_worktree { "reused" } else { "new" };
    text += &format!("  worktree  {} ({reuse})\n", printable(&plan.worktree));
    let branch = plan.branch.as_deref().map(printable).unwrap_or("(detached HEAD)".into());
    text += &format!("  branch    {branch} ({})\n", plan.branch_action);
    if let (true, Some(branch)) = (plan.detached, &plan.branch) {
        text += &format!("  detached  {}\n", printable(&detached_line(branch, plan)));
    }
    text += &format!(
        "  changes   {} staged, {} unstaged, {} untracked ({})",
        c.staged,
        c.unstaged,
        c.untracked,
        human_bytes(c.bytes)
    );
    for sub in &c.submodules {
        text += &format!("\n  {}: {}", sub.path, submodule_text(sub));
    }
    if plan.transcript_bytes > 0 {
        text += &format!("\n  conversation  copied to {} ({})", plan.to, human_bytes(plan.transcript_bytes));
    }
    if let Some(codex) = &plan.codex {
        let how = if codex.replaces { "extends the copy from an earlier stay" } else { "new file" };
        text += &format!("\n  codex     {} ({how})", codex.rollout);
        if let Some(warning) = &codex.warning {
            text += &format!("\n  warning   {warning}");
        }
    }
    if plan.running {
        text += "\n  running   its command will be interrupted (SIGINT) before the transfer";
    }
    text
}

/// "1 new commit, 1 unstaged, 2 untracked (12 B)": what changed in one submodule.
fn submodule_text(sub: &crate::worktree::state::SubmoduleChange) -> String {
    let plural = |n: u64, one: &str| if n == 1 { format!("1 {one}") } else { format!("{n} {one}s") };
    let mut parts = Vec::new();
    match sub.new_commits {
        Some(0) => {}
        Some(n) => parts.push(plural(n, "new commit")),
        None => parts.push("moved to a commit the superproject does not record".to_owned()),
    }
    for (n, what) in [(sub.staged, "staged"), (sub.unstaged, "unstaged"), (sub.untracked, "untracked")] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if parts.is_empty() {
        return "unchanged".to_owned();
    }
    let mut text = parts.join(", ");
    if sub.bytes > 0 {
        text += &format!(" ({})", human_bytes(sub.bytes));
    }
    text
}

/// Why the thread works on a detached HEAD at the destination, in one line.
fn detached_line(branch: &str, plan: &Plan) -> String {
    let home = plan.to == "local";
    let place = if home { "here".to_owned() } else { format!("on {}", plan.to) };
    let then = if home {
        format!("the thread comes back on a detached HEAD; {branch} here stays where it is")
    } else {
        format!("the thread works on a detached HEAD there and brings {branch}'s new commits home")
    };
    match &plan.branch_checked_out_in {
        Some(worktree) => format!("{branch} is checked out in {worktree} {place}: {then}"),
        None => format!("--detach: {then}"),
    }
}

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
