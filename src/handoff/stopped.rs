//! What a handoff that stops part-way tells the user: why (a lost
//! connection is exit 5, whatever the step noticed first), where the thread
//! is now, and that running the same command again is safe: every step
//! after the other machine changed something is recorded before it runs,
//! and the next run finishes it or rolls it back.

use crate::error::{Error, Kind};
use crate::remote::transport::Connection;

/// Where the thread is while a handoff runs, as far as this computer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum At {
    /// Nothing has changed anywhere yet: a failure is only itself
    /// (`here`: the thread is on this computer).
    Start {
        here: bool,
    },
    StillHere,
    StillThere,
    NowHere,
    NowThere,
    /// The host was restoring it when the connection went: it owns the
    /// thread if it finished, and the next run finds out.
    Arriving,
}

/// `e`, told as the failure of a handoff to or from `host` that stopped at
/// `at`; through `conn` (when it was open) a failure the link caused reads
/// as a lost connection.
pub(super) fn told(e: Error, conn: Option<&mut Connection>, host: &str, at: At) -> Error {
    let mut e = match conn {
        Some(conn) => conn.explain_lost(e),
        None => e,
    };
    e = super::space::from_host(e, host);
    let lost = e.kind == Kind::Unreachable && e.code == "connection_lost";
    let thread_is = match at {
        At::Start { here: true } | At::StillHere => "the thread is still here".to_owned(),
        At::Start { here: false } | At::StillThere => format!("the thread is still on {host}"),
        At::NowHere => "the thread is here now".to_owned(),
        At::NowThere => format!("the thread is on {host} now"),
        At::Arriving if lost => format!("the thread is on {host} if it finished restoring there, else still here"),
        // The host answered: it rolled its arrival back.
        At::Arriving => "the thread is still here".to_owned(),
    };
    if lost {
        e.message = format!("{}; {thread_is}; rerun the same command to finish", e.message);
        return e;
    }
    if matches!(at, At::Start { .. }) {
        return e;
    }
    let mut why = String::new();
    if e.full_message().contains("aborted by hook") {
        why.push_str("a `reference-transaction` hook refused a ref update (see above); ");
    }
    if let Some(help) = &e.help {
        why.push_str(help);
        why.push_str("; ");
    }
    e.help = Some(if why.contains("run the same command again") {
        format!("{thread_is}; {}", why.trim_end_matches("; "))
    } else {
        format!(
            "{why}{thread_is}: run the same command again once that is fixed, it finishes or rolls back the \
             half-done handoff on both machines"
        )
    });
    e
}
