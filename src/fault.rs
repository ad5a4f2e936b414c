//! Crash points for the tests: a build with the `test-faults` feature dies
//! at a named step, as a killed process would, or goes wrong there in a
//! named way, when asked to. Release builds compile every point to nothing,
//! so nothing can trip them.
//!
//! Asked by `CODEX_HANDOFF_TEST_FAULT=<step>` in the environment, or (for a
//! helper started over ssh, whose environment the tests do not control) by
//! `codex-handoff.testFault` in the user's global git config.

/// Every step a test can stop a handoff at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The helper, after the push and before the restore.
    BeforeRestore,
    /// The helper, after this computer restored a hand-back, before the host lets go.
    BeforeRelease,
    /// A restore, just before it verifies: a stray file makes the worktree differ.
    VerifyMismatch,
}

impl Step {
    pub const ALL: &'static [Step] = &[Step::BeforeRestore, Step::BeforeRelease, Step::VerifyMismatch];

    pub fn name(self) -> &'static str {
        match self {
            Step::BeforeRestore => "before-restore",
            Step::BeforeRelease => "before-release",
            Step::VerifyMismatch => "verify-mismatch",
        }
    }
}

/// Die here if the tests asked for it.
#[inline]
pub fn point(step: Step) {
    #[cfg(feature = "test-faults")]
    if armed_step() == Some(step.name()) {
        std::process::exit(137);
    }
    #[cfg(not(feature = "test-faults"))]
    let _ = step;
}

/// Has a test asked for something to go wrong at `step`?
#[inline]
pub fn armed(step: Step) -> bool {
    #[cfg(feature = "test-faults")]
    return armed_step() == Some(step.name());
    #[cfg(not(feature = "test-faults"))]
    {
        let _ = step;
        false
    }
}

#[cfg(feature = "test-faults")]
fn armed_step() -> Option<&'static str> {
    static ARMED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ARMED
        .get_or_init(|| {
            std::env::var("CODEX_HANDOFF_TEST_FAULT")
                .ok()
                .or_else(|| crate::config::global_value("codex-handoff.testfault").ok().flatten())
        })
        .as_deref()
}
