//! `git codex-handoff <THREAD>` with no HOST: the destinations the thread
//! can go to — this computer when it is elsewhere, and every host with a
//! matching saved project, probed at once, with the project there and the
//! round trip. On a terminal the person picks one; otherwise the command
//! stops (exit 2) naming them, as JSON under `--json`.

use serde_json::json;

use crate::cli::commands::destinations;
use crate::cli::output::Ui;
use crate::config;
use crate::error::{Error, Result};
use crate::machine::Machine;
use crate::repo::Repo;
use crate::text::printable;
use crate::thread::resolve::Target;

/// One destination the thread can go to.
struct Choice {
    /// The HOST to give: `local`, or a host name.
    host: String,
    /// The project directory there (none for this computer).
    project: Option<String>,
    round_trip_ms: Option<f64>,
}

impl Choice {
    fn text(&self) -> String {
        match (&self.project, self.round_trip_ms) {
            (Some(project), Some(ms)) => format!("{:<16} {}  ({ms:.0} ms)", self.host, printable(project)),
            _ => "this computer".to_owned(),
        }
    }
}

/// The destination the person picks for the thread `target` (named `spec`).
pub fn pick(repo: &Repo, spec: &str, target: &Target, ui: &mut Ui) -> Result<String> {
    let me = Machine::this(Some(repo))?;
    let (name, elsewhere) = match target {
        Target::Thread(thread) if thread.state.owned_by(&me) => (format!("thread #{}", thread.state.number), None),
        Target::Thread(thread) => (format!("thread #{}", thread.state.number), Some(thread.owner_name(&me))),
        Target::Codex(codex) => (format!("Codex thread {}", codex.id), None),
    };
    let (subdirectory, heads) = destinations::project_of(repo, target)?;
    let hosts = config::hosts()?;
    if !hosts.is_empty() {
        ui.progress(format!("looking for {name}'s project on {} host(s)", hosts.len()));
    }
    let answers = destinations::probe(repo, &hosts, &subdirectory, &heads, ui)?;
    let mut choices = Vec::new();
    if elsewhere.is_some() {
        choices.push(Choice { host: "local".into(), project: None, round_trip_ms: None });
    }
    // In the order hosts are listed; the host the thread is on is no destination.
    for host in hosts.iter().filter(|h| Some(&h.name) != elsewhere.as_ref()) {
        if let Some((_, Ok((project, took)))) = answers.iter().find(|(n, _)| *n == host.name) {
            choices.push(Choice {
                host: host.name.clone(),
                project: Some(project.project.clone()),
                round_trip_ms: Some((took.as_secs_f64() * 1000.0).round()),
            });
        }
    }
    let on = match &elsewhere {
        Some(host) => format!(" (it is on {host})"),
        None => String::new(),
    };
    if choices.is_empty() {
        return Err(Error::usage("no_destination", format!("{name} has nowhere to go{on}: no reachable host has a saved project for this repository"))
            .with_help("save the repository as a project on a host (`git codex-handoff project save` there); `git codex-handoff destinations --all` shows why each host cannot take it"));
    }
    if !ui.can_prompt() {
        let listed: Vec<String> = choices
            .iter()
            .map(|c| match (&c.project, c.round_trip_ms) {
                (Some(project), Some(ms)) => format!("{} ({}, {ms:.0} ms)", c.host, printable(project)),
                _ => "this computer (local)".to_owned(),
            })
            .collect();
        let fields = json!({ "choices": choices.iter().map(|c| json!({
            "host": c.host,
            "this_computer": c.project.is_none(),
            "project": c.project,
            "round_trip_ms": c.round_trip_ms,
        })).collect::<Vec<_>>() });
        if let serde_json::Value::Object(fields) = fields {
            ui.with_error_fields(fields);
        }
        return Err(Error::usage(
            "missing_host",
            format!("where should {name} go{on}? It can go to: {}", listed.join("; ")),
        )
        .with_help(format!(
            "name the destination: `git codex-handoff {spec} {}`{}",
            choices[0].host,
            if elsewhere.is_some() { " (`local` is this computer)" } else { "" }
        )));
    }
    ui.note(format!("Where should {name} go{on}?"));
    for (i, choice) in choices.iter().enumerate() {
        ui.note(format!("  {}  {}", i + 1, choice.text()));
    }
    match ui.choose("Destination", choices.len()) {
        Some(i) => Ok(choices.swap_remove(i).host),
        None => Err(Error::failed("cancelled", "no destination picked; nothing was changed")),
    }
}
