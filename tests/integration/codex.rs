//! Threads linked to Codex threads: the rollout file travels with the
//! thread, is written on the destination with every working-directory field
//! moved to the new worktree (every other byte as it was, ordinals too), goes
//! back to the same file, and a conversation that went on on both sides is
//! refused. Codex threads are named by id, prefix or name, and become
//! threads on the fly.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::handoff::{Via, World};

pub const SESSION: &str = "0199f3a2-7b1c-7d2e-9f00-123456789abc";
const NAME: &str = "2026/11/24/rollout-2026-11-24T08-00-00-0199f3a2-7b1c-7d2e-9f00-123456789abc.jsonl";

/// A rollout as Codex 0.169.0 writes it (paginated: every line has an
/// ordinal), or a legacy one (no `history_mode`, no ordinals), with `turns`
/// assistant messages. Every place Codex records the working directory is there.
pub fn rollout_text(cwd: &Path, turns: usize, paginated: bool) -> String {
    let cwd = cwd.to_str().unwrap();
    let mut lines = vec![
        format!(
            "\"type\":\"session_meta\",\"payload\":{{\"session_id\":\"{SESSION}\",\"id\":\"{SESSION}\",\
             \"timestamp\":\"2026-11-24T08:00:00.000Z\",\"cwd\":\"{cwd}\",\"runtime_workspace_roots\":[\"{cwd}\"],\
             \"originator\":\"codex_exec\",\"cli_version\":\"0.169.0\",\"source\":\"exec\",\"model_provider\":\"mock\",\
             \"base_instructions\":{{\"text\":\"You are a coding agent.\"}}{}\
             ,\"git\":{{\"commit_hash\":\"0000\",\"branch\":\"main\"}}}}",
            if paginated { ",\"history_mode\":\"paginated\"" } else { "" }
        ),
        "\"type\":\"event_msg\",\"payload\":{\"type\":\"task_started\",\"turn_id\":\"t1\"}".to_owned(),
        format!(
            "\"type\":\"response_item\",\"payload\":{{\"type\":\"message\",\"role\":\"user\",\"content\":[{{\"type\":\"input_text\",\
             \"text\":\"<environment_context>\\n  <cwd>{cwd}</cwd>\\n</environment_context>\"}}]}}"
        ),
        format!(
            "\"type\":\"world_state\",\"payload\":{{\"full\":true,\"state\":{{\"environments\":{{\"environments\":{{\"local\":\
             {{\"cwd\":\"{cwd}\",\"status\":\"available\"}}}},\"filesystem\":\"<root>{cwd}</root>\"}}}}}}"
        ),
        format!(
            "\"type\":\"turn_context\",\"payload\":{{\"turn_id\":\"t1\",\"cwd\":\"{cwd}\",\"approval_policy\":\"never\",\
             \"sandbox_policy\":{{\"type\":\"danger-full-access\"}},\"model\":\"mock-model\"}}"
        ),
        format!(
            "\"type\":\"event_msg\",\"payload\":{{\"type\":\"thread_settings_applied\",\"thread_id\":\"{SESSION}\",\
             \"thread_settings\":{{\"model\":\"mock-model\",\"cwd\":\"{cwd}\",\"runtime_workspace_roots\":[\"{cwd}\"]}}}}"
        ),
        "\"type\":\"response_item\",\"payload\":{\"type\":\"message\",\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\
         \"text\":\"Gr\u{fc}\u{df}e \u{2014} bitte den Parser reparieren \u{65e5}\u{672c}\"}]}"
            .to_owned(),
    ];
    for i in 0..turns {
        lines.push(format!(
            "\"type\":\"response_item\",\"payload\":{{\"type\":\"message\",\"role\":\"assistant\",\"content\":\
             [{{\"type\":\"output_text\",\"text\":\"Schritt {i}: na\u{ef}ve caf\u{e9} \u{2713}\"}}]}}"
        ));
    }
    let mut text = String::new();
    for (ordinal, body) in lines.iter().enumerate() {
        let stamp = format!("\"timestamp\":\"2026-11-24T08:{:02}:{:02}.000Z\"", ordinal / 60 % 60, ordinal % 60);
        if paginated {
            text += &format!("{{{stamp},\"ordinal\":{ordinal},{body}}}\n");
        } else {
            text += &format!("{{{stamp},{body}}}\n");
        }
    }
    text
}

