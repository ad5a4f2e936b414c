//! Per-user settings in git's global config: hosts, saved projects, this
//! machine's name and where new worktrees go.
//!
//! Read and written with `git config`, so includes, `GIT_CONFIG_GLOBAL` and
//! XDG locations behave exactly as for git itself. Hosts are also found
//! where the Codex App finds them: the concrete `Host` aliases of
//! `~/.ssh/config` (`ssh_config`) are hosts without `host add`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// How long a handoff waits for a running thread to stop.
pub const INTERRUPT_TIMEOUT: &str = "codex-handoff.interruptTimeout";

/// What `--attach` runs where the thread arrived (a `/bin/sh` command line with placeholders).
pub const ATTACH_COMMAND: &str = "codex-handoff.attachCommand";

/// How long connecting to a host (and its helper's first answer) may take.
pub const CONNECT_TIMEOUT: &str = "codex-handoff.connectTimeout";

/// How long a wait on the other machine may see nothing come.
pub const IO_TIMEOUT: &str = "codex-handoff.ioTimeout";

/// The allow-commits override of the pre-commit hook.
pub const ALLOW_COMMITS_ELSEWHERE: &str = "codex-handoff.allowCommitsElsewhere";

pub const DEFAULT_HELPER: &str = "git-codex-handoff";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Openssh,
    Ssh2,
    Local,
}

