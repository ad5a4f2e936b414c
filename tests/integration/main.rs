//! End-to-end tests: the real binary on real repositories.

mod codex;
#[cfg(feature = "test-faults")]
mod crashes;
mod git_command;
mod handoff;
mod harness;
mod layers;
mod ownership;
mod refusals;
mod roundtrip;
mod running;
mod sshd;
mod threads;
