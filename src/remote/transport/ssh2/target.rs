//! Where the `ssh2` transport connects, as `ssh <destination>` would: the
//! destination (`[user@]host` or `ssh://[user@]host[:port]`) resolved
//! through `~/.ssh/config` (then `/etc/ssh/ssh_config`), a user or port in
//! the destination winning over the files'.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::ssh_config::SshConfig;

/// A destination as `ssh` takes it.
#[derive(Debug, PartialEq, Eq)]
pub struct Destination {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// Everything needed to reach one host.
#[derive(Debug, Clone)]
pub struct Target {
    /// The name in the destination (the alias), for messages.
    pub alias: String,
    pub hostname: String,
    pub port: u16,
    pub user: String,
    pub identity_files: Vec<PathBuf>,
    /// Use only agent keys whose public half is a configured identity's.
    pub identities_only: bool,
    pub known_hosts_files: Vec<PathBuf>,
    /// The name looked up in known_hosts instead of `hostname`, if set.
    pub host_key_alias: Option<String>,
    /// `RevokedHostKeys` files.
    pub revoked_host_keys: Vec<PathBuf>,
    /// `HostKeyAlgorithms` as written (`None`: OpenSSH's default).
    pub host_key_algorithms: Option<String>,
    pub connect_timeout: Duration,
}

pub fn parse_destination(destination: &str) -> Option<Destination> {
    if destination.is_empty() || destination.starts_with('-') {
        return None;
    }
    let (rest, url) = match destination.strip_prefix("ssh://") {
        Some(rest) => (rest.trim_end_matches('/'), true),
        None => (destination, false),
    };
    let (user, host_port) = match rest.rsplit_once('@') {
        Some((user, host)) => (Some(user.to_owned()), host),
        None => (None, rest),
    };
    let (host, port) = if !url {
        (host_port.to_owned(), None)
    } else if let Some(inner) = host_port.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (host.to_owned(), port)
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port.parse().ok()?)),
            None => (host_port.to_owned(), None),
        }
    };
    if host.is_empty() || host.starts_with('-') || user.as_deref().is_some_and(|u| u.is_empty() || u.starts_with('-')) {
        return None;
    }
    Some(Destination { user, host, port })
}

/// Resolve `destination` for `ssh2`, refusing what this transport cannot follow.
pub fn resolve(name: &str, destination: &str, connect_timeout: Duration) -> Result<Target> {
    let parsed = parse_destination(destination).ok_or_else(|| {
        Error::usage("bad_destination", format!("{destination:?} is not a usable SSH destination"))
            .with_help("give `user@host`, `ssh://user@host:port`, or an alias from ~/.ssh/config")
    })?;
    let home = crate::config::home()?;
    let config = SshConfig::user_and_system(&home)
        .map_err(|e| Error::failed("ssh_config", format!("cannot read {}: {e}", home.join(".ssh/config").display())))?;
    let resolved = config.resolve(&parsed.host, &crate::ssh_config::local_user());
    if let Some(what) = resolved.unsupported.first() {
        return Err(Error::refused(
            "ssh2_unsupported",
            format!("{name}: ~/.ssh/config sets {what}; the ssh2 transport cannot follow that"),
        )
        .with_help(format!(
            "use the system ssh for this host: `git codex-handoff host add {name} {destination} --transport openssh`"
        )));
    }
    Ok(Target {
        alias: parsed.host,
        hostname: resolved.hostname,
        port: parsed.port.unwrap_or(resolved.port),
        user: parsed.user.unwrap_or(resolved.user),
        identity_files: resolved.identity_files,
        identities_only: resolved.identities_only,
        known_hosts_files: resolved.known_hosts_files,
        host_key_alias: resolved.host_key_alias,
        revoked_host_keys: resolved.revoked_host_keys,
        host_key_algorithms: resolved.host_key_algorithms,
        // The caller's limit wins, as `-o ConnectTimeout` does over the file.
        connect_timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_as_ssh_takes_them() {
        let d = |s: &str| parse_destination(s);
        assert_eq!(d("devbox").unwrap(), Destination { user: None, host: "devbox".into(), port: None });
        assert_eq!(d("me@h").unwrap(), Destination { user: Some("me".into()), host: "h".into(), port: None });
        assert_eq!(
            d("ssh://me@h:2222/").unwrap(),
            Destination { user: Some("me".into()), host: "h".into(), port: Some(2222) }
        );
        assert_eq!(d("ssh://[::1]:22").unwrap(), Destination { user: None, host: "::1".into(), port: Some(22) });
        for bad in ["-oProxyCommand=x", "me@-x", "-@h", "ssh://h:port", "ssh://[::1]x", "@h", ""] {
            assert!(d(bad).is_none(), "{bad}");
        }
    }
}