impl TransportKind {
    pub fn parse(value: &str) -> Option<TransportKind> {
        match value {
            "openssh" => Some(TransportKind::Openssh),
            "ssh2" => Some(TransportKind::Ssh2),
            "local" => Some(TransportKind::Local),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::Openssh => "openssh",
            TransportKind::Ssh2 => "ssh2",
            TransportKind::Local => "local",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Host {
    pub name: String,
    /// What `ssh` is given (for `local`: the helper's HOME directory).
    pub ssh: String,
    pub transport: TransportKind,
    pub helper: String,
    /// Found in `~/.ssh/config` rather than added with `host add`.
    pub discovered: bool,
}

impl Host {
    /// A host with the default transport and helper.
    pub fn new(name: &str, ssh: &str) -> Host {
        Host {
            name: name.to_owned(),
            ssh: ssh.to_owned(),
            transport: default_transport(),
            helper: DEFAULT_HELPER.to_owned(),
            discovered: false,
        }
    }
}

fn git_config() -> Command {
    let mut cmd = Command::new("git");
    for var in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR"] {
        cmd.env_remove(var);
    }
    cmd.arg("config");
    cmd
}

/// The global entries, read once per process (one `git config` instead of
/// one per setting asked for); a write through this module drops them.
static ENTRIES: std::sync::Mutex<Option<Vec<(String, String)>>> = std::sync::Mutex::new(None);

/// All `codex-handoff.*` entries of the global config, in file order, then
/// those given on git's command line (`git -c codex-handoff.<key>=<value>
/// codex-handoff ...`), which so override the global ones.
fn global_entries() -> Result<Vec<(String, String)>> {
    let mut cached = ENTRIES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(entries) = cached.as_ref() {
        return Ok(entries.clone());
    }
    let entries = read_global_entries()?;
    *cached = Some(entries.clone());
    Ok(entries)
}

/// Forget the entries read so far: the next question reads the file again.
fn forget_entries() {
    *ENTRIES.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
}

fn read_global_entries() -> Result<Vec<(String, String)>> {
    let mut cmd = git_config();
    cmd.args(["--show-scope", "-z", "--get-regexp", r"^codex-handoff\."]);
    let out = cmd.output().map_err(|e| Error::failed("git_missing", "could not run git config").with_source(e))?;
    // Exit 1 means "no such keys".
    if !out.status.success() && out.status.code() != Some(1) {
        return Err(Error::failed(
            "config",
            format!("git config failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        ));
    }
    Ok(parse_show_scope(&out.stdout)
        .into_iter()
        .filter(|f| f.origin == "global" || f.origin == "command")
        .map(|f| (f.key, f.value))
        .collect())
}

/// Read the settings on a thread of their own while the command starts:
/// the `git config` they take runs beside the command's first work.
pub fn prefetch() {
    std::thread::spawn(|| {
        let _ = global_entries();
    });
}

fn set_global(args: &[&str]) -> Result<()> {
    let mut cmd = git_config();
    cmd.arg("--global").args(args);
    let out = cmd.output();
    // Also what a read running meanwhile (a prefetch) may have kept.
    forget_entries();
    let out = out.map_err(|e| Error::failed("git_missing", "could not run git config").with_source(e))?;
    // `--unset` of a missing key exits 5: nothing to do.
    if out.status.success() || (args.first() == Some(&"--unset-all") && out.status.code() == Some(5)) {
        return Ok(());
    }
    Err(Error::failed("config", format!("git config failed: {}", String::from_utf8_lossy(&out.stderr).trim())))
}

pub fn global_value(key: &str) -> Result<Option<String>> {
    let key = key.to_ascii_lowercase();
    Ok(global_entries()?.into_iter().filter(|(k, _)| k.to_ascii_lowercase() == key).map(|(_, v)| v).next_back())
}

/// This machine's name: `codex-handoff.machine`, else the hostname.
pub fn machine_name() -> String {
    match global_value("codex-handoff.machine") {
        Ok(Some(name)) if !name.trim().is_empty() => name.trim().to_owned(),
        _ => crate::repo::hostname(),
    }
}

/// Where new worktrees go: `codex-handoff.worktreeRoot`, default `~/.codex/worktrees`.
pub fn worktree_root() -> Result<PathBuf> {
    if let Some(root) = global_value("codex-handoff.worktreeroot")? {
        return Ok(expand_home(&root));
    }
    Ok(home()?.join(".codex").join("worktrees"))
}

/// `codex-handoff.connectTimeout` (whole seconds, at least 1), default 20.
pub fn connect_timeout() -> Result<std::time::Duration> {
    let Some(text) = global_value(CONNECT_TIMEOUT)? else { return Ok(std::time::Duration::from_secs(20)) };
    match text.trim().parse::<u64>() {
        Ok(seconds) if seconds > 0 => Ok(std::time::Duration::from_secs(seconds)),
        _ => Err(Error::usage("bad_config", format!("{CONNECT_TIMEOUT} = {text:?} is not a number of seconds"))
            .with_help(format!("fix it with `git config --global {CONNECT_TIMEOUT} 20`"))),
    }
}

/// `codex-handoff.ioTimeout`: seconds (a decimal fraction allowed), 45 by default.
pub fn io_timeout() -> Result<std::time::Duration> {
    let Some(text) = global_value(IO_TIMEOUT)? else { return Ok(std::time::Duration::from_secs(45)) };
    match text.trim().parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds <= 86_400.0 => Ok(std::time::Duration::from_secs_f64(seconds)),
        _ => Err(Error::usage("bad_config", format!("{IO_TIMEOUT} = {text:?} is not a number of seconds"))
            .with_help(format!("fix it with `git config --global {IO_TIMEOUT} 45`"))),
    }
}

pub fn home() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| Error::failed("no_home", "HOME is not set").with_help("set HOME to your home directory"))
}

fn expand_home(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => home().map(|h| h.join(rest)).unwrap_or_else(|_| PathBuf::from(path)),
        None => PathBuf::from(path),
    }
}

/// Host names are short words: letters, digits, `.`, `_`, `-`; not starting with `-`.
pub fn check_host_name(name: &str) -> Result<()> {
    if name == "local" || name == "." {
        return Err(Error::usage("bad_host", format!("{name:?} means this computer and cannot name a host"))
            .with_help("choose another name, such as `devbox`"));
    }
    if name == "cloud" || name.starts_with("cloud:") {
        return Err(Error::refused("unsupported_destination", "handoff to a Codex cloud environment isn't supported")
            .with_help("add a host reachable over SSH instead"));
    }
    let ok = !name.is_empty()
        && !name.starts_with('-')
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(Error::usage("bad_host", format!("{name:?} is not a valid host name"))
            .with_help("use letters, digits, `.`, `_` and `-`, not starting with `-`"));
    }
    Ok(())
}

