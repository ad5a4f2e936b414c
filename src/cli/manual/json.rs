//! The man page's JSON OUTPUT section: the shape of every `--json` document.

use clap_mangen::roff::Roff;

use super::{inline_code, paragraph, preformatted, JSON_SCHEMA};

pub(super) fn section() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["JSON OUTPUT"]);
    paragraph(
        &mut r,
        &format!(
            "With `--json` a command prints exactly one JSON document on stdout and nothing else there; human \
             text, progress and prompts go to stderr. Every document has a `schema` field, now {JSON_SCHEMA}. \
             Fields may be added in later versions, none removed or changed in meaning without a new `schema`. \
             Progress is printed only when stderr is a terminal, or with `--progress`."
        ),
    );
    paragraph(
        &mut r,
        "The long steps of a handoff have meters: `hash` counts the bytes of big files (a MiB or more) \
         read into the snapshot, `send` and `receive` count bytes (what crossed the \
         connection beside the protocol's requests), `checkout` counts files written, `verify` its parts. On a \
         terminal each shows a live line with done and total, rate and time left, and ends with its size and \
         rate (`Sending: 100% 150.00 MiB | 80.00 MiB/s, done.`); the host's checkout and verification are shown \
         as they go there. With `--progress` and no terminal only those final lines (and one a second) are \
         printed. With `--json --progress` each report is one JSON object on a line of stderr, for an editor \
         that draws its own meter: `{\"step\": \"send\", \"done\": 1048576, \"total\": 157286400}`. Reports \
         come at most ten times a second per step, and every run of a step ends with a line where done equals \
         total (a step may run again, from 0, for a second stream). Stdout stays one document.",
    );
    let shapes = [
        (
            "Errors (any command, exit status as in EXIT STATUS)",
            r#"{"schema": 1, "error": {"code": "thread_not_found", "message": "...", "help": "...", "exit_code": 3}}"#,
        ),
        (
            "A thread (thread show, thread new)",
            r#"{"schema": 1, "number": 42, "uuid": "...", "title": "...", "branch": "fix/parser" | null,
 "branch_detached_on": null | "local" | "<host>", "branch_checked_out_in": null | "<path there>",
 "owner": "local" | "<host>", "owner_machine": "...", "owner_machine_id": "..." | null,
 "status": "idle" | "running",
 "epoch": 3, "snapshot": "<commit>", "head": "<commit>" | null, "worktree": "<path here>" | null,
 "owner_worktree": "<path on its owner>" | null, "subdirectory": "", "codex_session": "<uuid>" | null, "created_at": "...", "updated_at": "..."}"#,
        ),
        ("thread list", r#"{"schema": 1, "threads": [<thread>, ...]}"#),
        (
            "No HOST and no terminal (exit status 2)",
            r#"{"schema": 1, "error": {"code": "missing_host", ...}, "choices": [{"host": "local" | "<host>",
 "this_computer": true | false, "project": "<path there>" | null, "round_trip_ms": 120 | null}, ...]}"#,
        ),
        (
            "thread log",
            r#"{"schema": 1, "thread": "<uuid>", "number": 42, "entries": [{"snapshot", "epoch", "owner_machine",
 "owner_machine_id", "status", "branch", "branch_detached_on", "head", "at", "handoff": null | {...}}, ...]}"#,
        ),
        ("thread snapshot", r#"{"schema": 1, "snapshot": "<commit>", "thread": <thread>}"#),
        (
            "thread restore",
            r#"{"schema": 1, "thread": "<uuid>", "snapshot": "<commit>", "worktree": "...", "branch": "..." | null}"#,
        ),
        (
            "A handoff (git codex-handoff THREAD HOST)",
            r#"{"schema": 1, "thread": 42, "uuid": "...", "host": "devbox" | "local", "worktree": "<path here>" | null,
 "owner_worktree": "<path on devbox>", "branch": "..." | null, "branch_detached_on": null | "<host>" | "local", "epoch": 4, "snapshot": "<commit>", "already_there": false,
 "dry_run": false, "sent_bytes": 157324800, "received_bytes": 0, "plan": {...} | null}"#,
        ),
        (
            "destinations",
            r#"{"schema": 1, "destinations": [{"host": "devbox", "ssh": "...", "transport": "...", "discovered": false,
 "available": true, "project": "...", "round_trip_ms": 120} | {"host", "ssh", "transport", "discovered",
 "available": false, "reason": "...", "code": "...", "message": "..."}, ...],
 "unreachable": [{"host", "ssh", "transport", "discovered", "available": false, "reason", "code", "message"}, ...]}"#,
        ),
        (
            "host list",
            r#"{"schema": 1, "hosts": [{"name", "ssh", "transport", "helper", "discovered": false}, ...],
 "ssh_config_candidates": ["<the discovered host names>"]}"#,
        ),
        (
            "host add / host remove / host check",
            r#"{"schema": 1, "host": {...}, "transport": "ssh2", "reached": {"transport", "host_key_algorithm",
 "host_key_fingerprint", "auth"} | null} / {"schema": 1, "removed": "<name>"} /
{"schema": 1, "host", "machine", "machine_id", "helper_version", "helper_path",
 "helper_found": "setting" | "path" | "login_shell" | "folder", "client_version", "protocol", "round_trip_ms",
 "login_shell", "codex": {"path", "found", "version"} | null, "codex_home",
 "codex_home_from": "environment" | "login_shell" | "default", "transport", "host_key_algorithm",
 "host_key_fingerprint", "auth", "discovered"}"#,
        ),
        (
            "project list",
            r#"{"schema": 1, "projects": [{"path": "...", "exists": true, "fingerprint": "..." | null,
 "fingerprint_kind": "roots" | "url" | null, "remotes": ["host/path", ...] | null, "shallow": false | null,
 "subdirectory": "" | null}, ...]}"#,
        ),
        (
            "project save / project forget",
            r#"{"schema": 1, "path": "...", "added": true} / {"schema": 1, "path": "...", "removed": true}"#,
        ),
        (
            "config",
            r#"{"schema": 1, "settings": [{"key", "scope", "host", "multi_valued", "default", "values": [{"value", "origin"}],
 "effective", "description"}, ...], "unknown": [{"key", "value", "origin"}, ...]}"#,
        ),
        (
            "install-hooks",
            r#"{"schema": 1, "hooks_dir": "...", "hooks": [{"name": "pre-commit", "path": "...",
 "action": "created" | "added" | "updated" | "unchanged" | "removed" | "deleted" | "absent"}]}"#,
        ),
    ];
    for (title, shape) in shapes.into_iter().chain(super::super::manual_attach::JSON) {
        r.control("TP", []);
        r.text(inline_code(title));
        preformatted(&mut r, shape);
    }
    paragraph(
        &mut r,
        "Everywhere, `worktree` is the directory on this machine where the thread lives: its worktree here, \
         with the project subdirectory when the thread works in one (`subdirectory`); it is null when the thread \
         lives on another machine. `owner_worktree` is the same directory on the machine that owns the thread, as \
         last recorded: on its owner the same as `worktree`; elsewhere, where the handoff that took it there \
         placed it. After `git codex-handoff 42 devbox`, `worktree` is null and `owner_worktree` the path on \
         devbox; after `42 local`, both are the path here. Editors change into `worktree` when it is not null.",
    );
    paragraph(
        &mut r,
        "A thread's `branch` is null when the thread works on a detached HEAD of its own. A thread whose branch is \
         checked out in another worktree where it is works there on a detached HEAD and keeps its `branch`; \
         `branch_detached_on` then names that machine as this computer does (`local`, or the host), and \
         `branch_checked_out_in` the worktree there that has the branch (null after `--detach`).",
    );
    r
}
