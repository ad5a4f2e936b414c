//! The wire between this computer and a host's helper: the protocol (JSON
//! lines), the transports that carry it (`transport`: one connection per
//! handoff, shared by the helper session and git), and the restricted mode
//! for a forced-command key.
//!
//! May use the root helpers only; knows nothing of threads or snapshots:
//! what the messages mean is `handoff`'s business.

pub mod incoming_only;
pub mod protocol;
pub mod restricted;
pub mod transport;