/// An SSH destination may not start with `-` (it would be an ssh option) nor
/// hold whitespace or control characters.
pub fn check_destination(destination: &str) -> Result<()> {
    if destination.is_empty()
        || destination.starts_with('-')
        || destination.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::usage("bad_destination", format!("{destination:?} is not a usable SSH destination"))
            .with_help(
                "give `user@host`, `host`, or an alias from ~/.ssh/config; it may not start with `-` or hold spaces",
            ));
    }
    Ok(())
}

/// The helper is run by a fixed command line through the remote login shell,
/// so its path must need no quoting in any shell.
pub fn check_helper(helper: &str) -> Result<()> {
    let ok = !helper.is_empty()
        && !helper.starts_with('-')
        && helper.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | '~'));
    if !ok {
        return Err(Error::usage("bad_helper", format!("{helper:?} is not a usable helper path"))
            .with_help("use a path of letters, digits and `/._-+~` (no spaces or shell characters)"));
    }
    Ok(())
}

/// Configured hosts, then the hosts found in `~/.ssh/config`: every
/// concrete alias that names no configured host and is not already the
/// destination of one (a configured host of the same name wins).
pub fn hosts() -> Result<Vec<Host>> {
    let mut hosts = configured_hosts()?;
    for alias in ssh_config_aliases() {
        if !hosts.iter().any(|h| h.name == alias || (h.ssh == alias && h.transport != TransportKind::Local)) {
            hosts.push(Host { discovered: true, ..Host::new(&alias, &alias) });
        }
    }
    Ok(hosts)
}

/// The concrete `Host` aliases of `~/.ssh/config` and the files it
/// includes, usable as host names; none when it cannot be read.
pub fn ssh_config_aliases() -> Vec<String> {
    let Ok(home) = home() else { return Vec::new() };
    let Ok(ssh_config) = crate::ssh_config::SshConfig::user(&home) else { return Vec::new() };
    ssh_config.concrete_aliases().into_iter().filter(|a| check_host_name(a).is_ok()).collect()
}

/// The hosts added with `host add`.
pub fn configured_hosts() -> Result<Vec<Host>> {
    let mut hosts: Vec<Host> = Vec::new();
    for (key, value) in global_entries()? {
        let Some(rest) = key.strip_prefix("codex-handoff.") else { continue };
        let Some((name, field)) = rest.rsplit_once('.') else { continue };
        let host = match hosts.iter_mut().position(|h| h.name == name) {
            Some(i) => &mut hosts[i],
            None => {
                hosts.push(Host::new(name, ""));
                hosts.last_mut().expect("just pushed")
            }
        };
        match field {
            "ssh" => host.ssh = value,
            "transport" => host.transport = TransportKind::parse(&value).unwrap_or(host.transport),
            "helper" => host.helper = value,
            _ => {}
        }
    }
    hosts.retain(|h| !h.ssh.is_empty());
    Ok(hosts)
}

/// `openssh` where an `ssh` binary is on PATH; else `ssh2` when this build has it.
pub fn default_transport() -> TransportKind {
    let ssh_on_path =
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("ssh").is_file()));
    if ssh_on_path || !cfg!(feature = "ssh2") {
        TransportKind::Openssh
    } else {
        TransportKind::Ssh2
    }
}

/// A configured host, else a concrete alias of `~/.ssh/config`.
pub fn find_host(name: &str) -> Result<Host> {
    let hosts = configured_hosts()?;
    if let Some(host) = hosts.iter().find(|h| h.name == name) {
        return Ok(host.clone());
    }
    let aliases = ssh_config_aliases();
    if aliases.iter().any(|a| a == name) {
        return Ok(Host { discovered: true, ..Host::new(name, name) });
    }
    let known: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).chain(aliases.iter().map(String::as_str)).collect();
    let known = if known.is_empty() { "none yet".to_owned() } else { known.join(", ") };
    Err(Error::not_found("host_not_found", format!("no host named {name:?} (known: {known})")).with_help(format!(
        "add it with `git codex-handoff host add {name} <user@host>`, or as `Host {name}` in ~/.ssh/config"
    )))
}

