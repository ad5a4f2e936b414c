//! End-to-end tests: the real binary on real repositories.

mod clones;
mod codex;
mod codex_cli;
mod git_command;
mod handoff;
mod harness;
mod layers;
mod mock_model;
mod refusals;
mod roundtrip;
mod running;
mod security;
mod sshd;
mod threads;
