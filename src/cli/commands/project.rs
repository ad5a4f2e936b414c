//! `git codex-handoff project ...`

use serde_json::{json, Value};

use crate::cli::args::{ProjectCommand, ProjectForgetArgs, ProjectListArgs, ProjectSaveArgs};
use crate::cli::output::Ui;
use crate::config;
use crate::error::{Error, Result};
use crate::handoff::projects;
use crate::remote::transport::Connection;
use crate::text::printable;

pub fn run(command: ProjectCommand, ui: &mut Ui) -> Result<()> {
    match command {
        ProjectCommand::Save(args) => save(args, ui),
        ProjectCommand::List(args) => list(args, ui),
        ProjectCommand::Forget(args) => forget(args, ui),
    }
}

fn save(args: ProjectSaveArgs, ui: &mut Ui) -> Result<()> {
    let dir = args.dir.unwrap_or_else(|| std::path::PathBuf::from("."));
    let answer: Value = match &args.host {
        Some(host) => {
            // The directory is a path on the host.
            let path = dir.to_str().ok_or_else(|| {
                Error::usage("non_utf8_path", format!("{} is not a UTF-8 path", dir.display()))
                    .with_help("paths on a host are sent as text: give a UTF-8 one")
            })?;
            let mut conn = open(host, ui)?;
            let answer = conn.call("project_save", json!({ "path": path }))?;
            conn.close()?;
            answer
        }
        None => {
            let dir = projects::validate_project_dir(&dir)?;
            let added = config::save_project(&dir)?;
            json!({ "path": dir.to_string_lossy(), "added": added })
        }
    };
    ui.json(&answer);
    let where_ = args.host.as_deref().unwrap_or("this computer");
    let path = answer["path"].as_str().unwrap_or_default();
    if answer["added"].as_bool() == Some(false) {
        ui.say(format!("{} was already saved on {where_}", printable(path)));
    } else {
        ui.say(format!("Saved {} as a project on {where_}", printable(path)));
    }
    Ok(())
}

fn list(args: ProjectListArgs, ui: &mut Ui) -> Result<()> {
    let answer: Value = match &args.host {
        Some(host) => {
            let mut conn = open(host, ui)?;
            let answer = conn.call("projects", json!({}))?;
            conn.close()?;
            answer
        }
        None => projects::projects()?,
    };
    ui.json(&answer);
    let projects = answer["projects"].as_array().cloned().unwrap_or_default();
    if projects.is_empty() {
        ui.say("No saved projects. Save one with `git codex-handoff project save [DIR]`.");
    }
    for p in projects {
        let path = printable(p["path"].as_str().unwrap_or_default());
        if p["exists"].as_bool() == Some(false) {
            ui.say(format!("{path}  (missing)"));
            continue;
        }
        // What the project is recognised by: its root commits, or (shallow) its remote URL.
        let known_by = match (p["fingerprint_kind"].as_str(), p["fingerprint"].as_str()) {
            (Some("roots"), Some(value)) => format!("roots {}", value.get(..12).unwrap_or(value)),
            (Some(kind), Some(value)) => format!("{kind} {value}"),
            _ => "no commits or remotes yet".to_owned(),
        };
        let shallow = if p["shallow"].as_bool() == Some(true) { ", shallow" } else { "" };
        ui.say(format!("{path}  ({known_by}{shallow})"));
    }
    Ok(())
}

fn forget(args: ProjectForgetArgs, ui: &mut Ui) -> Result<()> {
    let dir = args.dir.canonicalize().unwrap_or_else(|_| crate::repo::absolute(&args.dir));
    if !config::forget_project(&dir)? {
        return Err(Error::not_found("project_not_found", format!("{} is not a saved project", dir.display()))
            .with_help("`git codex-handoff project list` shows the saved projects"));
    }
    ui.json(&json!({ "path": dir.to_string_lossy(), "removed": true }));
    ui.say(format!("Forgot {}", dir.display()));
    Ok(())
}

/// Connect to the host named `name`, saying how its helper was found if it had to be looked for.
fn open(name: &str, ui: &mut Ui) -> Result<Connection> {
    let conn = Connection::open(&config::find_host(name)?)?;
    if let Some(text) = conn.notice() {
        ui.note(text);
    }
    Ok(conn)
}
