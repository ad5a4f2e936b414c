//! The man page's HOSTS AND TRANSPORTS section.

use clap_mangen::roff::Roff;

use super::paragraph;

pub(super) fn section() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["HOSTS AND TRANSPORTS"]);
    paragraph(
        &mut r,
        "A host is a name added with `host add`, or a concrete `Host` alias of `~/.ssh/config` (or of a file it \
         `Include`s), as the Codex App finds hosts; pattern-only and negated entries are not hosts. A host \
         added under the same name wins over an alias; `host list` marks the aliases as discovered.",
    );
    paragraph(
        &mut r,
        "One SSH connection carries a handoff: the helper's session and git's push or fetch. The `openssh` \
         transport (the default where `ssh` is on PATH) runs the system ssh, so all of `~/.ssh/config` applies. \
         The `ssh2` transport (the default without `ssh`; cargo feature `ssh2`) runs libssh2 in this process: \
         it reads HostName, Port, User, IdentityFile, IdentitiesOnly, UserKnownHostsFile, GlobalKnownHostsFile \
         and HostKeyAlias from `~/.ssh/config` (with `Include`, `Host` patterns and `Match` host/user \
         criteria), logs in with the ssh-agent's keys, then the identity files (never prompting), checks the \
         host key strictly against known_hosts (hashed names and `[host]:port` entries included; an unknown, \
         changed or revoked key is refused with exit 5 and its SHA256 fingerprint), and refuses a host whose \
         settings it cannot follow (ProxyJump, ProxyCommand, CertificateFile, PKCS11Provider, \
         SecurityKeyProvider) with exit 4 and a hint to use `openssh`. git reaches its session through a shim: \
         git runs this binary as its ssh, and it hands git's pipes to the process holding the connection. \
         `destinations` probes every host at once, with a 5-second connect limit and without prompts, and \
         lists unreachable hosts apart with the reason.",
    );
    paragraph(
        &mut r,
        "Under `ssh2`, each `~/.ssh/config` option that bears on trust is honoured or refused by name, never \
         skipped. Honoured: RevokedHostKeys (a list of public keys, or a KRL made by `ssh-keygen -k`, checked with \
         `ssh-keygen -Q`; a revoked key is refused with exit 5; a KRL without ssh-keygen, or a file that cannot be \
         read, refuses the connection with exit 4); HostKeyAlgorithms (`+`, `-`, `^` and patterns as ssh reads \
         them; unset, OpenSSH's default list, which has no `ssh-rsa` SHA-1 signatures); CASignatureAlgorithms \
         (no host certificate is ever trusted, so nothing a CA signed is); UserKnownHostsFile, \
         GlobalKnownHostsFile, HostKeyAlias; StrictHostKeyChecking is always `yes`. Refused with exit 4 and a hint \
         to use `--transport openssh`: KnownHostsCommand, VerifyHostKeyDNS `yes` or `ask` (no SSHFP lookups), \
         UpdateHostKeys `yes` or `ask` (known_hosts is never written), CertificateFile, PKCS11Provider, \
         SecurityKeyProvider, ProxyCommand, ProxyJump, and any of these options inside a `Match` block it cannot \
         evaluate (`exec`, `canonical`, `final`, `tagged`, negations).",
    );
    r
}
