//! What a transport kind offers besides a connection: settings checked
//! before connecting, a handshake alone, and git's ssh for `ssh2`, with the
//! refusals a binary built without `ssh2` gives.

use std::io::Write;
use std::time::Duration;

use super::link::Reached;
use crate::config::{Host, TransportKind};
#[cfg(not(feature = "ssh2"))]
use crate::error::Error;
use crate::error::Result;

/// Check what can be checked about `host` without connecting (for `ssh2`:
/// what `~/.ssh/config` sets for it, refused when it cannot be followed).
pub fn check_settings(host: &Host) -> Result<()> {
    match host.transport {
        #[cfg(feature = "ssh2")]
        TransportKind::Ssh2 => super::ssh2::preflight(host),
        #[cfg(not(feature = "ssh2"))]
        TransportKind::Ssh2 => Err(ssh2_not_built(host)),
        TransportKind::Openssh | TransportKind::Local => Ok(()),
    }
}

/// Connect and authenticate without starting the helper, where the
/// transport can tell what it negotiated (`ssh2`); `None` for the others.
pub fn handshake(host: &Host, connect_timeout: Duration) -> Result<Option<Reached>> {
    match host.transport {
        #[cfg(feature = "ssh2")]
        TransportKind::Ssh2 => super::ssh2::handshake(host, connect_timeout).map(Some),
        _ => {
            let _ = connect_timeout;
            Ok(None)
        }
    }
}

/// The hidden subcommand git runs as its ssh for the `ssh2` transport.
#[cfg(feature = "ssh2")]
pub use super::ssh2::SHIM_COMMAND;
#[cfg(not(feature = "ssh2"))]
pub const SHIM_COMMAND: &str = "__ssh2-shim";

/// Run as git's ssh for the `ssh2` transport (`__ssh2-shim ARGS`): the exit code.
pub fn run_git_shim(args: &[String], stderr: &mut dyn Write) -> i32 {
    #[cfg(feature = "ssh2")]
    return super::ssh2::run_shim(args, stderr);
    #[cfg(not(feature = "ssh2"))]
    {
        let _ = (args, writeln!(stderr, "git-codex-handoff: the ssh2 transport is not built into this version"));
        255
    }
}

/// Is the `ssh2` transport built into this binary?
pub fn ssh2_built() -> bool {
    cfg!(feature = "ssh2")
}

#[cfg(not(feature = "ssh2"))]
pub(super) fn ssh2_not_built(host: &Host) -> Error {
    Error::failed("transport_unavailable", "the ssh2 transport is not built into this version (cargo feature `ssh2`)")
        .with_help(format!(
            "use the system ssh: `git codex-handoff host add {} {} --transport openssh`",
            host.name, host.ssh
        ))
}
