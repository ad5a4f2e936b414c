//! Connecting with libssh2: TCP within the connect timeout, key exchange
//! preferring the host key types known_hosts holds for the host, the strict
//! host key check (`known_hosts`), then authentication: every ssh-agent key,
//! then the identity files.

use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use ssh2::{MethodType, Session};

use super::known_hosts::{self, KnownHosts, Verdict};
use super::target::Target;
use crate::error::{Error, Kind, Result};

/// An authenticated session, still blocking.
pub struct Connected {
    pub session: Session,
    /// Its TCP socket, for poll(2) (the session owns the stream).
    pub fd: RawFd,
    pub facts: super::super::link::Reached,
}

pub fn connect(name: &str, t: &Target) -> Result<Connected> {
    let tcp = tcp_connect(name, t)?;
    let _ = tcp.set_nodelay(true);
    let fd = tcp.as_raw_fd();
    let failed = |code: &'static str, what: String| unreachable(code, format!("{name}: {what}"));
    let mut session = Session::new().map_err(|e| failed("ssh_failed", format!("no SSH session: {e}")))?;
    // Key exchange and authentication give up after this long.
    session.set_timeout(u32::try_from(t.connect_timeout.as_millis()).unwrap_or(u32::MAX));
    session.set_tcp_stream(tcp);

    let known = KnownHosts::load(&t.known_hosts_files)
        .map_err(|e| Error::failed("known_hosts", format!("cannot read known_hosts: {e}")))?;
    let key_host = t.host_key_alias.as_deref().unwrap_or(&t.hostname);
    let supported = session.supported_algs(MethodType::HostKey).unwrap_or_default();
    let allowed = crate::ssh_config::trust::host_key_algorithms(t.host_key_algorithms.as_deref(), &supported);
    if allowed.is_empty() {
        let set = t.host_key_algorithms.as_deref().unwrap_or("(OpenSSH's default)");
        return Err(Error::refused(
            "ssh2_unsupported",
            format!("{name}: HostKeyAlgorithms {set} allows no host key algorithm the ssh2 transport has"),
        )
        .with_help(format!("use the system ssh for this host: `--transport openssh` (`git codex-handoff host add {name} ... --transport openssh`)")));
    }
    let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
    let preference = known_hosts::hostkey_preference(&known.key_types_for(key_host, t.port), &allowed);
    session
        .method_pref(MethodType::HostKey, &preference)
        .map_err(|e| failed("ssh_failed", format!("host key algorithms {preference}: {e}")))?;
    session.handshake().map_err(|e| {
        let timed_out = e.code() == ssh2::ErrorCode::Session(-9) || e.message().contains("Timed out");
        if timed_out {
            failed(
                "connect_timeout",
                format!(
                    "{}:{} did not complete the SSH handshake within {} s",
                    t.hostname,
                    t.port,
                    t.connect_timeout.as_secs()
                ),
            )
        } else {
            // Often no host key algorithm both sides allow: say which this side allowed.
            failed(
                "ssh_handshake_failed",
                format!(
                    "the SSH handshake with {}:{} failed: {e} (HostKeyAlgorithms here: {preference})",
                    t.hostname, t.port
                ),
            )
        }
    })?;

    let algorithm = session.methods(MethodType::HostKey).unwrap_or_default().to_owned();
    let blob = session.host_key().map(|(blob, _)| blob.to_vec()).unwrap_or_default();
    let fingerprint = known_hosts::fingerprint_sha256(&blob);
    check_revoked(name, t, &blob, &fingerprint)?;
    check_host_key(name, t, &known, key_host, &blob, &fingerprint)?;
    let auth = authenticate(name, &session, t)?;
    let facts = super::super::link::Reached {
        transport: "ssh2",
        host_key_algorithm: Some(algorithm),
        host_key_fingerprint: Some(fingerprint),
        auth: Some(auth),
    };
    Ok(Connected { session, fd, facts })
}

