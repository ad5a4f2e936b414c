//! End-to-end tests: the real binary on real repositories.

mod clones;
mod codex;
mod codex_cli;
mod git_command;
mod handoff;
mod harness;
mod helper_lookup;
mod layers;
mod mock_model;
mod refusals;
mod roundtrip;
mod running;
mod sshd;
mod threads;
