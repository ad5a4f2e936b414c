//! Crash points for the tests: a build with the `test-faults` feature dies
//! at a named step, as a killed process would, when asked to. Release builds
//! compile every point to nothing, so nothing can trip them.
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
}

impl Step {
    pub const ALL: &'static [Step] = &[Step::BeforeRestore, Step::BeforeRelease];

    pub fn name(self) -> &'static str {
        match self {
            Step::BeforeRestore => "before-restore",
            Step::BeforeRelease => "before-release",
        }
    }
}

/// Die here if the tests asked for it.
#[inline]
pub fn point(step: Step) {
    #[cfg(feature = "test-faults")]
    if armed() == Some(step.name()) {
        std::process::exit(137);
    }
    #[cfg(not(feature = "test-faults"))]
    let _ = step;
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
