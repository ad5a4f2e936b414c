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
    r
}
