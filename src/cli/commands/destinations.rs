//! `git codex-handoff destinations`: which hosts can take a thread.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cli::args::DestinationsArgs;
use crate::cli::output::Ui;
use crate::config::{self, Host};
use crate::error::{Error, Result};
use crate::fingerprint::Identity;
use crate::handoff::{self, ProjectMatch};
use crate::remote::transport::{Connection, Opening};
use crate::repo::Repo;
use crate::text::printable;
use crate::thread::resolve::{resolve_target, Target};
use crate::thread::store;

/// How long a host may take to connect and say hello: a short limit, as
/// the hosts of `~/.ssh/config` include those that are switched off.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// What the project search may take once connected.
const SEARCH_TIME: Duration = Duration::from_secs(3);

pub fn run(args: DestinationsArgs, ui: &mut Ui) -> Result<()> {
    let repo = Repo::discover()?;
    let (subdirectory, heads) = match &args.thread {
        Some(spec) => project_of(&repo, &resolve_target(&repo, spec)?)?,
        None => (repo.subdirectory()?, head_of(&repo)),
    };
    let hosts = config::hosts()?;
    let answers = probe(&repo, &hosts, &subdirectory, &heads, ui)?;
    let (mut rows, mut unreachable) = (Vec::new(), Vec::new());
    for host in &hosts {
        let base = json!({ "host": host.name, "ssh": host.ssh, "transport": host.transport.name(), "discovered": host.discovered });
        let row = match answers.iter().find(|(name, _)| *name == host.name) {
            Some((_, Ok((project, took)))) => with(
                base,
                json!({
                    "available": true,
                    "project": project.project,
                    "round_trip_ms": (took.as_secs_f64() * 1000.0).round(),
                }),
            ),
            Some((_, Err(err))) => with(
                base,
                json!({ "available": false, "reason": reason(err), "code": err.code, "message": err.message }),
            ),
            None => with(
                base,
                json!({
                    "available": false,
                    "reason": "timeout",
                    "code": "probe_timeout",
                    "message": format!("no answer within {} s", (PROBE_TIMEOUT + SEARCH_TIME).as_secs()),
                }),
            ),
        };
        let reached = !matches!(row["reason"].as_str(), Some("unreachable" | "timeout"));
        if row["available"] == true || (args.all && reached) {
            rows.push(row);
        } else if !reached {
            unreachable.push(row);
        }
    }
    ui.json(&json!({ "destinations": rows, "unreachable": unreachable }));
    if rows.is_empty() {
        ui.say(if hosts.is_empty() {
            "No hosts. Add one with `git codex-handoff host add <NAME> <user@host>`, or as `Host` in ~/.ssh/config."
        } else {
            "No reachable host has a saved project for this repository (`--all` shows why)."
        });
    }
    for row in &rows {
        let name = row["host"].as_str().unwrap_or_default();
        ui.say(if row["available"] == true {
            format!(
                "{name:<16} {}  ({:.0} ms)",
                printable(row["project"].as_str().unwrap_or_default()),
                row["round_trip_ms"].as_f64().unwrap_or_default()
            )
        } else {
            format!(
                "{name:<16} unavailable: {} ({})",
                row["reason"].as_str().unwrap_or_default(),
                printable(row["message"].as_str().unwrap_or_default())
            )
        });
    }
    if !unreachable.is_empty() {
        ui.say("Unreachable:");
        for row in &unreachable {
            let name = row["host"].as_str().unwrap_or_default();
            ui.say(format!("  {name:<14} {}", printable(row["message"].as_str().unwrap_or_default())));
        }
    }
    Ok(())
}

/// The project directory a thread works in (relative to its worktree root)
/// and the project commits its history holds, for finding its project on a host.
pub fn project_of(repo: &Repo, target: &Target) -> Result<(String, Vec<gix::ObjectId>)> {
    Ok(match target {
        Target::Thread(thread) => {
            let head = thread.state.head.as_deref().map(store::parse_hex).transpose()?;
            (thread.state.subdirectory.clone(), handoff::thread_heads(repo, head, thread.snapshot))
        }
        // A Codex thread no thread links yet would start where it works.
        Target::Codex(codex) => match crate::thread::resolve::worktree_of_codex(repo, codex) {
            Some(root) => {
                let worktree = Repo::open(&root)?;
                (crate::thread::resolve::codex_subdirectory(codex, &root), head_of(&worktree))
            }
            None => (repo.subdirectory()?, head_of(repo)),
        },
    })
}

fn head_of(repo: &Repo) -> Vec<gix::ObjectId> {
    repo.gix.head_id().ok().map(|id| id.detach()).into_iter().collect()
}

/// What one host answered: its project and the round trip, or why not.
pub type Answer = Result<(ProjectMatch, Duration)>;

/// Ask every host in `hosts` at once for the project (`subdirectory`, with
/// `heads`); the answers that came within the probes' time, by host name.
pub fn probe(
    repo: &Repo,
    hosts: &[Host],
    subdirectory: &str,
    heads: &[gix::ObjectId],
    ui: &mut Ui,
) -> Result<Vec<(String, Answer)>> {
    let identity = Identity::of_this_clone(repo)?;
    let (tx, rx) = mpsc::channel();
    let common_dir = repo.common_dir();
    let opening = Opening { connect_timeout: PROBE_TIMEOUT, batch: true, io_timeout: config::io_timeout()? };
    for host in hosts.iter().cloned() {
        let tx = tx.clone();
        let (identity, subdirectory, common_dir, heads) =
            (identity.clone(), subdirectory.to_owned(), common_dir.clone(), heads.to_vec());
        std::thread::spawn(move || {
            let (notice, answer) = ask(&host, opening, &common_dir, &identity, &subdirectory, &heads);
            let _ = tx.send((host.name.clone(), notice, answer));
        });
    }
    drop(tx);
    // Whatever a host does, the list comes when the probes' time is up.
    let deadline = Instant::now() + PROBE_TIMEOUT + SEARCH_TIME;
    let mut answers = Vec::new();
    while answers.len() < hosts.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((name, notice, answer)) => {
                if let Some(text) = notice {
                    ui.note(text);
                }
                answers.push((name, answer));
            }
            Err(_) => break,
        }
    }
    Ok(answers)
}

/// `base` with the fields of `more` added.
fn with(mut base: Value, more: Value) -> Value {
    if let (Some(base), Value::Object(more)) = (base.as_object_mut(), more) {
        base.extend(more);
    }
    base
}

/// Ask one host for the project (with the round trip of connecting and the
/// hello); also what to say about how its helper was found, if it had to be looked for.
fn ask(
    host: &Host,
    opening: Opening,
    common_dir: &Path,
    identity: &Identity,
    subdirectory: &str,
    heads: &[gix::ObjectId],
) -> (Option<String>, Result<(ProjectMatch, Duration)>) {
    // Each thread opens the repository for itself (a gix repository is not shared across threads).
    let repo = match Repo::open(common_dir) {
        Ok(repo) => repo,
        Err(err) => return (None, Err(err)),
    };
    let mut conn = match Connection::open_with(host, opening) {
        Ok(conn) => conn,
        Err(err) => return (None, Err(err)),
    };
    let found = handoff::find_project(&mut conn, &repo, identity, subdirectory, heads);
    let took = conn.connect_time;
    let notice = conn.notice();
    let _ = conn.close();
    (notice, found.map(|project| (project, took)))
}

fn reason(err: &Error) -> &'static str {
    match err.exit_code() {
        5 => "unreachable",
        6 => "helper missing or too old",
        3 => "no project",
        4 => "histories do not meet",
        _ => "error",
    }
}
