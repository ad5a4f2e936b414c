//! End-to-end tests: the real binary on real repositories.

mod attach;
mod big_files;
mod clones;
mod codex;
mod codex_agent;
mod codex_cli;
#[cfg(feature = "test-faults")]
mod crashes;
mod detached;
mod discovery;
mod failures;
mod git_command;
mod handoff;
mod harness;
mod helper_lookup;
mod layers;
mod link_relay;
mod mock_model;
mod ownership;
mod picker;
mod platforms;
mod progress;
mod refusals;
mod relay;
mod repos;
mod roundtrip;
mod running;
mod security;
#[cfg(feature = "ssh2")]
mod ssh2;
mod sshd;
mod threads;
