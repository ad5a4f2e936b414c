//! git-codex-handoff: move a coding-agent thread, with the exact Git state it
//! works in, between machines.
//!
//! Layers, each using only those below it (ARCHITECTURE.md has the map):
//!
//! - `cli`: the command line and the terminal; the only code that prints.
//! - `handoff`: one handoff, driven from this computer (`to_host`,
//!   `to_local`), its two halves (`departure`, `arrival`) and the helper that
//!   runs the other machine's half.
//! - `thread`: the thread store (refs, notes, numbers), locks, running
//!   agents, the transcript.
//! - `worktree` (the exact Git state of one worktree, as trees and back),
//!   `remote` (the wire: protocol, transports, restricted mode) and `codex`
//!   (Codex rollouts); they do not use each other.
//! - the root helpers: `error`, `git`, `blob_pack` (large blobs straight
//!   into a pack), `repo`, `objects` (commits and refs written here),
//!   `cache_file`, `config`, `fingerprint`, `intake`
//!   (what arrives as raw bytes: ceilings, packs checked as git checks them),
//!   `promisor`, `hooks`, `machine`, `os` (what differs between Linux and
//!   macOS), `process`, `progress` (how far the long steps are), `text`, `time`, `login_shell`
//!   (what the user's login shell finds), and `fault` (crash points for the tests).

pub mod blob_pack;
pub mod cache_file;
pub mod cli;
pub mod codex;
pub mod config;
pub mod error;
pub mod fault;
pub mod fingerprint;
pub mod git;
pub mod handoff;
pub mod hooks;
pub mod intake;
pub mod login_shell;
pub mod machine;
pub mod objects;
pub mod os;
pub mod pack_reuse;
pub mod process;
pub mod progress;
pub mod promisor;
pub mod remote;
pub mod repo;
pub mod ssh_config;
pub mod text;
pub mod thread;
pub mod time;
pub mod worktree;

pub use cli::main;
