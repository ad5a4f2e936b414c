//! End-to-end tests: the real binary on real repositories.

mod git_command;
mod handoff;
mod harness;
mod refusals;
mod roundtrip;
mod sshd;
mod threads;