pub fn write_rollout(codex_home: &Path, cwd: &Path, turns: usize) -> PathBuf {
    let path = codex_home.join("sessions").join(NAME);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, rollout_text(cwd, turns, true)).unwrap();
    path
}

/// Every rollout file of thread `id` under `codex_home`.
pub fn rollouts_of(codex_home: &Path, id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![codex_home.join("sessions")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name().unwrap().to_string_lossy().contains(id) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

pub fn lines(path: &Path) -> Vec<String> {
    lines_of(&std::fs::read_to_string(path).unwrap())
}

fn lines_of(text: &str) -> Vec<String> {
    text.split_inclusive('\n').map(str::to_owned).collect()
}

/// Does this rollout line carry working-directory fields (session_meta,
/// turn_context, thread_settings_applied)?
fn names_cwd(line: &str) -> bool {
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    line["type"] == "session_meta"
        || line["type"] == "turn_context"
        || line["payload"]["type"] == "thread_settings_applied"
}

/// `original` with the working directory `from` replaced by `to` in exactly
/// the fields that name it; every other line (messages, `world_state`) as it was.
pub fn relocated(original: &[String], from: &Path, to: &Path) -> Vec<String> {
    let (from, to) = (format!("\"{}", from.display()), format!("\"{}", to.display()));
    original.iter().map(|l| if names_cwd(l) { l.replace(&from, &to) } else { l.clone() }).collect()
}

#[track_caller]
pub fn assert_relocated(original: &[String], moved: &[String], from: &Path, to: &Path) {
    assert_eq!(original.len(), moved.len(), "same number of lines");
    let expected = relocated(original, from, to);
    for (i, (a, b)) in original.iter().zip(moved).enumerate() {
        assert_eq!(*b, expected[i], "line {i}");
        if names_cwd(a) {
            assert_ne!(a, b, "line {i} names the working directory");
        }
    }
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn codex_session_travels_and_comes_back(via: Via) {
    let w = World::new(via);
    let local_codex = w.env.home.join(".codex");
    let source = write_rollout(&local_codex, &w.laptop, 300);
    // One long message (over a MiB: what compresses and what does not)
    // makes the rollout large enough to cross beside the snapshot, not in git's pack.
    let mut rng = crate::harness::Rng::new(11);
    let noise: String =
        (0..1 << 20).map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789 "[rng.below(37)])).collect();
    let long = format!("Schritt 3: {}{noise}", "the same words again and again; ".repeat(40_000));
    let text = std::fs::read_to_string(&source).unwrap().replacen("Schritt 3: ", &long, 1);
    std::fs::write(&source, text).unwrap();
    let original = lines(&source);
    std::fs::write(
        local_codex.join("session_index.jsonl"),
        format!("{{\"id\":\"{SESSION}\",\"thread_name\":\"Parser \u{fc}berarbeiten\",\"updated_at\":\"2026-11-24T08:05:00Z\"}}\n"),
    )
    .unwrap();
    let thread =
        w.run(&["thread", "new", "--codex-session", SESSION, "--branch", "feat/codex", "--json"]).success().json();
    assert_eq!(thread["codex_session"], SESSION);
    assert_eq!(thread["title"], "Parser \u{fc}berarbeiten", "the title comes from Codex's session index");

    // Codex's state database on the host names a file for the thread that is
    // gone (Codex would fail to resume it from anywhere else): it goes there.
    let remote_codex = w.remote_home.join(".codex");
    let indexed = remote_codex.join(format!("sessions/2026/11/25/rollout-2026-11-25T00-00-00-{SESSION}.jsonl"));
    state_db(&remote_codex, SESSION, indexed.to_str().unwrap());
    let out = w.run(&["1", "devbox", "--json"]);
    assert!(
        out.stderr.contains("conversation  copied to devbox")
            && out.stderr.contains(&format!("{} (new file)", indexed.display())),
        "the plan says where the conversation goes: {}",
        out.stderr
    );
    let remote_wt = PathBuf::from(out.success().json()["owner_worktree"].as_str().unwrap());
    assert_eq!(rollouts_of(&remote_codex, SESSION), vec![indexed.clone()], "one file for the thread there");
    let remote = indexed;
    assert_relocated(&original, &lines(&remote), &w.laptop, &remote_wt);
    let index = std::fs::read_to_string(remote_codex.join("session_index.jsonl")).unwrap();
    assert!(index.contains("Parser \u{fc}berarbeiten"), "{index}");

    // The conversation goes on on the host (a new turn there names its worktree), then comes home.
    let turn = format!(
        "{{\"timestamp\":\"2026-11-24T09:00:00.000Z\",\"ordinal\":307,\"type\":\"turn_context\",\"payload\":{{\"cwd\":\"{}\"}}}}\n\
         {{\"timestamp\":\"2026-11-24T09:00:01.000Z\",\"ordinal\":308,\"type\":\"response_item\",\"payload\":{{\"type\":\"message\",\"role\":\"user\",\"content\":[{{\"type\":\"input_text\",\"text\":\"Weiter auf dem Server \u{2192} \u{2713}\"}}]}}}}\n",
        remote_wt.display()
    );
    append(&remote, &turn);
    w.run(&["1", "local"]).success();
    assert_eq!(rollouts_of(&local_codex, SESSION), vec![source.clone()], "back into the same file");
    let mut expected = original.clone();
    expected.extend(
        turn.replace(remote_wt.to_str().unwrap(), w.laptop.to_str().unwrap()).split_inclusive('\n').map(str::to_owned),
    );
    assert_eq!(lines(&source), expected, "the host's lines came home, working directory and all");

    // The conversation now goes on on both sides: handing off again is refused.
    append(&remote, "{\"timestamp\":\"2026-11-24T10:00:00.000Z\",\"ordinal\":309,\"type\":\"event_msg\",\"payload\":{\"type\":\"agent_message\",\"message\":\"only on the host\"}}\n");
    append(&remote, "{\"timestamp\":\"2026-11-24T10:00:01.000Z\",\"ordinal\":310,\"type\":\"event_msg\",\"payload\":{\"type\":\"agent_message\",\"message\":\"only on the host\"}}\n");
    append(&source, "{\"timestamp\":\"2026-11-24T10:00:00.000Z\",\"ordinal\":309,\"type\":\"event_msg\",\"payload\":{\"type\":\"agent_message\",\"message\":\"only here\"}}\n");
    let before = (w.everything(), std::fs::read(&remote).unwrap(), std::fs::read(&source).unwrap());
    w.run(&["1", "devbox"])
        .fails_with(4, "thread #1 \"Parser \u{fc}berarbeiten\" went on here too: 2 line(s)")
        .fails_with(4, SESSION);
    crate::harness::assert_unchanged(&before.0, &w.everything(), "a refused handoff");
    assert_eq!((std::fs::read(&remote).unwrap(), std::fs::read(&source).unwrap()), (before.1, before.2));
}

crate::handoff::over_each!(codex_session_travels_and_comes_back);

/// Compress a file as Codex does (one zstd frame, no dictionary) and remove the plain one.
fn compress(path: &Path) -> PathBuf {
    let zst = PathBuf::from(format!("{}.zst", path.display()));
    let data = zstd::encode_all(std::fs::read(path).unwrap().as_slice(), 3).unwrap();
    std::fs::write(&zst, data).unwrap();
    std::fs::remove_file(path).unwrap();
    zst
}

/// A Codex state database with one row, as Codex 0.169.0 lays it out (the columns used here).
fn state_db(codex_home: &Path, id: &str, rollout_path: &str) {
    std::fs::create_dir_all(codex_home).unwrap();
    let db = rusqlite::Connection::open(codex_home.join("state_5.sqlite")).unwrap();
    db.execute_batch(
        "PRAGMA journal_mode=WAL; CREATE TABLE threads (id TEXT PRIMARY KEY, rollout_path TEXT NOT NULL, cwd TEXT NOT NULL);",
    )
    .unwrap();
    db.execute("INSERT INTO threads VALUES (?1, ?2, '/elsewhere')", [id, rollout_path]).unwrap();
}

#[test]
fn a_codex_thread_is_named_by_id_or_name_and_becomes_a_thread_on_the_fly() {
    let w = World::new(Via::Local);
    let local_codex = w.env.home.join(".codex");
    let remote_codex = w.remote_home.join(".codex");
    // A legacy rollout, compressed, and named.
    let plain = local_codex.join("sessions").join(NAME);
    std::fs::create_dir_all(plain.parent().unwrap()).unwrap();
    std::fs::write(&plain, rollout_text(&w.laptop, 40, false)).unwrap();
    let original = lines(&plain);
    let source = compress(&plain);
    std::fs::write(
        local_codex.join("session_index.jsonl"),
        format!(
            "{{\"id\":\"{SESSION}\",\"thread_name\":\"old name\",\"updated_at\":\"2026-11-24T08:01:00Z\"}}\n\
             {{\"id\":\"{SESSION}\",\"thread_name\":\"Parser fixen\",\"updated_at\":\"2026-11-24T08:02:00Z\"}}\n"
        ),
    )
    .unwrap();
    // Another repository's Codex thread is no thread of this worktree.
    let other_id = "0199f3a2-0000-7000-8000-00000000beef";
    let other = local_codex.join(format!("sessions/2026/11/24/rollout-2026-11-24T07-00-00-{other_id}.jsonl"));
    std::fs::write(&other, rollout_text(&w.env.path("elsewhere"), 1, true).replace(SESSION, other_id)).unwrap();

    let listed = w.run(&["thread", "list", "--codex", "--json"]).success().json();
    let listed = listed["codex_threads"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0]["id"].as_str(), listed[0]["name"].as_str()), (Some(SESSION), Some("Parser fixen")));
    assert!(listed[0]["thread"].is_null() && listed[0]["updated_at"].as_str().unwrap().ends_with('Z'));
    w.run(&["thread", "show", "Parser fixen"]).fails_with(3, "thread new --codex-session");
    w.run(&["0199f3a2-0000", "devbox"]).fails_with(3, "works in");

    // The host holds the thread from an earlier stay, under another date, and
    // its Codex state database names a file outside its sessions folder.
    let earlier_wt = w.remote_home.join(".codex/worktrees/devbox-clone/1-old");
    let earlier = remote_codex.join(format!("sessions/2026/11/20/rollout-2026-11-20T09-00-00-{SESSION}.jsonl"));
    std::fs::create_dir_all(earlier.parent().unwrap()).unwrap();
    let earlier_text: String =
        relocated(&lines_of(&rollout_text(&w.laptop, 10, false)), &w.laptop, &earlier_wt).concat();
    std::fs::write(&earlier, earlier_text).unwrap();
    state_db(&remote_codex, SESSION, "/home/someone-else/.codex/sessions/x.jsonl");

    // Naming the thread that asks refuses, a dry run changes nothing.
    let before = w.everything();
    let mut cmd = w.env.command("git", &w.laptop);
    cmd.args(["codex-handoff", &SESSION[..8], "devbox"]).env("CODEX_THREAD_ID", SESSION);
    crate::harness::Run::from(cmd.output().unwrap()).fails_with(4, "cannot hand itself off");
    let dry = w.run(&["Parser fixen", "devbox", "--dry-run"]).success().stderr.clone();
    assert!(dry.contains("would become thread #1"), "{dry}");
    assert!(dry.contains(&format!("{} (extends the copy from an earlier stay)", earlier.display())), "{dry}");
    assert!(dry.contains("records /home/someone-else/.codex/sessions/x.jsonl"), "{dry}");
    crate::harness::assert_unchanged(&before, &w.everything(), "a refused or dry-run handoff");
    assert!(w.run(&["thread", "list", "--json"]).success().json()["threads"].as_array().unwrap().is_empty());

    // By id prefix, with no `thread new`: the Codex thread becomes thread #1 and goes.
    let out = w.run(&[&SESSION[..13], "devbox", "--json"]);
    assert!(out.stderr.contains("is now thread #1"), "{}", out.stderr);
    let remote_wt = PathBuf::from(out.success().json()["owner_worktree"].as_str().unwrap());
    assert_eq!(rollouts_of(&remote_codex, SESSION), vec![earlier.clone()], "one file there, the earlier one");
    assert_relocated(&original, &lines(&earlier), &w.laptop, &remote_wt);
    let index = std::fs::read_to_string(remote_codex.join("session_index.jsonl")).unwrap();
    assert!(index.contains("\"thread_name\":\"Parser fixen\""), "{index}");
    let shown = w.run(&["thread", "show", "Parser fixen", "--json"]).success().json();
    assert_eq!((shown["number"].as_u64(), shown["title"].as_str()), (Some(1), Some("Parser fixen")));
    let listed = w.run(&["thread", "list", "--codex", "--json"]).success().json();
    assert_eq!(listed["codex_threads"][0]["thread"], 1);
    assert_eq!(w.run(&["thread", "show", SESSION, "--json"]).success().json()["number"], 1);

    // Back home: the compressed file becomes the plain one beside it.
    append(&earlier, "{\"timestamp\":\"2026-11-24T09:00:00.000Z\",\"type\":\"event_msg\",\"payload\":{\"type\":\"agent_message\",\"message\":\"vom Server\"}}\n");
    w.run(&["Parser fixen", "local"]).success();
    assert_eq!(rollouts_of(&local_codex, SESSION), vec![plain.clone()], "{} is gone", source.display());
    let back = lines(&plain);
    assert_eq!(back[..original.len()], original[..]);
    assert!(back.last().unwrap().contains("vom Server"));
}

#[test]
fn rollouts_that_cannot_be_carried_exactly_are_refused() {
    let w = World::new(Via::Local);
    let codex = w.env.home.join(".codex");
    let path = write_rollout(&codex, &w.laptop, 3);
    let original = std::fs::read_to_string(&path).unwrap();
    let before = w.everything();

    std::fs::write(&path, format!("{original}{{\"timestamp\":\"x\",\"type\":\"rollout_reference\",\"payload\":{{\"rollout_path\":\"/old\"}}}}\n")).unwrap();
    w.run(&["thread", "new", "--codex-session", SESSION]).fails_with(4, "split into segments");
    std::fs::write(&path, "not json\n").unwrap();
    w.run(&["thread", "new", "--codex-session", path.to_str().unwrap()])
        .fails_with(2, "does not start with a session_meta");
    std::fs::remove_file(&path).unwrap();
    std::fs::write(path.with_extension("jsonl.zst"), b"\x28\xb5\x2f\xfd").unwrap();
    w.run(&["thread", "new", "--codex-session", SESSION]).fails_with(2, "does not start with a session_meta");
    w.run(&["thread", "new", "--codex-session", "0199f3a2-0000-7000-8000-000000000000"])
        .fails_with(3, "no Codex thread");
    assert_eq!(w.everything(), before, "no thread was started");
}
