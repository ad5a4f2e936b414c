//! The real Codex CLI (pinned, installed from npm into the target dir) on
//! both machines, its model played by `mock_model` on 127.0.0.1: a thread
//! made by `codex exec` here is handed to the host over the real sshd by its
//! Codex id, goes on there (`codex exec resume`, and the app-server the Codex
//! App talks to), comes back, and goes on here with every turn from both
//! machines, from one rollout file.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::codex::{assert_relocated, lines, rollouts_of};
use crate::handoff::{Via, World};
use crate::harness::{Run, TestEnv};
use crate::mock_model::{MockModel, Reply};

pub const CODEX_VERSION: &str = "0.169.0";

/// The real Codex CLI from the npm registry (pinned), installed once per
/// target dir. Tests ask for it at once on several threads: one installs
/// while the others wait, and the install goes to a staging prefix that is
/// renamed into place only when npm has finished, so nobody starts a
/// binary npm is still writing (ETXTBSY).
pub fn codex_cli() -> Option<PathBuf> {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let prefix = tmp.join(format!("codex-cli-{CODEX_VERSION}"));
    let bin = prefix.join("node_modules/.bin/codex");
    let installed = prefix.join(".installed");
    if installed.exists() && bin.exists() {
        return Some(bin);
    }
    if std::process::Command::new("npm").arg("--version").output().is_err() {
        return None;
    }
    let staging = tmp.join(format!("codex-cli-{CODEX_VERSION}.staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).unwrap();
    let status = std::process::Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&staging)
        .arg(format!("@openai/codex@{CODEX_VERSION}"))
        .status()
        .unwrap();
    assert!(status.success(), "npm install @openai/codex@{CODEX_VERSION} failed");
    std::fs::write(staging.join(".installed"), CODEX_VERSION).unwrap();
    // An install from an older run (or one cut short) makes way for the finished one.
    let _ = std::fs::remove_dir_all(&prefix);
    std::fs::rename(&staging, &prefix).unwrap();
    Some(bin)
}

/// `$HOME/.codex` set up to talk to the mock model.
pub fn codex_home(home: &Path, model: &MockModel) -> PathBuf {
    let codex_home = home.join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(codex_home.join("config.toml"), model.config_toml()).unwrap();
    codex_home
}

/// Run the Codex CLI as the user whose HOME is `home`, in `dir`, with a time limit.
pub fn codex(env: &TestEnv, bin: &Path, home: &Path, dir: &Path, args: &[&str]) -> Run {
    let mut cmd = env.command_with_home(bin.to_str().unwrap(), dir, home);
    cmd.env("CODEX_HOME", home.join(".codex")).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start codex");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("codex {args:?} did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Run::from(child.wait_with_output().unwrap())
}

/// The texts of a model request's `input`, in order, as `role: text`.
pub fn input_texts(request: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for item in request["input"].as_array().unwrap_or_else(|| panic!("no input: {request}")) {
        for part in item["content"].as_array().into_iter().flatten() {
            if let Some(text) = part["text"].as_str() {
                out.push(format!("{}: {text}", item["role"].as_str().unwrap_or("?")));
            }
        }
    }
    out
}

/// Positions of texts containing each needle, in order; panics naming the first missing one.
#[track_caller]
pub fn in_order(texts: &[String], needles: &[&str]) {
    let mut from = 0;
    for needle in needles {
        match texts[from..].iter().position(|t| t.contains(needle)) {
            Some(at) => from += at + 1,
            None => panic!("{needle:?} not found (in order) in the request the model got:\n{}", texts.join("\n---\n")),
        }
    }
}

/// Ask `codex app-server` (JSON-RPC lines on stdio) as the user whose HOME is `home`.
fn app_server(env: &TestEnv, bin: &Path, home: &Path, dir: &Path, requests: &[Value]) -> Vec<Value> {
    let mut cmd = env.command_with_home(bin.to_str().unwrap(), dir, home);
    cmd.env("CODEX_HOME", home.join(".codex")).arg("app-server").stdin(Stdio::piped()).stdout(Stdio::piped());
    cmd.stderr(Stdio::null());
    let mut server = cmd.spawn().unwrap();
    let mut stdin = server.stdin.take().unwrap();
    let init = json!({"method": "initialize", "id": 0, "params": {"clientInfo": {"name": "git-codex-handoff-test", "version": "0"}}});
    writeln!(stdin, "{init}").unwrap();
    writeln!(stdin, "{}", json!({"method": "initialized"})).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = server.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(message) = serde_json::from_str::<Value>(&line) {
                if message.get("id").is_some_and(|id| id.as_u64().is_some_and(|n| n > 0)) {
                    let _ = tx.send(message);
                }
            }
        }
    });
    let mut answers = Vec::new();
    for (n, request) in requests.iter().enumerate() {
        let mut request = request.clone();
        request["id"] = json!(n + 1);
        writeln!(stdin, "{request}").unwrap();
        let answer = rx.recv_timeout(Duration::from_secs(60)).expect("the Codex app-server answered");
        assert_eq!(answer["id"], n + 1, "{answer}");
        answers.push(answer);
    }
    drop(stdin);
    let _ = server.kill();
    let _ = server.wait();
    answers
}

