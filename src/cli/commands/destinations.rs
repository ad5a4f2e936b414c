//! `git codex-handoff destinations`: which hosts can take a thread.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cli::output::Ui;
use crate::cli::DestinationsArgs;
use crate::config::{self, Host};
use crate::error::{Error, Result};
use crate::fingerprint::Identity;
use crate::handoff::{self, ProjectMatch};
use crate::remote::transport::Connection;
use crate::repo::Repo;
use crate::text::printable;
use crate::thread::resolve::{resolve_target, Target};
use crate::thread::store;

/// How long to wait for all hosts together.
const TIMEOUT: Duration = Duration::from_secs(15);

pub fn run(args: DestinationsArgs, ui: &mut Ui) -> Result<()> {
    let repo = Repo::discover()?;
    let current_head = || repo.gix.head_id().ok().map(|id| id.detach()).into_iter().collect::<Vec<_>>();
    let (subdirectory, heads) = match &args.thread {
        // A Codex thread no thread links yet would start here, in this project.
        Some(spec) => match resolve_target(&repo, spec)? {
            Target::Thread(thread) => {
                let head = thread.state.head.as_deref().map(store::parse_hex).transpose()?;
                (thread.state.subdirectory.clone(), handoff::thread_heads(&repo, head, thread.snapshot))
            }
            Target::Codex(_) => (repo.subdirectory()?, current_head()),
        },
        None => (repo.subdirectory()?, current_head()),
    };
    let identity = Identity::of_this_clone(&repo)?;
    let hosts = config::hosts()?;
    let (tx, rx) = mpsc::channel();
    let common_dir = repo.common_dir();
    for host in hosts.clone() {
        let tx = tx.clone();
        let (identity, subdirectory, common_dir, heads) =
            (identity.clone(), subdirectory.clone(), common_dir.clone(), heads.clone());
        std::thread::spawn(move || {
            let (notice, answer) = ask(&host, &common_dir, &identity, &subdirectory, &heads);
            let _ = tx.send((host.name.clone(), notice, answer));
        });
    }
    drop(tx);
    let deadline = Instant::now() + TIMEOUT;
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
    let mut rows = Vec::new();
    for host in &hosts {
        let row = match answers.iter().find(|(name, _)| *name == host.name) {
            Some((_, Ok(project))) => {
                json!({ "host": host.name, "ssh": host.ssh, "available": true, "project": project.project })
            }
            Some((_, Err(err))) => {
                json!({ "host": host.name, "ssh": host.ssh, "available": false, "reason": reason(err), "message": err.message })
            }
            None => {
                json!({ "host": host.name, "ssh": host.ssh, "available": false, "reason": "timeout", "message": "no answer in time" })
            }
        };
        if args.all || row["available"] == true {
            rows.push(row);
        }
    }
    ui.json(&json!({ "destinations": rows }));
    if rows.is_empty() {
        ui.say(if hosts.is_empty() {
            "No hosts configured. Add one with `git codex-handoff host add <NAME> <user@host>`."
        } else {
            "No host has a saved project for this repository (`--all` shows why)."
        });
    }
    for row in &rows {
        let text = if row["available"] == true {
            format!(
                "{:<16} {}",
                row["host"].as_str().unwrap_or_default(),
                printable(row["project"].as_str().unwrap_or_default())
            )
        } else {
            format!(
                "{:<16} unavailable: {} ({})",
                row["host"].as_str().unwrap_or_default(),
                row["reason"].as_str().unwrap_or_default(),
                row["message"].as_str().unwrap_or_default()
            )
        };
        ui.say(text);
    }
    Ok(())
}

/// Ask one host; also what to say about how its helper was found, if it had to be looked for.
fn ask(
    host: &Host,
    common_dir: &Path,
    identity: &Identity,
    subdirectory: &str,
    heads: &[gix::ObjectId],
) -> (Option<String>, Result<ProjectMatch>) {
    // Each thread opens the repository for itself (a gix repository is not shared across threads).
    let repo = match Repo::open(common_dir) {
        Ok(repo) => repo,
        Err(err) => return (None, Err(err)),
    };
    let mut conn = match Connection::open(host) {
        Ok(conn) => conn,
        Err(err) => return (None, Err(err)),
    };
    let found = handoff::find_project(&mut conn, &repo, identity, subdirectory, heads);
    let notice = conn.notice();
    let _ = conn.close();
    (notice, found)
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
