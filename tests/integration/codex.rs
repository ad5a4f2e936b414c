//! Threads linked to Codex CLI sessions: the rollout file travels with the
//! thread, is registered on the destination with its `cwd` rewritten (every
//! other line byte-identical), comes back with what was added there, and a
//! conversation that went on on both sides is refused.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::handoff::{Via, World};

pub const SESSION: &str = "0199f3a2-7b1c-7d2e-9f00-123456789abc";
const RELATIVE: &str = "2026/11/24/rollout-2026-11-24T08-00-00-0199f3a2-7b1c-7d2e-9f00-123456789abc.jsonl";

/// A rollout in the Codex CLI's format: session_meta, a user message, turns.
pub fn write_rollout(codex_home: &Path, cwd: &Path, turns: usize) -> PathBuf {
    let path = codex_home.join("sessions").join(RELATIVE);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let cwd = cwd.to_str().unwrap();
    let mut text = format!(
        "{{\"timestamp\":\"2026-11-24T08:00:00.000Z\",\"type\":\"session_meta\",\"payload\":{{\"id\":\"{SESSION}\",\
         \"timestamp\":\"2026-11-24T08:00:00.000Z\",\"cwd\":\"{cwd}\",\"originator\":\"codex_cli_rs\",\"cli_version\":\"0.169.0\",\
         \"source\":\"cli\",\"model_provider\":\"openai\",\"base_instructions\":null,\
         \"git\":{{\"commit_hash\":\"0000\",\"branch\":\"main\",\"repository_url\":\"https://example.com/r.git\"}}}}}}\n"
    );
    text += "{\"timestamp\":\"2026-11-24T08:00:01.000Z\",\"type\":\"response_item\",\"payload\":{\"type\":\"message\",\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"Gr\u{fc}\u{df}e \u{2014} bitte den Parser reparieren \u{65e5}\u{672c}\"}]}}\n";
    text += "{\"timestamp\":\"2026-11-24T08:00:01.000Z\",\"type\":\"event_msg\",\"payload\":{\"type\":\"user_message\",\"message\":\"Gr\u{fc}\u{df}e \u{2014} bitte den Parser reparieren\",\"images\":[]}}\n";
    text += &format!("{{\"timestamp\":\"2026-11-24T08:00:02.000Z\",\"type\":\"turn_context\",\"payload\":{{\"cwd\":\"{cwd}\",\"approval_policy\":\"on-request\",\"sandbox_policy\":{{\"type\":\"workspace-write\"}},\"model\":\"gpt-5\",\"summary\":\"auto\"}}}}\n");
    for i in 0..turns {
        text += &format!(
            "{{\"timestamp\":\"2026-11-24T08:01:{:02}.000Z\",\"type\":\"response_item\",\"payload\":{{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{{\"type\":\"output_text\",\"text\":\"Schritt {i}: na\u{ef}ve caf\u{e9} \u{2713}\"}}]}}}}\n",
            i % 60
        );
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn lines(path: &Path) -> Vec<Vec<u8>> {
    std::fs::read(path).unwrap().split_inclusive(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
}

fn meta(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&lines(path)[0]).unwrap()
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn codex_session_travels_and_comes_back(via: Via) {
    let w = World::new(via);
    let local_codex = w.env.home.join(".codex");
    let source = write_rollout(&local_codex, &w.laptop, 300);
    std::fs::write(
        local_codex.join("session_index.jsonl"),
        format!("{{\"id\":\"{SESSION}\",\"thread_name\":\"Parser \u{fc}berarbeiten\",\"updated_at\":\"2026-11-24T08:05:00Z\"}}\n"),
    )
    .unwrap();
    let thread =
        w.run(&["thread", "new", "--codex-session", SESSION, "--branch", "feat/codex", "--json"]).success().json();
    assert_eq!(thread["codex_session"], SESSION);
    assert_eq!(thread["title"], "Parser \u{fc}berarbeiten", "the title comes from Codex's session index");

    let out = w.run(&["1", "devbox", "--json"]);
    assert!(
        out.stderr.contains("conversation  copied to devbox"),
        "the plan says the conversation is copied: {}",
        out.stderr
    );
    let remote_wt = PathBuf::from(out.success().json()["worktree"].as_str().unwrap());
    let remote = w.remote_home.join(".codex/sessions").join(RELATIVE);
    let meta_there = meta(&remote);
    assert_eq!(meta_there["payload"]["cwd"], remote_wt.to_str().unwrap());
    assert_eq!(meta_there["payload"]["git"]["branch"], "feat/codex");
    assert_eq!(meta_there["payload"]["id"], SESSION);
    assert_eq!(lines(&remote)[1..], lines(&source)[1..], "every other line is byte-identical");
    let index = std::fs::read_to_string(w.remote_home.join(".codex/session_index.jsonl")).unwrap();
    assert!(index.contains("Parser \u{fc}berarbeiten"), "{index}");

    // The conversation goes on on the host, then comes home.
    append(&remote, "{\"timestamp\":\"2026-11-24T09:00:00.000Z\",\"type\":\"response_item\",\"payload\":{\"type\":\"message\",\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"Weiter auf dem Server \u{2192} \u{2713}\"}]}}\n");
    append(&remote, "{\"timestamp\":\"2026-11-24T09:00:01.000Z\",\"type\":\"response_item\",\"payload\":{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Erledigt.\"}]}}\n");
    w.run(&["1", "local"]).success();
    assert_eq!(meta(&source)["payload"]["cwd"], w.laptop.to_str().unwrap());
    assert_eq!(lines(&source)[1..], lines(&remote)[1..], "the host's new lines came home");
    assert_eq!(lines(&source).len(), 304 + 2);

    // The conversation now goes on on both sides: handing off again is refused.
    append(&remote, "{\"timestamp\":\"2026-11-24T10:00:00.000Z\",\"type\":\"event_msg\",\"payload\":{\"type\":\"agent_message\",\"message\":\"only on the host\"}}\n");
    append(&source, "{\"timestamp\":\"2026-11-24T10:00:00.000Z\",\"type\":\"event_msg\",\"payload\":{\"type\":\"agent_message\",\"message\":\"only here\"}}\n");
    let before = (w.everything(), std::fs::read(&remote).unwrap(), std::fs::read(&source).unwrap());
    w.run(&["1", "devbox"]).fails_with(4, "has lines the incoming conversation lacks");
    crate::harness::assert_unchanged(&before.0, &w.everything(), "a refused handoff");
    assert_eq!((std::fs::read(&remote).unwrap(), std::fs::read(&source).unwrap()), (before.1, before.2));
}

crate::handoff::over_both!(codex_session_travels_and_comes_back);

#[test]
fn rollouts_that_cannot_be_carried_exactly_are_refused() {
    let w = World::new(Via::Local);
    let codex = w.env.home.join(".codex");
    let path = write_rollout(&codex, &w.laptop, 3);
    let original = std::fs::read_to_string(&path).unwrap();
    let before = w.everything();

    std::fs::write(
        &path,
        original.replacen("\"source\":\"cli\"", "\"source\":\"cli\",\"history_mode\":\"paginated\"", 1),
    )
    .unwrap();
    w.run(&["thread", "new", "--codex-session", SESSION]).fails_with(4, "paginated history");
    std::fs::write(&path, format!("{original}{{\"timestamp\":\"x\",\"type\":\"rollout_reference\",\"payload\":{{\"rollout_path\":\"/old\"}}}}\n")).unwrap();
    w.run(&["thread", "new", "--codex-session", SESSION]).fails_with(4, "split into segments");
    std::fs::write(&path, "not json\n").unwrap();
    w.run(&["thread", "new", "--codex-session", path.to_str().unwrap()])
        .fails_with(2, "does not start with a session_meta");
    std::fs::remove_file(&path).unwrap();
    std::fs::write(path.with_extension("jsonl.zst"), b"\x28\xb5\x2f\xfd").unwrap();
    w.run(&["thread", "new", "--codex-session", SESSION]).fails_with(4, "compressed");
    w.run(&["thread", "new", "--codex-session", "0199f3a2-0000-7000-8000-000000000000"])
        .fails_with(3, "no Codex session");
    assert_eq!(w.everything(), before, "no thread was started");
}

const CODEX_VERSION: &str = "0.169.0";

/// The real Codex CLI from the npm registry (pinned), installed once per target dir.
fn codex_cli() -> Option<PathBuf> {
    let prefix = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("codex-cli-{CODEX_VERSION}"));
    let bin = prefix.join("node_modules/.bin/codex");
    if bin.exists() {
        return Some(bin);
    }
    if std::process::Command::new("npm").arg("--version").output().is_err() {
        return None;
    }
    std::fs::create_dir_all(&prefix).unwrap();
    let status = std::process::Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&prefix)
        .arg(format!("@openai/codex@{CODEX_VERSION}"))
        .status()
        .unwrap();
    assert!(status.success(), "npm install @openai/codex@{CODEX_VERSION} failed");
    Some(bin)
}

#[test]
fn the_real_codex_cli_lists_the_handed_off_thread_for_its_new_worktree() {
    let Some(codex) = codex_cli() else {
        eprintln!("SKIPPED: npm is not installed, so the real Codex CLI cannot be installed");
        return;
    };
    let w = World::new(Via::Local);
    write_rollout(&w.env.home.join(".codex"), &w.laptop, 20);
    w.run(&["thread", "new", "--codex-session", SESSION, "--branch", "feat/real-codex"]).success();
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let remote_wt = out["worktree"].as_str().unwrap().to_owned();

    // Ask the destination's Codex (its own CODEX_HOME) over JSON-RPC on stdio.
    let mut server = std::process::Command::new(&codex)
        .arg("app-server")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &w.remote_home)
        .env("CODEX_HOME", w.remote_home.join(".codex"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = server.stdin.take().unwrap();
    for request in [
        serde_json::json!({"method": "initialize", "id": 0, "params": {"clientInfo": {"name": "git-codex-handoff-test", "title": "test", "version": "0"}}}),
        serde_json::json!({"method": "initialized"}),
        serde_json::json!({"method": "thread/list", "id": 1, "params": {"cwd": remote_wt}}),
    ] {
        writeln!(stdin, "{request}").unwrap();
    }
    let stdout = server.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) {
                if message["id"] == 1 {
                    let _ = tx.send(message);
                    return;
                }
            }
        }
    });
    let answer = rx.recv_timeout(Duration::from_secs(60)).expect("the Codex app-server answered thread/list");
    drop(stdin);
    let _ = server.kill();
    let _ = server.wait();
    let threads = answer["result"]["data"].as_array().unwrap_or_else(|| panic!("{answer}"));
    let found =
        threads.iter().find(|t| t["id"] == SESSION).unwrap_or_else(|| panic!("not listed for {remote_wt}: {answer}"));
    assert_eq!(found["cwd"], remote_wt.as_str());
}
