//! `git codex-handoff host ...`

use serde_json::{json, Value};

use crate::cli::args::{HostAddArgs, HostCommand, HostListArgs, HostNameArg, Transport};
use crate::cli::output::Ui;
use crate::config::{self, Host, TransportKind};
use crate::error::Result;
use crate::remote::transport::{self, Connection, Reached};
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
        Some(Transport::Openssh) => TransportKind::Openssh,
        Some(Transport::Ssh2) => TransportKind::Ssh2,
        Some(Transport::Local) => TransportKind::Local,
        None => config::default_transport(),
    };
    let helper = args.helper.unwrap_or_else(|| config::DEFAULT_HELPER.to_owned());
    config::check_helper(&helper)?;
    // For the local transport the destination is the helper's HOME directory.
    let ssh = if transport == TransportKind::Local {
        crate::repo::absolute(std::path::Path::new(&args.destination)).to_string_lossy().into_owned()
    } else {
        args.destination
    };
    let host = Host { transport, helper, ..Host::new(&args.name, &ssh) };
    // Settings this transport cannot follow are refused before anything is saved.
    transport::check_settings(&host)?;
    config::add_host(&host)?;
    // Where the transport can tell, say at once how the host answers (it may be down now: no failure).
    let reached = transport::handshake(&host, config::connect_timeout()?);
    let (reached_json, reached_text) = match &reached {
        Ok(Some(r)) => (json!(r), format!("; {}", reached_line(r))),
        Ok(None) => (Value::Null, String::new()),
        Err(err) => (json!({ "error": { "code": err.code, "message": err.message } }), String::new()),
    };
    ui.json(&json!({ "host": host, "transport": host.transport.name(), "reached": reached_json }));
    ui.say(format!("Added host {} ({} via {}){reached_text}", host.name, host.ssh, host.transport.name()));
    if let Err(err) = reached {
        ui.note(format!("{} cannot be reached now: {}", host.name, err.message));
        if let Some(help) = &err.help {
            ui.note(format!("  {help}"));
        }
    }
    Ok(())
}

/// How a connection reached its host, in a few words.
fn reached_line(r: &Reached) -> String {
    let mut parts = vec![format!("transport {}", r.transport)];
    if let Some(algorithm) = &r.host_key_algorithm {
        let fingerprint = r.host_key_fingerprint.as_deref().unwrap_or_default();
        parts.push(format!("host key {algorithm} {fingerprint}").trim_end().to_owned());
    }
    if let Some(auth) = &r.auth {
        parts.push(format!("authenticated with {auth}"));
    }
    parts.join(", ")
}

fn list(_args: HostListArgs, ui: &mut Ui) -> Result<()> {
    let hosts = config::hosts()?;
    let discovered: Vec<&str> = hosts.iter().filter(|h| h.discovered).map(|h| h.name.as_str()).collect();
    ui.json(&json!({ "hosts": hosts, "ssh_config_candidates": discovered }));
    if hosts.is_empty() {
        ui.say(
            "No hosts. Add one with `git codex-handoff host add <NAME> <user@host>`, or as `Host` in ~/.ssh/config.",
        );
    }
    for host in &hosts {
        let origin = if host.discovered { "  (discovered in ~/.ssh/config)" } else { "" };
        ui.say(format!("{:<16} {:<32} {:<8} {}{origin}", host.name, host.ssh, host.transport.name(), host.helper));
    }
    Ok(())
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
    let reached = conn.reached();
    let (helper_path, helper_found) = match &conn.located {
        Some(located) => (Some(located.path.clone()), serde_json::to_value(located.how).unwrap_or_default()),
        None if host.helper.starts_with(['/', '~']) => (Some(host.helper.clone()), json!("setting")),
        None => (conn.hello.executable.clone(), json!("path")),
    };
    // Older helpers do not answer this; they are still usable.
    let environment: Value = conn.call("environment", json!({})).unwrap_or(Value::Null);
    ui.json(&json!({
        "transport": reached.transport,
        "host_key_algorithm": reached.host_key_algorithm,
        "host_key_fingerprint": reached.host_key_fingerprint,
        "auth": reached.auth,
        "discovered": host.discovered,
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
    ui.say(format!("  {}", reached_line(&reached)));
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
