//! Connections to a host's helper. Whatever the transport, one connection
//! carries the helper session and git's push/fetch. Each transport is a
//! `Link`: the helper's input and output, its exit, and how git reaches the
//! same host.
//!
//! - `openssh`: the system `ssh` opens one ControlMaster connection running
//!   the helper; git reaches the host through it via `GIT_SSH_COMMAND`.
//! - `ssh2` (cargo feature `ssh2`): libssh2 in-process; the helper runs on
//!   one channel of the session, git reaches the same session through a
//!   shim it runs as its ssh.
//! - `local`: the helper is a child process (HOME = the host's "ssh" value),
//!   git goes over the file system.
//!
//! When the helper is not on a host's plain PATH, `locate` asks the login
//! shell there, on the same connection, and starts the helper it finds.

mod capped;
mod connection;
mod explain;
mod kinds;
mod link;
mod liveness;
mod local;
mod locate;
mod openssh;
mod payload;
mod process;
mod socket_dir;
#[cfg(feature = "ssh2")]
mod ssh2;

pub use capped::{run_capped, CAPPED_COMMAND};
pub use connection::{Connection, Moved};
pub use explain::install_help;
pub use kinds::{check_settings, handshake, run_git_shim, ssh2_built, SHIM_COMMAND};
pub use link::{Link, Opening, Reached};
pub use liveness::Lost;
pub use locate::Located;
