//! The `~/.ssh/config` options that bear on whom the `ssh2` transport
//! trusts, and what it does with each: honoured, or refused by name (the
//! transport then does not connect), never silently ignored.
//!
//! | option | ssh2 |
//! | --- | --- |
//! | `RevokedHostKeys` | honoured: plain key lists read here, KRLs checked with `ssh-keygen -Q` |
//! | `HostKeyAlgorithms` | honoured: only the algorithms it allows (OpenSSH's default list when unset) |
//! | `CASignatureAlgorithms` | honoured: no host certificate is ever trusted, so nothing a CA signed is |
//! | `StrictHostKeyChecking` | always `yes`: an unknown key is refused, whatever the file says |
//! | `UserKnownHostsFile`, `GlobalKnownHostsFile`, `HostKeyAlias` | honoured |
//! | `KnownHostsCommand` | refused |
//! | `VerifyHostKeyDNS yes`/`ask` | refused (no SSHFP lookups) |
//! | `UpdateHostKeys yes`/`ask` | refused (known_hosts is never written) |
//! | `CertificateFile`, `PKCS11Provider`, `SecurityKeyProvider` | refused |
//! | `ProxyCommand`, `ProxyJump` | refused |
//!
//! A `Match` block this reader cannot evaluate (`exec`, `canonical`, …)
//! that sets one of them is refused too: it might apply.

/// Keywords (lowercase) whose value decides whom to trust.
pub const TRUST_BEARING: &[&str] = &[
    "revokedhostkeys",
    "hostkeyalgorithms",
    "casignaturealgorithms",
    "stricthostkeychecking",
    "userknownhostsfile",
    "globalknownhostsfile",
    "hostkeyalias",
    "knownhostscommand",
    "verifyhostkeydns",
    "updatehostkeys",
    "certificatefile",
    "pkcs11provider",
    "securitykeyprovider",
    "proxycommand",
    "proxyjump",
];

/// OpenSSH's own spelling, for messages.
pub fn keyword_name(lower: &str) -> &str {
    match lower {
        "revokedhostkeys" => "RevokedHostKeys",
        "hostkeyalgorithms" => "HostKeyAlgorithms",
        "casignaturealgorithms" => "CASignatureAlgorithms",
        "stricthostkeychecking" => "StrictHostKeyChecking",
        "userknownhostsfile" => "UserKnownHostsFile",
        "globalknownhostsfile" => "GlobalKnownHostsFile",
        "hostkeyalias" => "HostKeyAlias",
        "knownhostscommand" => "KnownHostsCommand",
        "verifyhostkeydns" => "VerifyHostKeyDNS",
        "updatehostkeys" => "UpdateHostKeys",
        "certificatefile" => "CertificateFile",
        "pkcs11provider" => "PKCS11Provider",
        "securitykeyprovider" => "SecurityKeyProvider",
        "proxycommand" => "ProxyCommand",
        "proxyjump" => "ProxyJump",
        other => other,
    }
}

/// Why the first value of single-valued `keyword` cannot be followed, if it cannot.
pub fn refused(keyword: &str, args: &[String]) -> Option<&'static str> {
    let value = args.join(" ");
    let set = !value.is_empty() && !value.eq_ignore_ascii_case("none");
    let yes_or_ask = |v: &str| ["yes", "ask", "true"].iter().any(|y| v.eq_ignore_ascii_case(y));
    match keyword {
        "knownhostscommand" if set => Some("no command is run for known hosts"),
        "verifyhostkeydns" if yes_or_ask(&value) => Some("no SSHFP records are looked up"),
        "updatehostkeys" if yes_or_ask(&value) => Some("known_hosts is never written"),
        _ => None,
    }
}

