//! `git codex-handoff host ...`

use serde_json::json;

use crate::cli::output::Ui;
use crate::cli::{HostAddArgs, HostCommand, HostListArgs, HostNameArg, Transport};
use crate::config::{self, Host, TransportKind};
use crate::error::Result;
use crate::remote::transport::Connection;

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
    let conn = Connection::open(&host)?;
    let millis = conn.connect_time.as_secs_f64() * 1000.0;
    ui.json(&json!({
        "host": host.name,
        "machine": conn.hello.machine,
        "machine_id": conn.hello.machine_id,
        "helper_version": conn.hello.version,
        "client_version": env!("CARGO_PKG_VERSION"),
        "protocol": conn.hello.protocol,
        "round_trip_ms": millis,
    }));
    ui.say(format!(
        "{}: reachable; helper {} (protocol {}), machine {}, this client {}; connect and hello took {millis:.0} ms",
        host.name,
        conn.hello.version,
        conn.hello.protocol,
        conn.hello.machine,
        env!("CARGO_PKG_VERSION")
    ));
    conn.close()
}
