//! The other machine as an attacker: a laptop key limited by the documented
//! forced command, and a host that answers with crafted snapshots. Whatever
//! they send, nothing outside the allowed places changes on either side
//! (a digest of the whole test tree, both HOMEs and both clones included),
//! the refusal is a clear error with the documented exit status, and
//! nothing panics.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::handoff::{Via, World};
use crate::harness::{assert_unchanged, git_internals, tree_digest, TestEnv, BIN};

/// A Codex thread id for crafted notes.
const SESSION: &str = "0199f3a2-7b1c-7d2e-9f00-123456789abc";

/// A transcript that passes for a Codex session (its first line is read and
/// rewritten on arrival), followed by what the attacker wants written.
fn session_then(payload: &str) -> Vec<u8> {
    format!("{{\"type\":\"session_meta\",\"payload\":{{\"id\":\"{SESSION}\",\"cwd\":\"/x\"}}}}\n{payload}").into_bytes()
}

/// The authorized_keys options README.md recommends, for this binary.
fn documented_forced_command() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let line = readme.lines().find(|l| l.contains("remote serve --restricted\"")).expect("README documents the line");
    assert!(line.starts_with("restrict,command=\""), "README's forced command lacks `restrict`: {line}");
    let options = line.split(" ssh-ed25519").next().unwrap();
    options.replace("/path/to/git-codex-handoff", BIN)
}

/// Everything under the test's root except sshd's fixture and the git
/// internals of both clones (which a refused push or fetch may touch).
fn digest(w: &World, also: &[PathBuf]) -> String {
    let mut expected = vec![PathBuf::from("sshd")];
    expected.extend(git_internals("laptop"));
    expected.extend(git_internals("devbox-clone"));
    expected.extend(also.iter().cloned());
    tree_digest(w.env.root.path(), &expected)
}

