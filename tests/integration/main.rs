//! End-to-end tests: the real binary on real repositories.

mod codex;
mod git_command;
mod handoff;
mod harness;
mod layers;
mod refusals;
mod roundtrip;
mod running;
mod security;
mod sshd;
mod threads;