pub fn add_host(host: &Host) -> Result<()> {
    let section = format!("codex-handoff.{}", host.name);
    set_global(&[&format!("{section}.ssh"), &host.ssh])?;
    set_global(&[&format!("{section}.transport"), host.transport.name()])?;
    set_global(&[&format!("{section}.helper"), &host.helper])?;
    Ok(())
}

/// Remember where a host's helper is (its `helper` setting).
pub fn set_helper(host: &str, helper: &str) -> Result<()> {
    check_helper(helper)?;
    set_global(&[&format!("codex-handoff.{host}.helper"), helper])
}

pub fn remove_host(name: &str) -> Result<()> {
    if find_host(name)?.discovered {
        return Err(Error::not_found(
            "host_not_configured",
            format!("{name} is not a configured host: it comes from ~/.ssh/config"),
        )
        .with_help(format!("remove its `Host {name}` entry from ~/.ssh/config to stop offering it")));
    }
    let mut cmd = git_config();
    cmd.args(["--global", "--remove-section", &format!("codex-handoff.{name}")]);
    let out = cmd.output();
    forget_entries();
    let out = out?;
    if !out.status.success() {
        return Err(Error::failed("config", format!("could not remove host {name}")));
    }
    Ok(())
}

/// Saved project directories (absolute paths).
pub fn projects() -> Result<Vec<PathBuf>> {
    Ok(global_entries()?
        .into_iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("codex-handoff.project"))
        .map(|(_, v)| PathBuf::from(v))
        .collect())
}

pub fn save_project(dir: &Path) -> Result<bool> {
    if projects()?.iter().any(|p| p == dir) {
        return Ok(false);
    }
    set_global(&["--add", "codex-handoff.project", &dir.to_string_lossy()])?;
    Ok(true)
}

pub fn forget_project(dir: &Path) -> Result<bool> {
    if !projects()?.iter().any(|p| p == dir) {
        return Ok(false);
    }
    let pattern = format!("^{}$", regex_escape(&dir.to_string_lossy()));
    set_global(&["--unset-all", "codex-handoff.project", &pattern])?;
    Ok(true)
}

fn regex_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One value found in git's config.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Found {
    /// The key as git spells it (lower case except the host name).
    pub key: String,
    pub value: String,
    /// git's scope name: `global`, `local`, `worktree`, `system` or `command`.
    pub origin: String,
}

/// Every `codex-handoff.*` value git sees from the current directory
/// (all scopes, in git's order: later wins).
pub fn found() -> Result<Vec<Found>> {
    let mut cmd = Command::new("git");
    cmd.args(["config", "--show-scope", "-z", "--get-regexp", r"^codex-handoff\."]);
    let out = cmd.output().map_err(|e| Error::failed("git_missing", "could not run git config").with_source(e))?;
    // Exit 1 means "no such keys".
    if !out.status.success() && out.status.code() != Some(1) {
        return Err(Error::failed(
            "config",
            format!("git config failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        ));
    }
    Ok(parse_show_scope(&out.stdout))
}

/// `git config --show-scope -z --get-regexp` prints `scope NUL key LF value NUL` per entry.
pub fn parse_show_scope(bytes: &[u8]) -> Vec<Found> {
    let fields: Vec<String> = bytes.split(|b| *b == 0).map(|f| String::from_utf8_lossy(f).into_owned()).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < fields.len() {
        let origin = fields[i].clone();
        let (key, value) = match fields[i + 1].split_once('\n') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (fields[i + 1].clone(), String::new()),
        };
        if !key.is_empty() {
            out.push(Found { key, value, origin });
        }
        i += 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_scope_output_is_parsed() {
        let raw = b"global\0codex-handoff.machine\nlaptop\0local\0codex-handoff.devbox.ssh\nme@devbox\0";
        let found = parse_show_scope(raw);
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].origin.as_str(), found[0].key.as_str(), found[0].value.as_str()),
            ("global", "codex-handoff.machine", "laptop")
        );
        assert_eq!(found[1].key, "codex-handoff.devbox.ssh");
    }
}