/// An app-server answer cut to what a person reads in a report.
fn trimmed(answer: &Value) -> String {
    let text = answer.to_string();
    text.chars().take(600).collect()
}

#[test]
fn a_real_codex_thread_goes_to_the_host_goes_on_there_and_comes_back() {
    let Some(bin) = codex_cli() else {
        eprintln!("SKIPPED: npm is not installed, so the real Codex CLI cannot be installed");
        return;
    };
    let model = MockModel::with_replies(vec![
        Reply::text("Antwort eins: der Parser liest das Ende nicht."),
        Reply::text("Antwort zwei, auf dem Server."),
        Reply::text("Antwort drei, wieder zu Hause."),
    ]);
    let w = World::new(Via::Openssh);
    let (env, laptop) = (&w.env, &w.laptop);
    let local_codex = codex_home(&env.home, &model);
    let remote_codex = codex_home(&w.remote_home, &model);

    // One real turn on this computer.
    codex(env, &bin, &env.home, laptop, &["exec", "Erste Frage: warum schl\u{e4}gt der Test fehl?"]).success();
    let made = rollouts_of(&local_codex, "");
    assert_eq!(made.len(), 1, "{made:?}");
    let source = made[0].clone();
    let name = source.file_name().unwrap().to_str().unwrap();
    let id = name[name.len() - 36 - ".jsonl".len()..name.len() - ".jsonl".len()].to_owned();
    let first: Value = serde_json::from_str(&lines(&source)[0]).unwrap();
    assert_eq!(first["payload"]["history_mode"], "paginated", "what Codex {CODEX_VERSION} writes");

    // Handed off by its Codex id, with no `thread new`.
    let out = w.run(&[&id, "devbox", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    let there = rollouts_of(&remote_codex, &id);
    assert_eq!(there.len(), 1, "{there:?}");
    assert_relocated(&lines(&source), &lines(&there[0]), laptop, &remote_wt);

    // The host's app-server (started elsewhere) lists it under the worktree and resumes it there:
    // the listing comes from session_meta, the resumed working directory from the last thread settings.
    let answers = app_server(
        env,
        &bin,
        &w.remote_home,
        env.root.path(),
        &[
            json!({"method": "thread/list", "params": {"cwd": remote_wt, "sourceKinds": ["exec", "cli", "vscode"]}}),
            json!({"method": "thread/resume", "params": {"threadId": id, "excludeTurns": true}}),
        ],
    );
    eprintln!("codex {CODEX_VERSION} app-server thread/list: {}", trimmed(&answers[0]));
    eprintln!("codex {CODEX_VERSION} app-server thread/resume: {}", trimmed(&answers[1]));
    let listed = answers[0]["result"]["data"].as_array().unwrap_or_else(|| panic!("{}", answers[0]));
    let found = listed.iter().find(|t| t["id"] == id.as_str()).unwrap_or_else(|| panic!("not listed: {}", answers[0]));
    assert_eq!(found["cwd"], remote_wt.to_str().unwrap());
    assert_eq!(answers[1]["result"]["cwd"], remote_wt.to_str().unwrap(), "{}", answers[1]);

    // The conversation goes on there: the model gets the earlier turn and the new working directory.
    codex(env, &bin, &w.remote_home, &remote_wt, &["exec", "resume", &id, "Zweite Frage, auf dem Server"]).success();
    let texts = input_texts(model.requests().last().unwrap());
    in_order(
        &texts,
        &[
            "Erste Frage",
            "Antwort eins",
            &format!("<cwd>{}</cwd>", remote_wt.display()),
            "Zweite Frage, auf dem Server",
        ],
    );
    assert_eq!(rollouts_of(&remote_codex, &id), there, "Codex there went on in the same file");

    // Back here, into the same file, and on with every turn from both machines.
    w.run(&["1", "local"]).success();
    assert_eq!(rollouts_of(&local_codex, &id), vec![source.clone()]);
    codex(env, &bin, &env.home, laptop, &["exec", "resume", &id, "Dritte Frage, wieder zu Hause"]).success();
    let texts = input_texts(model.requests().last().unwrap());
    in_order(
        &texts,
        &[
            "Erste Frage",
            "Antwort eins",
            "Zweite Frage, auf dem Server",
            "Antwort zwei, auf dem Server",
            &format!("<cwd>{}</cwd>", laptop.display()),
            "Dritte Frage, wieder zu Hause",
        ],
    );
    assert_eq!(rollouts_of(&local_codex, &id), vec![source], "one rollout file here all along");
}
