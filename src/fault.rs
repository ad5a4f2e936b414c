//! Crash points for the tests: a build with the `test-faults` feature dies
//! at a named step, as a process killed with SIGKILL would, or goes wrong
//! there in a named way, when asked to. Release builds compile every point
//! to nothing, so nothing can trip them.
//!
//! Asked by `CODEX_HANDOFF_TEST_FAULT=<step>` in the environment, or (for a
//! helper started over ssh, whose environment the tests do not control) by
//! `codex-handoff.testFault` in the user's global git config.

/// Every step a test can stop a handoff at, in the order a handoff reaches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    // Handing off to a host, on this computer.
    /// The host has taken the thread's lock; nothing is written yet.
    ToHostBegun,
    /// The departing snapshot is written here (not yet published).
    ToHostDeparted,
    /// The snapshot is pushed to the host.
    ToHostPushed,
    /// The host was asked to restore and is at it (it goes on alone).
    ToHostReceiving,
    /// The host has restored the thread and owns it; this computer has not recorded that.
    ToHostReceived,
    /// The departing note is published here; the thread's ref has not moved.
    ToHostNotesPublished,
    /// This computer recorded the host as the owner; its worktree has not let go of the branch.
    ToHostRecorded,

    // The helper receiving a thread.
    /// What arrived is checked and its notes merged; the restore has not started.
    BeforeRestore,

    // Arriving, on either side.
    /// A new worktree is added (its branch checked out) but holds no files yet.
    ArrivalWorktreeAdded,
    /// The worktree holds the restored, verified state; the owner is not recorded.
    ArrivalRestored,
    /// This machine recorded itself as the owner; the arrival's marker is still there.
    ArrivalCommitted,

    // Bringing a thread back, on this computer.
    /// The host has taken the thread's lock; nothing is written yet.
    ToLocalBegun,
    /// The host took its departing snapshot; nothing is fetched yet.
    ToLocalDeparted,
    /// The snapshot is fetched and checked here; the restore has not started.
    ToLocalFetched,
    /// This computer owns the thread; the host has not been told to let go.
    ToLocalArrived,
    /// The host let go; this computer has not cleared its note to tell it.
    ToLocalReleased,

    // The helper sending a thread back.
    /// The departing snapshot is written on the host; its outgoing ref is not.
    DepartSnapshotted,
    /// Asked to let go, before anything changed.
    BeforeRelease,
    /// The host recorded the new owner; its worktree has not let go of the branch.
    ReleaseRecorded,

    // Going wrong rather than dying.
    /// A restore, just before it verifies: a stray file makes the worktree differ.
    VerifyMismatch,
    /// The helper answers hello as one of protocol 2 would (an older
    /// version on the host): the client pushes and fetches with git, and
    /// is not told which of a thread's files differ only in case.
    HelperProtocol2,
    /// This machine's file systems tell names apart only up to case (as
    /// macOS's do by default), wherever it asks.
    CaseInsensitive,

    // Host to host through this computer (`42 devbox2` while devbox owns it), on this computer.
    /// Both hosts have taken the thread's lock; nothing is written yet.
    RelayBegun,
    /// The owner took its departing snapshot; nothing is fetched here yet.
    RelayDeparted,
    /// The snapshot is in this computer's object store and the relay is recorded here; nothing went on yet.
    RelayFetched,
    /// The snapshot is at the destination, which has not been asked to restore it.
    RelayPushed,
    /// The destination was asked to restore and is at it (it goes on alone).
    RelayReceiving,
    /// The destination owns the thread; this computer has not recorded that.
    RelayReceived,
    /// This computer recorded the new owner; the host the thread left has not let go.
    RelayRecorded,
    /// That host let go; this computer has not cleared its record of the relay.
    RelayReleased,
}