/// git with bytes on stdin, as the user whose HOME is `home`.
fn git_input(env: &TestEnv, home: &Path, dir: &Path, args: &[&str], input: &[u8]) -> String {
    let mut child = env
        .command_with_home("git", dir, home)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A snapshot as a hostile machine would make it: `base`'s files and parents,
/// a thread-data commit holding `transcript` (and `intent_to_add`, NUL-ended
/// paths), and `base`'s note changed by `edit`, stored in `refs/notes/crafted`.
/// The note's transcript digest matches, so only the checks stop it.
fn craft(
    env: &TestEnv,
    home: &Path,
    repo: &Path,
    base: &str,
    transcript: &[u8],
    intent_to_add: Option<&[u8]>,
    edit: impl FnOnce(&mut Value),
) -> String {
    craft_on(env, home, repo, base, None, transcript, intent_to_add, edit)
}

/// [`craft`], with `head` (when given) as the snapshot's HEAD instead of `base`'s.
#[allow(clippy::too_many_arguments)]
fn craft_on(
    env: &TestEnv,
    home: &Path,
    repo: &Path,
    base: &str,
    head: Option<&str>,
    transcript: &[u8],
    intent_to_add: Option<&[u8]>,
    edit: impl FnOnce(&mut Value),
) -> String {
    let git = |args: &[&str]| env.git_as(home, repo, args).trim().to_owned();
    let mut note: Value =
        serde_json::from_str(&git(&["notes", "--ref", "codex-handoff", "show", base])).expect("a thread note");
    if let Some(head) = head {
        note["head"] = json!(head);
    }
    let blob = git_input(env, home, repo, &["hash-object", "-w", "--stdin"], transcript);
    let mut entries = format!("100644 blob {blob}\ttranscript\n");
    if let Some(paths) = intent_to_add {
        let list = git_input(env, home, repo, &["hash-object", "-w", "--stdin"], paths);
        entries += &format!("100644 blob {list}\tintent-to-add\n");
        note["intent_to_add"] = json!(paths.split(|b| *b == 0).filter(|p| !p.is_empty()).count());
    }
    let tree = git_input(env, home, repo, &["mktree"], entries.as_bytes());
    let old_data = note["data_commit"].as_str().unwrap().to_owned();
    let data = git(&["commit-tree", &tree, "-p", &old_data, "-m", "thread data"]);
    let files = git(&["rev-parse", &format!("{base}^{{tree}}")]);
    let mut args = vec!["commit-tree".to_owned(), files];
    for parent in note["head"].as_str().into_iter().chain(note["index_commit"].as_str()) {
        args.extend(["-p".to_owned(), parent.to_owned()]);
    }
    args.extend(["-p".to_owned(), data.clone(), "-m".to_owned(), "snapshot".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let snapshot = git(&args);
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(transcript).iter().map(|b| format!("{b:02x}")).collect();
    note["data_commit"] = json!(data);
    note["transcript"]["sha256"] = json!(sha);
    note["transcript"]["size"] = json!(transcript.len());
    edit(&mut note);
    let text = serde_json::to_vec_pretty(&note).unwrap();
    git_input(env, home, repo, &["notes", "--ref", "refs/notes/crafted", "add", "-f", "-F", "-", &snapshot], &text);
    snapshot
}

mod carried;
mod intake;
#[cfg(feature = "ssh2")]
mod ssh2_trust;

/// A client that speaks the helper protocol itself over ssh, as an attacker
/// holding the key would (no client-side checks).
struct RawHelper {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    /// The host's machine id, as its hello says.
    machine_id: String,
}

impl RawHelper {
    fn connect(w: &World) -> RawHelper {
        let mut child = w
            .sshd
            .as_ref()
            .unwrap()
            .ssh(&w.env)
            .args([crate::sshd::HOST, "--", "git-codex-handoff remote serve"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        let mut helper = RawHelper { child, input, output, machine_id: String::new() };
        let hello = helper.call("hello", json!({ "protocol": 2 }));
        assert_eq!(hello["ok"], true, "{hello}");
        helper.machine_id = hello["result"]["machine_id"].as_str().unwrap_or_default().to_owned();
        helper
    }

    /// Send a raw line; return the helper's whole answer.
    fn send(&mut self, line: &str) -> Value {
        writeln!(self.input, "{line}").unwrap();
        let mut answer = String::new();
        self.output.read_line(&mut answer).unwrap();
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("the helper answered {answer:?} ({e})"))
    }

    fn call(&mut self, op: &str, params: Value) -> Value {
        self.send(&json!({ "op": op, "params": params }).to_string())
    }

    /// A request followed by `bytes` (written while the answer is awaited:
    /// a helper that refuses them unread answers before it has them all).
    fn call_with_bytes(&mut self, op: &str, params: Value, bytes: Vec<u8>) -> Value {
        writeln!(self.input, "{}", json!({ "op": op, "params": params })).unwrap();
        use std::os::fd::AsFd;
        let mut input = std::fs::File::from(self.input.as_fd().try_clone_to_owned().unwrap());
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&bytes);
            let _ = input.flush();
        });
        let mut answer = String::new();
        self.output.read_line(&mut answer).unwrap();
        let _ = writer.join();
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("the helper answered {answer:?} ({e})"))
    }

    /// Has the helper's session ended (within `limit`)?
    fn ended_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for RawHelper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[track_caller]
fn assert_refused(answer: &Value, exit_code: u64, code: &str) {
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(
        (answer["error"]["exit_code"].as_u64(), answer["error"]["code"].as_str()),
        (Some(exit_code), Some(code)),
        "{answer}"
    );
}

/// `git push` from the laptop to the host over the (restricted) key; returns git's stderr on failure.
fn push(w: &World, repo: &str, refspecs: &[String]) -> Result<(), String> {
    let url = format!("{}:{repo}", crate::sshd::HOST);
    let mut args = vec!["push", "-q", "--no-verify", url.as_str()];
    args.extend(refspecs.iter().map(String::as_str));
    let out = w.env.git_with_env(&w.laptop, &args, &[]);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Can `ssh -W` (a tunnel) reach a port on the host's loopback with the key as it is now?
fn tunnel_reaches_the_host(w: &World) -> bool {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let target = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mut ssh = w.sshd.as_ref().unwrap().ssh(&w.env);
    ssh.args(["-W", &target, crate::sshd::HOST]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null());
    let mut client = ssh.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let reached = loop {
        if listener.accept().is_ok() {
            break true;
        }
        if client.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break listener.accept().is_ok();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = client.kill();
    let _ = client.wait();
    reached
}

#[test]
fn a_restricted_key_cannot_write_outside_its_place_or_reach_other_repositories() {
    let w = World::new(Via::Openssh);
    let sshd = w.sshd.as_ref().unwrap();
    sshd.authorize(&documented_forced_command());
    let env = &w.env;
    let thread = w.run(&["thread", "new", "--branch", "feat/attack", "--json"]).success().json();
    let uuid = thread["uuid"].as_str().unwrap().to_owned();
    let base = thread["snapshot"].as_str().unwrap().to_owned();
    let other = env.path("not-a-project.git");
    w.git_remote(env.root.path(), &["init", "-q", "--bare", other.to_str().unwrap()]);

    let mut helper = RawHelper::connect(&w);
    let projects = helper.call("projects", json!({}));
    let fingerprint = projects["result"]["projects"][0]["fingerprint"].as_str().unwrap().to_owned();
    let found = helper.call("find_project", json!({ "fingerprint": fingerprint, "subdirectory": "" }));
    let repo = found["result"]["repo"].as_str().unwrap().to_owned();
    let host_id = helper.machine_id.clone();
    let before = digest(&w, &[]);

    // 1. A note whose Codex session file is "../../.ssh/authorized_keys", its
    //    transcript a key line: once this replaced the host's authorized_keys.
    let escape = craft(env, &env.home, &w.laptop, &base, &session_then("ssh-ed25519 AAAA attacker\n"), None, |note| {
        note["epoch"] = json!(1);
        note["owner_machine"] = json!("devbox");
        note["owner_machine_id"] = json!(host_id);
        note["transcript"]["codex_session"] = json!(SESSION);
        note["transcript"]["codex_rollout"] = json!("../../.ssh/authorized_keys");
    });
    let incoming = |snapshot: &str| {
        vec![
            format!("+{snapshot}:refs/codex-handoff/incoming/{uuid}/snapshot"),
            format!("+refs/notes/crafted:refs/codex-handoff/incoming/{uuid}/notes"),
        ]
    };
    assert_eq!(helper.call("begin", json!({ "repo": repo, "uuid": uuid }))["ok"], true);
    push(&w, &repo, &incoming(&escape)).unwrap();
    let answer = helper.call("receive", json!({ "repo": repo, "uuid": uuid, "snapshot": escape }));
    assert_refused(&answer, 4, "bad_rollout_path");
    assert!(!w.remote_home.join(".ssh").exists());
    assert_unchanged(&before, &digest(&w, &[]), "a rollout name escaping sessions/");

    // 2. A note about another thread than the request names, with a UUID
    //    whose eighth byte splits a character (the helper once panicked on it).
    let hostile_uuid = "aaaaaaa\u{e9}-0000-4000-8000-000000000000";
    let other_thread = craft(env, &env.home, &w.laptop, &base, b"", None, |note| {
        note["epoch"] = json!(1);
        note["owner_machine"] = json!("devbox");
        note["owner_machine_id"] = json!(host_id);
        note["uuid"] = json!(hostile_uuid);
    });
    push(&w, &repo, &incoming(&other_thread)).unwrap();
    let answer = helper.call("receive", json!({ "repo": repo, "uuid": uuid, "snapshot": other_thread }));
    assert_refused(&answer, 4, "bad_note");
    assert_refused(&helper.call("begin", json!({ "repo": repo, "uuid": hostile_uuid })), 2, "bad_thread");
    assert_refused(&helper.call("status", json!({ "repo": repo, "uuid": "../../../x" })), 2, "bad_thread");
    assert_unchanged(&before, &digest(&w, &[]), "a note naming another thread");

    // 3. Intent-to-add paths that leave the worktree.
    let ita = craft(env, &env.home, &w.laptop, &base, b"", Some(b"../../../../../outside.txt\0"), |note| {
        note["epoch"] = json!(1);
        note["owner_machine"] = json!("devbox");
        note["owner_machine_id"] = json!(host_id);
    });
    push(&w, &repo, &incoming(&ita)).unwrap();
    let answer = helper.call("receive", json!({ "repo": repo, "uuid": uuid, "snapshot": ita }));
    assert_refused(&answer, 4, "bad_snapshot_path");
    assert_unchanged(&before, &digest(&w, &[]), "intent-to-add paths outside the worktree");

    // 4. Garbage and unknown requests get answers, not a crash.
    assert_refused(&helper.send("{\"op\": 7}"), 2, "bad_request");
    assert_refused(&helper.send("\u{1b}[2J not json"), 2, "bad_request");
    assert_refused(
        &helper.call("receive", json!({ "repo": repo, "uuid": uuid, "snapshot": "zz" })),
        1,
        "bad_object_id",
    );
    assert_refused(&helper.call("shell", json!({ "command": "id" })), 2, "unknown_op");

    // 5. No configuration changes over the key: another repository stays unreachable.
    let answer = helper.call("project_save", json!({ "path": other }));
    assert_refused(&answer, 4, "restricted");
    let answer = helper.call("project_forget", json!({ "path": w.remote_clone }));
    assert_refused(&answer, 4, "restricted");
    assert_eq!(helper.call("projects", json!({}))["result"]["projects"].as_array().unwrap().len(), 1);
    let err = push(&w, other.to_str().unwrap(), &["HEAD:refs/heads/main".to_owned()]).unwrap_err();
    assert!(err.contains("not a saved project"), "{err}");
    // Nor does the key move the saved project's own branches or notes: pushes
    // land only under refs/codex-handoff/incoming/, where the helper checks them.
    let refs_before = w.git_remote(&w.remote_clone, &["for-each-ref"]);
    for target in ["refs/heads/main", "refs/heads/new-branch", "refs/notes/codex-handoff", "refs/tags/v1"] {
        let err = push(&w, &repo, &[format!("+{escape}:{target}")]).unwrap_err();
        assert!(err.contains("may push only to refs/codex-handoff/incoming/"), "{target}: {err}");
    }
    let err = push(
        &w,
        &repo,
        &[format!("+{escape}:refs/codex-handoff/incoming/{uuid}/x"), format!("+{escape}:refs/heads/main")],
    )
    .unwrap_err();
    assert!(err.contains("refs/heads/main"), "one wrong ref refuses the whole push: {err}");
    assert_eq!(w.git_remote(&w.remote_clone, &["for-each-ref"]), refs_before, "no ref moved");
    let url = format!("{}:{}", crate::sshd::HOST, other.display());
    let listed = env.git_with_env(&w.laptop, &["ls-remote", &url], &[]);
    assert!(!listed.status.success() && String::from_utf8_lossy(&listed.stderr).contains("not a saved project"));
    drop(helper);
    assert_unchanged(&before, &digest(&w, &[]), "project_save over the restricted key");

    // 6. No tunnels with the documented line; the forced command alone allowed them.
    assert!(!tunnel_reaches_the_host(&w), "the documented forced-command line allows tunnels");
    sshd.authorize(&format!("command=\"{BIN} remote serve --restricted\""));
    assert!(tunnel_reaches_the_host(&w), "the check above could not fail");
    sshd.authorize(&documented_forced_command());

    // After all that, a genuine handoff over the key goes through.
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    assert_eq!(out["epoch"], 1);
    assert!(!w.git_remote(&w.remote_clone, &["for-each-ref", "refs/codex-handoff/incoming/"]).contains("incoming"));
}

/// A helper that answers a hand-back with a snapshot prepared on the host
/// (`refs/codex-handoff/outgoing/<uuid>`), as a hostile or compromised host would.
fn hostile_helper(path: &Path, repo: &Path, snapshot: &str, epoch: u64, machine_id: &str) {
    let repo = repo.display();
    let script = format!(
        r#"#!/bin/sh
while IFS= read -r line; do
  case "$line" in
    *'"op":"hello"'*) echo '{{"ok":true,"result":{{"protocol":2,"version":"0.1.0","machine":"devbox","machine_id":"{machine_id}"}}}}' ;;
    *'"op":"find_project"'*) echo '{{"ok":true,"result":{{"repo":"{repo}","project":"{repo}"}}}}' ;;
    *'"op":"status"'*) echo '{{"ok":true,"result":{{"branch":null,"changes":{{"staged":0,"unstaged":0,"untracked":0,"bytes":0}}}}}}' ;;
    *'"op":"begin"'*) echo '{{"ok":true,"result":{{"thread":{{"epoch":{epoch},"owner_machine":"devbox","owner_machine_id":"{machine_id}","snapshot":"{snapshot}"}}}}}}' ;;
    *'"op":"depart"'*) echo '{{"ok":true,"result":{{"snapshot":"{snapshot}"}}}}' ;;
    *'"op":"release"'*) echo '{{"ok":true,"result":{{}}}}' ;;
    *'"op":"bye"'*) exit 0 ;;
    *) echo '{{"ok":false,"error":{{"code":"unknown","message":"unknown","exit_code":1}}}}' ;;
  esac
