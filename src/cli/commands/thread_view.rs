//! A thread as `thread show --json` and `thread list --json` print it.

use serde_json::Value;

use crate::thread::store::Thread;

/// A thread as editors see it (`--json`): DESIGN §3 field names. `status`
/// is live: `running` while `thread run` has its command going.
pub fn thread_view(repo: &crate::repo::Repo, thread: &Thread, this_machine: &crate::machine::Machine) -> Value {
    serde_json::to_value(view(repo, thread, this_machine, true)).unwrap_or_default()
}

/// [`thread_view`] of many threads, the running commands' records read once;
/// serialized straight from the threads (a thousand threads as JSON values
/// cost more to build and drop than to write).
pub fn thread_views<'a>(
    repo: &crate::repo::Repo,
    threads: &'a [Thread],
    this_machine: &crate::machine::Machine,
) -> Vec<ThreadView<'a>> {
    let recorded = crate::thread::running::recorded(repo);
    threads.iter().map(|t| view(repo, t, this_machine, recorded.contains(&t.state.uuid))).collect()
}

/// The fields of [`thread_view`], in the order JSON objects print them (by name).
#[derive(serde::Serialize)]
pub struct ThreadView<'a> {
    branch: &'a Option<String>,
    branch_checked_out_in: Option<String>,
    branch_detached_on: Option<String>,
    codex_session: &'a Option<String>,
    created_at: &'a str,
    epoch: u64,
    head: &'a Option<String>,
    number: u64,
    owner: String,
    owner_machine: &'a str,
    owner_machine_id: &'a Option<String>,
    /// Where it lives on its owner, as last recorded.
    owner_worktree: Option<String>,
    schema: u32,
    snapshot: String,
    status: crate::thread::state::Status,
    subdirectory: &'a str,
    title: &'a str,
    updated_at: &'a str,
    uuid: &'a str,
    /// Where the thread lives on this machine; `None` when it lives elsewhere.
    worktree: Option<String>,
}

/// `recorded`: the thread may have a record of a running command.
fn view<'a>(
    repo: &crate::repo::Repo,
    thread: &'a Thread,
    this_machine: &crate::machine::Machine,
    recorded: bool,
) -> ThreadView<'a> {
    let s = &thread.state;
    let running = recorded && matches!(crate::thread::running::current(repo, &s.uuid), Ok(Some(_)));
    let status = if running { crate::thread::state::Status::Running } else { s.status };
    // Where the thread works on a detached HEAD because its branch is checked out in another worktree there.
    let detached_on = thread.branch_detached_on(this_machine);
    let checked_out_in = detached_on.as_ref().and(s.branch_detached_on.as_ref()).and_then(|d| d.checked_out_in.clone());
    ThreadView {
        branch: &s.branch,
        branch_checked_out_in: checked_out_in,
        branch_detached_on: detached_on,
        codex_session: &s.transcript.codex_session,
        created_at: &s.created_at,
        epoch: s.epoch,
        head: &s.head,
        number: s.number,
        owner: thread.owner_name(this_machine),
        owner_machine: &s.owner_machine,
        owner_machine_id: &s.owner_machine_id,
        owner_worktree: crate::thread::owner_worktree(repo, thread, this_machine)
            .map(|p| p.to_string_lossy().into_owned()),
        schema: crate::cli::manual::JSON_SCHEMA,
        snapshot: thread.snapshot.to_string(),
        status,
        subdirectory: &s.subdirectory,
        title: &s.title,
        updated_at: &s.updated_at,
        uuid: &s.uuid,
        worktree: crate::thread::worktree_here(repo, thread, this_machine).map(|p| p.to_string_lossy().into_owned()),
    }
}