impl Step {
    pub const ALL: &'static [Step] = &[
        Step::ToHostBegun,
        Step::ToHostDeparted,
        Step::ToHostPushed,
        Step::ToHostReceiving,
        Step::ToHostReceived,
        Step::ToHostNotesPublished,
        Step::ToHostRecorded,
        Step::BeforeRestore,
        Step::ArrivalWorktreeAdded,
        Step::ArrivalRestored,
        Step::ArrivalCommitted,
        Step::ToLocalBegun,
        Step::ToLocalDeparted,
        Step::ToLocalFetched,
        Step::ToLocalArrived,
        Step::ToLocalReleased,
        Step::DepartSnapshotted,
        Step::BeforeRelease,
        Step::ReleaseRecorded,
        Step::VerifyMismatch,
        Step::HelperProtocol2,
        Step::CaseInsensitive,
        Step::RelayBegun,
        Step::RelayDeparted,
        Step::RelayFetched,
        Step::RelayPushed,
        Step::RelayReceiving,
        Step::RelayReceived,
        Step::RelayRecorded,
        Step::RelayReleased,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::ToHostBegun => "to-host-begun",
            Step::ToHostDeparted => "to-host-departed",
            Step::ToHostPushed => "to-host-pushed",
            Step::ToHostReceiving => "to-host-receiving",
            Step::ToHostReceived => "to-host-received",
            Step::ToHostNotesPublished => "to-host-notes-published",
            Step::ToHostRecorded => "to-host-recorded",
            Step::BeforeRestore => "before-restore",
            Step::ArrivalWorktreeAdded => "arrival-worktree-added",
            Step::ArrivalRestored => "arrival-restored",
            Step::ArrivalCommitted => "arrival-committed",
            Step::ToLocalBegun => "to-local-begun",
            Step::ToLocalDeparted => "to-local-departed",
            Step::ToLocalFetched => "to-local-fetched",
            Step::ToLocalArrived => "to-local-arrived",
            Step::ToLocalReleased => "to-local-released",
            Step::DepartSnapshotted => "depart-snapshotted",
            Step::BeforeRelease => "before-release",
            Step::ReleaseRecorded => "release-recorded",
            Step::VerifyMismatch => "verify-mismatch",
            Step::HelperProtocol2 => "helper-protocol-2",
            Step::CaseInsensitive => "case-insensitive",
            Step::RelayBegun => "relay-begun",
            Step::RelayDeparted => "relay-departed",
            Step::RelayFetched => "relay-fetched",
            Step::RelayPushed => "relay-pushed",
            Step::RelayReceiving => "relay-receiving",
            Step::RelayReceived => "relay-received",
            Step::RelayRecorded => "relay-recorded",
            Step::RelayReleased => "relay-released",
        }
    }
}

/// Die here if the tests asked for it.
#[inline]
pub fn point(step: Step) {
    #[cfg(feature = "test-faults")]
    if armed() == Some(step.name()) {
        // SAFETY: sending a signal to this process; SIGKILL cannot be caught.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }
    #[cfg(not(feature = "test-faults"))]
    let _ = step;
}

/// Has a test asked for something to go wrong at `step`? True once per
/// process: what puts things back afterwards goes through the same step.
#[inline]
pub fn trip(step: Step) -> bool {
    #[cfg(feature = "test-faults")]
    {
        static TRIPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        armed() == Some(step.name()) && !TRIPPED.swap(true, std::sync::atomic::Ordering::SeqCst)
    }
    #[cfg(not(feature = "test-faults"))]
    {
        let _ = step;
        false
    }
}

/// Has a test asked for `step`, a way this machine behaves rather than a
/// single thing that goes wrong? True every time it is asked.
#[inline]
pub fn active(step: Step) -> bool {
    #[cfg(feature = "test-faults")]
    {
        armed() == Some(step.name())
    }
    #[cfg(not(feature = "test-faults"))]
    {
        let _ = step;
        false
    }
}

#[cfg(feature = "test-faults")]
fn armed() -> Option<&'static str> {
    static ARMED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ARMED
        .get_or_init(|| {
            std::env::var("CODEX_HANDOFF_TEST_FAULT")
                .ok()
                .or_else(|| crate::config::global_value("codex-handoff.testfault").ok().flatten())
        })
        .as_deref()
}

/// The environment variable that arms a step in this process (the `local`
/// transport keeps it from the helper it starts, which reads its own config).
pub const ENV: &str = "CODEX_HANDOFF_TEST_FAULT";