done
"#
    );
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_hostile_host_cannot_write_outside_its_place_here() {
    let w = World::new(Via::Openssh);
    let env = &w.env;
    w.run(&["thread", "new", "--branch", "feat/back"]).success();
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let uuid = out["uuid"].as_str().unwrap().to_owned();
    let there = out["snapshot"].as_str().unwrap().to_owned();
    let note: Value =
        serde_json::from_str(&env.git(&w.laptop, &["notes", "--ref", "codex-handoff", "show", &there])).unwrap();
    let (host_id, laptop_id) = (note["owner_machine_id"].clone(), note["source_machine_id"].clone());
    assert!(host_id.is_string() && laptop_id.is_string(), "{note}");
    // On the host: a snapshot whose note sends the transcript to ~/laptop-pwned.txt here.
    let snapshot = craft(env, &w.remote_home, &w.remote_clone, &there, &session_then("pwned\n"), None, |note| {
        note["epoch"] = json!(2);
        note["owner_machine"] = json!("laptop");
        note["owner_machine_id"] = laptop_id.clone();
        note["transcript"]["codex_session"] = json!(SESSION);
        note["transcript"]["codex_rollout"] = json!("../../laptop-pwned.txt");
    });
    w.git_remote(&w.remote_clone, &["update-ref", &format!("refs/codex-handoff/outgoing/{uuid}"), &snapshot]);
    w.git_remote(
        &w.remote_clone,
        &["update-ref", &format!("refs/codex-handoff/staged/{uuid}/notes"), "refs/notes/crafted"],
    );
    let script = env.path("hostile-helper");
    hostile_helper(&script, &w.remote_clone.join(".git"), &snapshot, 1, host_id.as_str().unwrap());
    env.git(&w.laptop, &["config", "--global", "codex-handoff.devbox.helper", script.to_str().unwrap()]);

    let before = digest(&w, &[]);
    w.run(&["1", "local"]).fails_with(4, "refused the Codex session file name").fails_with(4, "devbox");
    assert!(!env.home.join("laptop-pwned.txt").exists());
    assert_unchanged(&before, &digest(&w, &[]), "a hand-back from a hostile host");
    let here = w.run(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!((here["owner"].as_str(), here["epoch"].as_u64()), (Some("devbox"), Some(1)), "ownership unchanged");

    // A note about another thread is refused the same way.
    let other = craft(env, &w.remote_home, &w.remote_clone, &there, b"", None, |note| {
        note["epoch"] = json!(2);
        note["owner_machine"] = json!("laptop");
        note["owner_machine_id"] = laptop_id.clone();
        note["uuid"] = json!("aaaaaaa\u{e9}-0000-4000-8000-000000000000");
    });
    w.git_remote(&w.remote_clone, &["update-ref", &format!("refs/codex-handoff/outgoing/{uuid}"), &other]);
    w.git_remote(
        &w.remote_clone,
        &["update-ref", &format!("refs/codex-handoff/staged/{uuid}/notes"), "refs/notes/crafted"],
    );
    hostile_helper(&script, &w.remote_clone.join(".git"), &other, 1, host_id.as_str().unwrap());
    let before = digest(&w, &[]);
    w.run(&["1", "local"]).fails_with(4, "its note names thread");
    assert_unchanged(&before, &digest(&w, &[]), "a hand-back of another thread's note");

    // A host claiming that an earlier handoff of thread 2 finished there,
    // showing thread 1's snapshot: this computer keeps thread 2 as it is.
    w.run(&["thread", "new", "--branch", "feat/second"]).success();
    let second = w.run(&["thread", "show", "2", "--json"]).success().json();
    hostile_helper(&script, &w.remote_clone.join(".git"), &there, 1, host_id.as_str().unwrap());
    let before = digest(&w, &[]);
    w.run(&["2", "devbox", "--yes"]).fails_with(4, "its note names thread").fails_with(4, "nothing was changed");
    assert_unchanged(&before, &digest(&w, &[]), "an adopted record of another thread");
    assert_eq!(w.run(&["thread", "show", "2", "--json"]).success().json(), second, "thread 2 unchanged");
}

/// A TCP port on loopback that accepts connections and never says a word.
struct BlackHole {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BlackHole {
    fn open() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Ok((stream, _)) = listener.accept() {
                    held.push(stream);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        BlackHole { port, stop, thread: Some(thread) }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Run the binary on the laptop's repository; `None` if it had to be stopped after `limit`.
fn run_within(w: &World, args: &[&str], limit: Duration) -> Option<crate::harness::Run> {
    let mut cmd = w.env.command(BIN, &w.laptop);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(crate::harness::Run::from(child.wait_with_output().unwrap()))
}

fn socket_dirs(tmp: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("cxh-"))
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn a_silent_host_or_helper_fails_within_the_connect_timeout() {
    let w = World::new(Via::Openssh);
    let env = &w.env;
    let sshd = w.sshd.as_ref().unwrap();
    let hole = BlackHole::open();
    let mut config = std::fs::OpenOptions::new().append(true).open(sshd.config_path()).unwrap();
    writeln!(
        config,
        "\nHost blackhole\n\tHostName 127.0.0.1\n\tPort {}\n\tUser root\n\tBatchMode yes\n\tUserKnownHostsFile /dev/null\n\tGlobalKnownHostsFile /dev/null\n\tStrictHostKeyChecking yes",
        hole.port
    )
    .unwrap();
    let silent = env.path("silent-helper");
    std::fs::write(&silent, "#!/bin/sh\nexec sleep 20\n").unwrap();
    std::fs::set_permissions(&silent, std::fs::Permissions::from_mode(0o755)).unwrap();
    w.run(&["host", "add", "blackhole", "blackhole", "--helper", BIN]).success();
    w.run(&["host", "add", "silent", "devbox", "--helper", silent.to_str().unwrap()]).success();
    let mut silent_hosts = vec![("blackhole", "blackhole (blackhole)"), ("silent", "did not answer within 2 s")];
    if cfg!(feature = "ssh2") {
        w.run(&["host", "add", "blackhole2", "blackhole", "--transport", "ssh2", "--helper", BIN]).success();
        w.run(&["host", "add", "silent2", "devbox", "--transport", "ssh2", "--helper", silent.to_str().unwrap()])
            .success();
        silent_hosts.extend([("blackhole2", "blackhole2"), ("silent2", "did not answer within 2 s")]);
    }
    env.git(&w.laptop, &["config", "--global", "codex-handoff.connectTimeout", "2"]);
    w.run(&["thread", "new", "--branch", "feat/timeout"]).success();
    // The repository's fingerprint is cached in its config on first use.
    w.run(&["destinations"]).success();

    let before = digest(&w, &[]);
    // A black hole ends in ssh's own timeout or in the wait for the helper's answer, whichever comes first.
    for (host, says) in silent_hosts {
        for args in [vec!["1", host], vec!["host", "check", host]] {
            // The bound that matters is "it ended": far below the 20 s default, let alone forever.
            let out = run_within(&w, &args, Duration::from_secs(15))
                .unwrap_or_else(|| panic!("{args:?} was still waiting after 15 s"));
            out.fails_with(5, host).fails_with(5, says);
        }
    }
    assert_unchanged(&before, &digest(&w, &[]), "handoffs to silent hosts");
    env.git(&w.laptop, &["config", "--global", "codex-handoff.connectTimeout", "later"]);
    w.run(&["host", "check", "devbox"]).fails_with(2, "connectTimeout");
    env.git(&w.laptop, &["config", "--global", "codex-handoff.connectTimeout", "20"]);

    // The ControlMaster socket directory: 0700, and left behind by a killed
    // client only until the next start.
    let tmp = env.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let dead = tmp.join("cxh-999999999-stale");
    let alive = tmp.join(format!("cxh-{}-live", std::process::id()));
    std::fs::create_dir(&dead).unwrap();
    std::fs::create_dir(&alive).unwrap();
    let mut client = env.command(BIN, &w.laptop);
    client.args(["host", "check", "silent"]).env("TMPDIR", &tmp).stdout(Stdio::null()).stderr(Stdio::null());
    let mut client = client.spawn().unwrap();
    let own_prefix = format!("cxh-{}-", client.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    let own = loop {
        let found =
            socket_dirs(&tmp).into_iter().find(|d| d.file_name().unwrap().to_string_lossy().starts_with(&own_prefix));
        if let Some(dir) = found {
            break dir;
        }
        assert!(Instant::now() < deadline, "no socket directory appeared in {}", tmp.display());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(std::fs::metadata(&own).unwrap().permissions().mode() & 0o777, 0o700);
    assert!(!dead.exists(), "a dead process's socket directory is removed at the next start");
    assert!(alive.exists(), "a running process's socket directory is left alone");
    client.kill().unwrap();
    client.wait().unwrap();
    assert!(own.exists());
    let mut check = env.command(BIN, &w.laptop);
    check.args(["host", "check", "devbox"]).env("TMPDIR", &tmp);
    crate::harness::Run::from(check.output().unwrap()).success();
    assert_eq!(socket_dirs(&tmp), vec![alive], "the killed client's directory is gone, nothing else left");
}

#[test]
fn odd_and_hostile_input_ends_in_clear_errors() {
    use std::os::unix::ffi::OsStrExt;
    let w = World::new(Via::Openssh);
    let env = &w.env;

    // Titles with escape sequences reach the terminal as text.
    let title = "\u{1b}]0;owned\u{7}evil\u{1b}[2J title \u{202e}txt";
    w.run(&["thread", "new", "--title", title, "--branch", "feat/odd"]).success();
    let list = w.run(&["thread", "list"]).success().stdout.clone();
    let show = w.run(&["thread", "show", "1"]).success().stdout.clone();
    let plan = w.run(&["1", "devbox", "--dry-run"]).success().stderr.clone();
    for shown in [&list, &show, &plan] {
        assert!(!shown.contains('\u{1b}') && !shown.contains('\u{7}') && !shown.contains('\u{202e}'), "{shown:?}");
        assert!(shown.contains("\\u{1b}]0;owned\\u{7}evil\\u{1b}[2J title \\u{202e}txt"), "{shown}");
    }
    assert_eq!(w.run(&["thread", "show", "1", "--json"]).success().json()["title"], title, "JSON keeps the title");

    // Directories whose names are not UTF-8: refused before anything is
    // written where they cannot work, no panic where they can.
    let odd = env.path("odd");
    let host_odd = w.remote_home.join(std::ffi::OsStr::from_bytes(b"proj\xfe"));
    let link = w.remote_home.join("proj-link");
    let made = [
        PathBuf::from("odd"),
        PathBuf::from(std::ffi::OsStr::from_bytes(b"remote-home/proj\xfe")),
        "remote-home/proj-link".into(),
    ];
    let before = digest(&w, &made);
    let repo = odd.join(std::ffi::OsStr::from_bytes(b"r\xff"));
    std::fs::create_dir_all(&repo).unwrap();
    env.git(&repo, &["init", "-q"]);
    env.git(&repo, &["commit", "-q", "--allow-empty", "-m", "one"]);
    env.run(&repo, &["project", "save"]).fails_with(4, "not a UTF-8 path");
    let hooks = env.run(&repo, &["install-hooks", "--json"]).success().json();
    assert!(hooks["hooks_dir"].as_str().unwrap().ends_with("/hooks"), "{hooks}");
    env.run(&repo, &["thread", "new"]).success();
    env.run(&repo, &["thread", "snapshot", "1"]).success();
    let target = odd.join(std::ffi::OsStr::from_bytes(b"copy\xfe"));
    let mut cmd = env.command("git", &repo);
    cmd.args(["codex-handoff", "thread", "restore", "1", "--detach", "--json"]).arg(&target);
    let restored = crate::harness::Run::from(cmd.output().unwrap());
    assert_eq!(restored.success().json()["worktree"], target.to_string_lossy().as_ref());
    assert!(target.join(".git").is_file());
    // On the host, through a symlink with a UTF-8 name.
    std::fs::create_dir_all(&host_odd).unwrap();
    w.git_remote(&host_odd, &["init", "-q"]);
    std::os::unix::fs::symlink(&host_odd, &link).unwrap();
    w.run(&["project", "save", "--host", "devbox", link.to_str().unwrap()]).fails_with(4, "not a UTF-8 path");
    assert_unchanged(&before, &digest(&w, &made), "non-UTF-8 directories");

    // A lock file left empty or garbled by a crash blocks nobody (the lock is
    // the process's flock, not the file's content).
    let uuid = w.run(&["thread", "show", "1", "--json"]).success().json()["uuid"].as_str().unwrap().to_owned();
    let lock = w.laptop.join(format!(".git/codex-handoff/locks/{uuid}.lock"));
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    for left_behind in [&b""[..], b"\xff\xfe not a pid", b"999999999\n"] {
        std::fs::write(&lock, left_behind).unwrap();
        w.run(&["thread", "snapshot", "1"]).success();
    }
}

/// Notes that come back from a host only add: a host that rewrote the note
/// of a thread that never left this computer changes nothing about it here,
/// even when its notes history descends from this computer's.
#[test]
fn a_host_cannot_rewrite_the_notes_of_threads_it_never_had() {
    let w = World::new(Via::Local);
    let env = &w.env;
    w.run(&["thread", "new", "--title", "Travels", "--branch", "feat/travels"]).success();
    w.run(&["thread", "new", "--title", "Stays here", "--branch", "feat/stays"]).success();
    let stays = w.run(&["thread", "show", "2", "--json"]).success().json();
    let snapshot = stays["snapshot"].as_str().unwrap().to_owned();
    w.run(&["1", "devbox", "--yes"]).success();

    // On the host, thread 2's note (it came along in the notes history) now says otherwise.
    let theirs = env.git_as(&w.remote_home, &w.remote_clone, &["notes", "--ref", "codex-handoff", "show", &snapshot]);
    let mut note: Value = serde_json::from_str(&theirs).expect("thread 2's note reached the host");
    note["title"] = json!("pwned");
    note["owner_machine"] = json!("devbox");
    note["branch"] = json!("pwned");
    git_input(
        env,
        &w.remote_home,
        &w.remote_clone,
        &["notes", "--ref", "codex-handoff", "add", "-f", "-F", "-", &snapshot],
        &serde_json::to_vec_pretty(&note).unwrap(),
    );

    w.run(&["1", "local", "--yes"]).success();
    assert_eq!(w.run(&["thread", "show", "2", "--json"]).success().json(), stays, "thread 2 as it was");
    let ours = env.git(&w.laptop, &["notes", "--ref", "codex-handoff", "show", &snapshot]);
    assert!(!ours.contains("pwned"), "{ours}");
    assert_eq!(w.run(&["thread", "show", "1", "--json"]).success().json()["owner"], "local");
}

/// The answers of a helper on the host (`remote serve`) to `input`, a whole session's requests and bytes.
fn helper_answers(w: &World, input: &[u8]) -> Vec<Value> {
    let mut helper = w.env.command_with_home(BIN, &w.remote_home, &w.remote_home);
    helper.args(["remote", "serve"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = helper.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Bytes beside a request: a transcript that is not the blob it claims to
/// be is refused and kept nowhere, bytes sent before `begin` or for a thread
/// that did not depart are read and refused; the session goes on after each.
#[test]
fn transcript_bytes_from_a_client_are_checked_before_anything_is_kept() {
    let w = World::new(Via::Local);
    let repo =
        w.env.git_as(&w.remote_home, &w.remote_clone, &["rev-parse", "--path-format=absolute", "--git-common-dir"]);
    let repo = repo.trim();
    let uuid = "0b5c6f0e-3c1e-4a57-9a7e-4f3f1f8a9b10";
    let honest = b"{\"transcript\":\"as it came\"}\n".to_vec();
    let file = w.env.path("honest.jsonl");
    std::fs::write(&file, &honest).unwrap();
    let blob = w.env.git(w.env.root.path(), &["hash-object", file.to_str().unwrap()]).trim().to_owned();
    let lie = b"{\"transcript\":\"something else\"}\n".to_vec();
    let packs = || std::fs::read_dir(Path::new(repo).join("objects/pack")).map_or(0, |d| d.count());
    let before = packs();

    let line = |v: Value| format!("{v}\n").into_bytes();
    let mut input = line(json!({ "op": "hello", "params": { "protocol": 3 } }));
    // Before begin: refused, its bytes read all the same.
    input.extend(line(
        json!({ "op": "transcript_in", "params": { "repo": repo, "uuid": uuid, "blob": blob, "size": honest.len() } }),
    ));
    input.extend(&honest);
    input.extend(line(json!({ "op": "begin", "params": { "repo": repo, "uuid": uuid } })));
    // Bytes that are not the blob named.
    input.extend(line(
        json!({ "op": "transcript_in", "params": { "repo": repo, "uuid": uuid, "blob": blob, "size": lie.len() } }),
    ));
    input.extend(&lie);
    // Nothing departed: nothing to send.
    input.extend(line(json!({ "op": "transcript_out", "params": { "repo": repo, "uuid": uuid } })));
    input.extend(line(json!({ "op": "pack_out", "params": { "repo": repo, "uuid": uuid, "haves": ["../x", "-o"] } })));
    // The honest bytes are kept, at the thread's incoming ref.
    input.extend(line(
        json!({ "op": "transcript_in", "params": { "repo": repo, "uuid": uuid, "blob": blob, "size": honest.len() } }),
    ));
    input.extend(&honest);
    let answers = helper_answers(&w, &input);
    assert_eq!(answers.len(), 7, "one answer each, the session went on: {answers:?}");
    assert_eq!(answers[0]["result"]["protocol"], 3);
    assert_refused(&answers[1], 2, "not_begun");
    assert_eq!(answers[2]["ok"], true, "{answers:?}");
    assert_eq!(answers[3]["error"]["code"], "blob_mismatch", "{answers:?}");
    assert_eq!(answers[4]["error"]["code"], "not_departed", "{answers:?}");
    assert_eq!(answers[5]["error"]["code"], "not_departed", "{answers:?}");
    assert_eq!(answers[6]["ok"], true, "{answers:?}");
    assert_eq!(packs(), before + 2, "one pack (and its index) for the honest bytes only");
    let git = |args: &[&str]| w.env.git_as(&w.remote_home, &w.remote_clone, args);
    let at = git(&["rev-parse", &format!("refs/codex-handoff/incoming/{uuid}/transcript")]);
    assert_eq!(at.trim(), blob);
    assert_eq!(git(&["cat-file", "blob", &blob]).as_bytes(), honest);
}

/// A pack beside `pack_in` (protocol 4, what a handoff sends the host): it
/// is read and refused before `begin`, refused when it would set a ref
/// other than the thread's incoming ones, when it is not a pack, and when
/// the commit it names is not whole after it; the session goes on after
/// each, and only the honest pack sets the thread's incoming ref.
#[test]
fn a_pack_from_a_client_sets_only_the_threads_incoming_refs_and_only_when_whole() {
    let w = World::new(Via::Local);
    let git = |args: &[&str]| w.env.git_as(&w.remote_home, &w.remote_clone, args);
    let repo = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]);
    let repo = repo.trim();
    let uuid = "0b5c6f0e-3c1e-4a57-9a7e-4f3f1f8a9b10";
    // On this computer: a commit on top of what the host has, and one whose parent the host lacks.
    let base = w.env.git(&w.laptop, &["rev-parse", "HEAD"]).trim().to_owned();
    std::fs::write(w.laptop.join("new.txt"), "new\n").unwrap();
    w.env.git(&w.laptop, &["add", "new.txt"]);
    w.env.git(&w.laptop, &["commit", "-q", "-m", "new"]);
    let parent = w.env.git(&w.laptop, &["rev-parse", "HEAD"]).trim().to_owned();
    w.env.git(&w.laptop, &["commit", "-q", "--allow-empty", "-m", "newer"]);
    let tip = w.env.git(&w.laptop, &["rev-parse", "HEAD"]).trim().to_owned();
    let pack = |revs: &str| {
        let mut child = w
            .env
            .command("git", &w.laptop)
            .args(["pack-objects", "--revs", "--stdout", "-q"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(revs.as_bytes()).unwrap();
        child.wait_with_output().unwrap().stdout
    };
    let whole = pack(&format!("{tip}\n^{base}\n"));
    let partial = pack(&format!("{tip}\n^{parent}\n"));
    let refs_before = git(&["for-each-ref", "refs/heads", "refs/notes", "refs/codex-handoff/threads"]);

    let line = |v: Value| format!("{v}\n").into_bytes();
    let pack_in = |refs: Value, bytes: &[u8]| {
        let mut input = line(json!({ "op": "pack_in",
            "params": { "repo": repo, "uuid": uuid, "refs": refs, "size": bytes.len() } }));
        input.extend(bytes);
        input
    };
    let mut input = line(json!({ "op": "hello", "params": { "protocol": 4 } }));
    input.extend(pack_in(json!({ "head": tip }), &whole));
    input.extend(line(json!({ "op": "begin", "params": { "repo": repo, "uuid": uuid } })));
    input.extend(pack_in(json!({ "../../heads/devbox-home": tip }), &whole));
    input.extend(pack_in(json!({ "head": tip }), b"this is not a pack at all"));
    input.extend(pack_in(json!({ "head": tip }), &partial));
    input.extend(pack_in(json!({ "head": tip }), &whole));
    let answers = helper_answers(&w, &input);
    assert_eq!(answers.len(), 7, "one answer each, the session went on: {answers:?}");
    assert_eq!(answers[0]["result"]["protocol"], 4);
    assert_refused(&answers[1], 2, "not_begun");
    assert_eq!(answers[2]["ok"], true, "{answers:?}");
    assert_refused(&answers[3], 2, "bad_request");
    assert_eq!(answers[4]["error"]["code"], "not_a_pack", "{answers:?}");
    assert_eq!(answers[5]["error"]["code"], "push_failed", "{answers:?}");
    assert!(answers[5]["error"]["message"].as_str().unwrap().contains("incomplete"), "{answers:?}");
    assert_eq!(answers[6]["ok"], true, "{answers:?}");
    let incoming = git(&["rev-parse", &format!("refs/codex-handoff/incoming/{uuid}/head")]);
    assert_eq!(incoming.trim(), tip);
    let refs_after = git(&["for-each-ref", "refs/heads", "refs/notes", "refs/codex-handoff/threads"]);
    assert_eq!(refs_after, refs_before, "no other ref moved");
    assert_eq!(git(&["cat-file", "-p", &format!("{tip}^:new.txt")]), "new\n");
}