fn unreachable(code: &'static str, message: String) -> Error {
    Error::new(Kind::Unreachable, code, message)
}

fn tcp_connect(name: &str, t: &Target) -> Result<TcpStream> {
    let cannot = |why: String| {
        unreachable("host_unreachable", format!("could not connect to {name} ({}:{}): {why}", t.hostname, t.port))
            .with_help("check that the host is up and the address and port in ~/.ssh/config are right")
    };
    let addresses: Vec<_> =
        (t.hostname.as_str(), t.port).to_socket_addrs().map_err(|e| cannot(e.to_string()))?.collect();
    let mut last = String::from("no address");
    for address in addresses {
        match TcpStream::connect_timeout(&address, t.connect_timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last = format!("no answer within {} s", t.connect_timeout.as_secs());
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(cannot(last))
}

/// `RevokedHostKeys`, checked before known_hosts as ssh checks it.
fn check_revoked(name: &str, t: &Target, blob: &[u8], fingerprint: &str) -> Result<()> {
    let key_type = known_hosts::blob_key_type(blob).unwrap_or_default();
    match super::revoked::check(&t.revoked_host_keys, blob) {
        super::revoked::Revocation::Fine => Ok(()),
        super::revoked::Revocation::Revoked(file) => Err(unreachable(
            "host_key_revoked",
            format!(
                "the host key of {name} is revoked by RevokedHostKeys {}: {key_type} {fingerprint}",
                file.display()
            ),
        )
        .with_help(
            "someone may be intercepting the connection, or the key was retired: check with the host's owner",
        )),
        super::revoked::Revocation::Unchecked(file, why) => Err(Error::refused(
            "ssh2_unsupported",
            format!("{name}: RevokedHostKeys {} could not be checked ({why})", file.display()),
        )
        .with_help(format!(
            "fix the file, or use the system ssh for this host: `git codex-handoff host add {name} ... --transport openssh`"
        ))),
    }
}

fn check_host_key(
    name: &str,
    t: &Target,
    known: &KnownHosts,
    key_host: &str,
    blob: &[u8],
    fingerprint: &str,
) -> Result<()> {
    let key_type = known_hosts::blob_key_type(blob).unwrap_or_default();
    let shown = known_hosts::lookup_name(key_host, t.port);
    let files: Vec<String> = t.known_hosts_files.iter().map(|f| f.display().to_string()).collect();
    let (code, message) = match known.check(key_host, t.port, blob) {
        Verdict::Match(_) => return Ok(()),
        Verdict::Changed(at) => (
            "host_key_changed",
            format!("the host key of {name} ({shown}) has CHANGED: known_hosts has another {key_type} key at {at}; the server sent {fingerprint}"),
        ),
        Verdict::Revoked(at) => {
            ("host_key_revoked", format!("the host key of {name} ({shown}) is revoked ({at}): {key_type} {fingerprint}"))
        }
        Verdict::Unknown { other_types, cert_authority } => {
            let also = if cert_authority {
                " (known_hosts trusts it through @cert-authority: host certificates need the openssh transport)".to_owned()
            } else if other_types.is_empty() {
                String::new()
            } else {
                format!(" (known_hosts has a key of another type for it: {})", other_types.join(", "))
            };
            ("host_key_unknown", format!("the host key of {name} ({shown}) is not known{also}: {key_type} {fingerprint}"))
        }
    };
    let help = match code {
        "host_key_unknown" => format!(
            "if {fingerprint} is the host's key (ask its owner, or run `ssh-keygen -lf /etc/ssh/ssh_host_{}_key.pub` there), \
             add this line to {}: {}",
            match key_type.as_str() {
                "ssh-rsa" => "rsa",
                t if t.starts_with("ecdsa-") => "ecdsa",
                _ => "ed25519",
            },
            files.first().map(String::as_str).unwrap_or("~/.ssh/known_hosts"),
            known_hosts::format_line(key_host, t.port, blob)
        ),
        _ => "someone may be intercepting the connection, or the host was reinstalled: check with its owner before \
              changing known_hosts"
            .to_owned(),
    };
    Err(unreachable(code, message).with_help(help))
}

/// Every agent key (not only the first, as `userauth_agent` does), then the
/// identity files. With IdentitiesOnly, only agent keys that are a
/// configured identity's public half.
fn authenticate(name: &str, session: &Session, t: &Target) -> Result<String> {
    let mut tried = Vec::new();
    let wanted: Vec<Vec<u8>> = t.identity_files.iter().filter_map(|f| public_blob(f)).collect();
    if std::env::var_os("SSH_AUTH_SOCK").is_some_and(|s| !s.is_empty()) {
        let agent =
            session.agent().ok().and_then(|mut a| (a.connect().is_ok() && a.list_identities().is_ok()).then_some(a));
        match agent {
            Some(mut agent) => {
                for identity in agent.identities().unwrap_or_default() {
                    if t.identities_only && !wanted.iter().any(|p| p == identity.blob()) {
                        continue;
                    }
                    if agent.userauth(&t.user, &identity).is_ok() && session.authenticated() {
                        return Ok(format!("ssh-agent key {}", identity.comment()));
                    }
                    tried.push(format!("ssh-agent key {}", identity.comment()));
                }
                let _ = agent.disconnect();
            }
            None => tried.push("ssh-agent (could not connect to SSH_AUTH_SOCK)".to_owned()),
        }
    }
    for file in t.identity_files.iter().filter(|f| f.is_file()) {
        if let Some(why) = unusable_key(file) {
            tried.push(format!("{} ({why})", file.display()));
            continue;
        }
        let public = public_path(file);
        let public = public.is_file().then_some(public.as_path());
        match session.userauth_pubkey_file(&t.user, public, file, None) {
            Ok(()) if session.authenticated() => return Ok(format!("identity file {}", file.display())),
            Ok(()) => tried.push(format!("{} (not accepted)", file.display())),
            Err(e) => tried.push(format!("{} ({})", file.display(), e.message())),
        }
    }
    let tried = if tried.is_empty() { "nothing: no ssh-agent, no identity file".to_owned() } else { tried.join("; ") };
    Err(unreachable("auth_failed", format!("{name}: no key was accepted for {}@{}; tried {tried}", t.user, t.alias))
        .with_help(format!(
            "check that `ssh {}` logs in without a password; the ssh2 transport uses ssh-agent and the identity files \
             of ~/.ssh/config (no passphrase prompts, FIDO keys or certificates: use `--transport openssh` for those)",
            t.alias
        )))
}

/// Why a key file cannot be used without a prompt, if it cannot.
fn unusable_key(file: &Path) -> Option<&'static str> {
    let text = std::fs::read_to_string(file).ok()?;
    if text.contains("Proc-Type: 4,ENCRYPTED") || text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
        return Some("encrypted: add it to ssh-agent");
    }
    // OpenSSH's format: "openssh-key-v1\0", then the cipher name as an SSH string.
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let bytes = known_hosts::base64_decode(body.trim()).unwrap_or_default();
    let rest = bytes.strip_prefix(b"openssh-key-v1\0")?;
    let cipher = rest.get(4..4 + u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize)?;
    if cipher != b"none" {
        return Some("encrypted: add it to ssh-agent");
    }
    let public = std::fs::read_to_string(public_path(file)).unwrap_or_default();
    public.starts_with("sk-").then_some("a FIDO security key: not supported by libssh2")
}

fn public_path(private: &Path) -> PathBuf {
    let mut path = private.as_os_str().to_owned();
    path.push(".pub");
    PathBuf::from(path)
}

fn public_blob(private: &Path) -> Option<Vec<u8>> {
    let text = std::fs::read_to_string(public_path(private)).ok()?;
    known_hosts::base64_decode(text.split_ascii_whitespace().nth(1)?)
}
