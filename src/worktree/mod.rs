//! The exact Git state of one worktree, as trees and back: HEAD, the index,
//! every file's bytes, mode and symlink target, untracked files, submodules,
//! Git LFS pointers, sparse-checkout and line-ending settings.
//!
//! Knows nothing of threads, notes, hosts or Codex: `thread` names a
//! snapshot and pins it; this folder captures the state (`capture`), writes
//! and reads the record a snapshot keeps beside its trees (`record`), writes
//! it into a worktree (`restore`, `populate`) and checks the result
//! (`verify`). Its types stand at the bottom (`state`), so capture and
//! restore both stand on them and never on each other.

pub mod big_files;
pub mod capture;
pub mod checkout_settings;
pub mod clean_check;
pub mod converted;
pub mod index_tree;
pub mod lfs;
mod populate;
pub mod quick_capture;
pub mod record;
pub mod restore;
pub mod state;
pub mod submodules;
pub mod verify;
