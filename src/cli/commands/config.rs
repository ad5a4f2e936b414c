//! `git codex-handoff config`: every setting with its value here and its default.

use serde_json::{json, Value};

use crate::cli::output::Ui;
use crate::cli::settings::{self, Scope, Setting, SETTINGS};
use crate::config::{self as git_config, Found};
use crate::error::Result;

pub fn run(ui: &mut Ui) -> Result<()> {
    let found = git_config::found()?;
    let repo = crate::repo::Repo::discover().ok();
    let mut rows: Vec<Value> = Vec::new();
    let mut hosts: Vec<String> = Vec::new();
    for f in &found {
        if let Some((_, Some(host))) = settings::classify(&f.key) {
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
    }
    for setting in SETTINGS {
        if setting.scope == Scope::Host {
            continue;
        }
        let values: Vec<&Found> = found
            .iter()
            .filter(|f| matches!(settings::classify(&f.key), Some((s, None)) if s.key == setting.key))
            .collect();
        rows.push(row(setting, setting.key.to_owned(), None, &values, effective(setting, &values, repo.as_ref())));
    }
    for setting in SETTINGS.iter().filter(|s| s.scope == Scope::Host) {
        if hosts.is_empty() {
            rows.push(row(setting, setting.key.to_owned(), None, &[], None));
        }
    }
    for host in &hosts {
        for setting in SETTINGS.iter().filter(|s| s.scope == Scope::Host) {
            let values: Vec<&Found> = found
                .iter()
                .filter(
                    |f| matches!(settings::classify(&f.key), Some((s, Some(h))) if s.key == setting.key && &h == host),
                )
                .collect();
            let key = setting.key.replace("<host>", host);
            let effective = values.last().map(|f| f.value.clone()).or_else(|| host_default(setting));
            rows.push(row(setting, key, Some(host), &values, effective));
        }
    }
    let unknown: Vec<&Found> = found.iter().filter(|f| settings::classify(&f.key).is_none()).collect();
    ui.json(&json!({ "settings": rows, "unknown": unknown }));

    let mut lines: Vec<(String, String, String)> = Vec::new();
    for r in &rows {
        let key = r["key"].as_str().unwrap_or_default().to_owned();
        let values: Vec<String> = r["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                format!("{} ({})", v["value"].as_str().unwrap_or_default(), v["origin"].as_str().unwrap_or_default())
            })
            .collect();
        let value = if values.is_empty() { "-".to_owned() } else { values.join(", ") };
        let default = r["default"].as_str().unwrap_or_default();
        let default = match r["effective"].as_str() {
            Some(e) if values.is_empty() && e != default => format!("{default}: {e}"),
            _ => default.to_owned(),
        };
        lines.push((key, value, default));
    }
    for f in &unknown {
        lines.push((f.key.clone(), format!("{} ({})", f.value, f.origin), "not a setting of this version".to_owned()));
    }
    let key_width = lines.iter().map(|l| l.0.len()).max().unwrap_or(0).max(3);
    let value_width = lines.iter().map(|l| l.1.len()).max().unwrap_or(0).max(5);
    ui.say(format!("{:<key_width$}  {:<value_width$}  DEFAULT", "KEY", "VALUE"));
    for (key, value, default) in lines {
        ui.say(format!("{key:<key_width$}  {value:<value_width$}  {default}"));
    }
    Ok(())
}

fn row(setting: &Setting, key: String, host: Option<&String>, values: &[&Found], effective: Option<String>) -> Value {
    json!({
        "key": key,
        "scope": setting.scope,
        "host": host,
        "multi_valued": setting.multi,
        "default": setting.default,
        "values": values.iter().map(|f| json!({ "value": f.value, "origin": f.origin })).collect::<Vec<_>>(),
        "effective": effective,
        "description": setting.description,
    })
}

/// What the tool would use here for a machine-wide or repository setting.
fn effective(setting: &Setting, values: &[&Found], repo: Option<&crate::repo::Repo>) -> Option<String> {
    if let Some(last) = values.last() {
        if !setting.multi {
            return Some(last.value.clone());
        }
    }
    match setting.key {
        "codex-handoff.machine" => Some(match repo {
            Some(repo) => crate::repo::machine_name(Some(repo)),
            None => crate::config::machine_name(),
        }),
        crate::machine::MACHINE_ID_KEY => crate::machine::known_id(),
        "codex-handoff.worktreeRoot" => crate::config::worktree_root().ok().map(|p| p.to_string_lossy().into_owned()),
        git_config::ALLOW_COMMITS_ELSEWHERE => Some("false".to_owned()),
        _ => None,
    }
}

fn host_default(setting: &Setting) -> Option<String> {
    match setting.key.rsplit('.').next() {
        Some("transport") => Some("openssh".to_owned()),
        Some("helper") => Some(crate::config::DEFAULT_HELPER.to_owned()),
        _ => None,
    }
}
