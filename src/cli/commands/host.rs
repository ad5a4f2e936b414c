//! `git codex-handoff host ...`

use serde_json::{json, Value};

use crate::cli::output::Ui;
use crate::cli::{HostAddArgs, HostCommand, HostListArgs, HostNameArg, Transport};
use crate::config::{self, Host, TransportKind};
use crate::error::Result;
use crate::remote::transport::Connection;
use crate::text::printable;

pub fn run(command: HostCommand, ui: &mut Ui) -> Result<()> {
    match command {
        HostCommand::Add(args) => add(args, ui),
        HostCommand::List(args) => list(args, ui),
        HostCommand::Remove(args) => remove(args, ui),
        HostCommand::Check(args) => check(args, ui),
    }
}

fn add(args: HostAddArgs, ui: &mut Ui) -> Result<()> {
    config::check_host_name(&args.name)?;
    config::check_destination(&args.destination)?;
    let transport = match args.transport {
        Some(Transport::Openssh) | None => TransportKind::Openssh,
        Some(Transport::Ssh2) => TransportKind::Ssh2,
        Some(Transport::Local) => TransportKind::Local,
    };
    let helper = args.helper.unwrap_or_else(|| config::DEFAULT_HELPER.to_owned());
    config::check_helper(&helper)?;
    // For the local transport the destination is the helper's HOME directory.
    let ssh = if transport == TransportKind::Local {
        crate::repo::absolute(std::path::Path::new(&args.destination)).to_string_lossy().into_owned()
    } else {
        args.destination
    };
    let host = Host { name: args.name, ssh, transport, helper };
    config::add_host(&host)?;
    ui.json(&json!({ "host": host }));
    ui.say(format!("Added host {} ({} via {})", host.name, host.ssh, host.transport.name()));
    Ok(())
}

fn list(args: HostListArgs, ui: &mut Ui) -> Result<()> {
    let hosts = config::hosts()?;
    let candidates = if args.ssh_config { ssh_config_aliases() } else { Vec::new() };
    let candidates: Vec<String> = candidates.into_iter().filter(|c| !hosts.iter().any(|h| &h.ssh == c)).collect();
    ui.json(&json!({ "hosts": hosts, "ssh_config_candidates": candidates }));
    if hosts.is_empty() {
        ui.say("No hosts. Add one with `git codex-handoff host add <NAME> <user@host>`.");
    }
    for host in &hosts {
        ui.say(format!("{:<16} {:<32} {:<8} {}", host.name, host.ssh, host.transport.name(), host.helper));
    }
    if !candidates.is_empty() {
        ui.say(format!("From ~/.ssh/config (not added yet): {}", candidates.join(", ")));
    }
    Ok(())
}

/// Concrete `Host` aliases of ~/.ssh/config (patterns are skipped).
fn ssh_config_aliases() -> Vec<String> {
    let Ok(home) = config::home() else { return Vec::new() };
    let Ok(text) = std::fs::read_to_string(home.join(".ssh").join("config")) else { return Vec::new() };
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let mut words = line.split_whitespace();
        if words.next().is_some_and(|w| w.eq_ignore_ascii_case("host")) {
            for alias in words {
                if !alias.contains(['*', '?', '!']) && !out.iter().any(|a| a == alias) {
                    out.push(alias.to_owned());
                }
            }
        }
    }
    out
}

fn remove(args: HostNameArg, ui: &mut Ui) -> Result<()> {
    config::remove_host(&args.name)?;
    ui.json(&json!({ "removed": args.name }));
    ui.say(format!("Removed host {}", args.name));
    Ok(())
}

fn check(args: HostNameArg, ui: &mut Ui) -> Result<()> {
    let host = config::find_host(&args.name)?;
    let mut conn = Connection::open(&host)?;
    if let Some(text) = conn.notice() {
        ui.note(text);
    }
    let millis = conn.connect_time.as_secs_f64() * 1000.0;
    let (helper_path, helper_found) = match &conn.located {
        Some(located) => (Some(located.path.clone()), serde_json::to_value(located.how).unwrap_or_default()),
        None if host.helper.starts_with(['/', '~']) => (Some(host.helper.clone()), json!("setting")),
        None => (conn.hello.executable.clone(), json!("path")),
    };
    // Older helpers do not answer this; they are still usable.
    let environment: Value = conn.call("environment", json!({})).unwrap_or(Value::Null);
    ui.json(&json!({
        "host": host.name,
        "machine": conn.hello.machine,
        "machine_id": conn.hello.machine_id,
        "helper_version": conn.hello.version,
        "helper_path": helper_path,
        "helper_found": helper_found,
        "client_version": env!("CARGO_PKG_VERSION"),
        "protocol": conn.hello.protocol,
        "round_trip_ms": millis,
        "login_shell": environment["login_shell"],
        "codex": environment["codex"],
        "codex_home": environment["codex_home"],
        "codex_home_from": environment["codex_home_from"],
    }));
    ui.say(format!(
        "{}: reachable; helper {} (protocol {}), machine {}, this client {}; connect and hello took {millis:.0} ms",
        host.name,
        printable(&conn.hello.version),
        conn.hello.protocol,
        printable(&conn.hello.machine),
        env!("CARGO_PKG_VERSION")
    ));
    let found = match helper_found.as_str() {
        Some("setting") => "the host's helper setting".to_owned(),
        Some("path") => "on the PATH of a command run over ssh".to_owned(),
        _ => conn.located.as_ref().map(|l| format!("{}; remembered", l.how.describe())).unwrap_or_default(),
    };
    ui.say(format!("  helper      {} ({found})", printable(helper_path.as_deref().unwrap_or("(path unknown)"))));
    ui.say(format!("  Codex CLI   {}", codex_text(&environment)));
    ui.say(format!("  CODEX_HOME  {}", codex_home_text(&environment)));
    conn.close()
}

fn codex_text(environment: &Value) -> String {
    if environment.is_null() {
        return "unknown (the helper is older than this client)".to_owned();
    }
    let codex = &environment["codex"];
    let Some(path) = codex["path"].as_str() else {
        return if environment["asked_login_shell"] == true {
            "not found (through the login shell, nor in the usual folders)".to_owned()
        } else {
            "not looked for (the helper may not ask its login shell: a restricted key?)".to_owned()
        };
    };
    let how = match codex["found"].as_str() {
        Some("folder") => "in a usual install folder",
        _ => "through the login shell",
    };
    let version = codex["version"].as_str().unwrap_or("version unknown: `codex --version` said nothing");
    format!("{} at {} ({how})", printable(version), printable(path))
}

fn codex_home_text(environment: &Value) -> String {
    let Some(path) = environment["codex_home"].as_str() else { return "unknown".to_owned() };
    let from = match environment["codex_home_from"].as_str() {
        Some("environment") => "from the helper's environment",
        Some("login_shell") => "set by the login shell",
        _ => "the default: CODEX_HOME is not set",
    };
    format!("{} ({from})", printable(path))
}