/// OpenSSH's default `HostKeyAlgorithms` (9.x): no `ssh-rsa` (SHA-1) signatures.
pub const DEFAULT_HOST_KEY_ALGORITHMS: &str = "ssh-ed25519-cert-v01@openssh.com,\
ecdsa-sha2-nistp256-cert-v01@openssh.com,ecdsa-sha2-nistp384-cert-v01@openssh.com,\
ecdsa-sha2-nistp521-cert-v01@openssh.com,sk-ssh-ed25519-cert-v01@openssh.com,\
sk-ecdsa-sha2-nistp256-cert-v01@openssh.com,rsa-sha2-512-cert-v01@openssh.com,\
rsa-sha2-256-cert-v01@openssh.com,ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,\
ecdsa-sha2-nistp521,sk-ssh-ed25519@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com,\
rsa-sha2-512,rsa-sha2-256";

/// The host key algorithms a `HostKeyAlgorithms` value (`None`: unset)
/// allows among `supported`, as OpenSSH assembles it: `+` appends to the
/// default, `-` removes from it, `^` puts first, anything else replaces
/// it; each name may be a `*`/`?` pattern. In the order the value gives.
pub fn host_key_algorithms(value: Option<&str>, supported: &[&str]) -> Vec<String> {
    let default: Vec<&str> = DEFAULT_HOST_KEY_ALGORITHMS.split(',').collect();
    let value = value.map(str::trim).filter(|v| !v.is_empty());
    let list: Vec<String> = match value {
        None => default.iter().map(|s| (*s).to_owned()).collect(),
        Some(v) => {
            let names = |s: &str| s.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect();
            if let Some(more) = v.strip_prefix('+') {
                default.iter().map(|s| (*s).to_owned()).chain(names(more)).collect()
            } else if let Some(less) = v.strip_prefix('-') {
                let less: Vec<String> = names(less);
                default
                    .iter()
                    .filter(|d| !less.iter().any(|p| super::wildcard_match(&p.to_ascii_lowercase(), d)))
                    .map(|s| (*s).to_owned())
                    .collect()
            } else if let Some(first) = v.strip_prefix('^') {
                names(first).into_iter().chain(default.iter().map(|s| (*s).to_owned())).collect()
            } else {
                names(v)
            }
        }
    };
    let mut out: Vec<String> = Vec::new();
    for pattern in list.iter().filter(|p| !p.starts_with('!')) {
        let pattern = pattern.to_ascii_lowercase();
        for alg in supported {
            if super::wildcard_match(&pattern, &alg.to_ascii_lowercase()) && !out.iter().any(|o| o == alg) {
                out.push((*alg).to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIBSSH2: &[&str] =
        &["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa", "ssh-dss"];

    #[test]
    fn host_key_algorithms_assemble_as_openssh_does() {
        let all = |v: Option<&str>| host_key_algorithms(v, LIBSSH2);
        assert_eq!(all(None), ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256"]);
        assert_eq!(
            all(Some("+ssh-rsa")),
            ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
        );
        assert_eq!(all(Some("-ecdsa-*,rsa-sha2-256")), ["ssh-ed25519", "rsa-sha2-512"]);
        assert_eq!(all(Some("^rsa-sha2-512")), ["rsa-sha2-512", "ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-256"]);
        assert_eq!(all(Some("ecdsa-sha2-*")), ["ecdsa-sha2-nistp256"]);
        assert!(all(Some("sk-ssh-ed25519@openssh.com")).is_empty());
    }

    #[test]
    fn options_that_cannot_be_followed_say_why() {
        let v = |s: &str| vec![s.to_owned()];
        assert!(refused("knownhostscommand", &v("/usr/bin/get-keys %H")).is_some());
        assert!(refused("knownhostscommand", &v("none")).is_none());
        for yes in ["yes", "ask"] {
            assert!(refused("verifyhostkeydns", &v(yes)).is_some());
            assert!(refused("updatehostkeys", &v(yes)).is_some());
        }
        assert!(refused("verifyhostkeydns", &v("no")).is_none());
        assert!(refused("updatehostkeys", &v("no")).is_none());
        assert!(refused("casignaturealgorithms", &v("ssh-ed25519")).is_none());
    }
}
