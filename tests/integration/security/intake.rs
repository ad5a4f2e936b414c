//! What arrives as raw bytes, both ways: packs get the object checks the
//! receiving repository's own git would give them (and nothing of a
//! refused one is kept), every stream has a ceiling, and a request about
//! a thread's state needs that thread's lock in that very repository.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{assert_refused, craft_on, digest, documented_forced_command, git_input, push, RawHelper};
use crate::handoff::{Via, World};
use crate::harness::{assert_unchanged, TestEnv};

/// What a repository's object store holds: loose objects and packs, and
/// anything a failed intake could leave (quarantines, temporary packs).
fn object_store(env: &TestEnv, home: &Path, repo: &Path) -> String {
    let mut out = env.git_as(home, repo, &["count-objects", "-v"]);
    let common = env.git_as(home, repo, &["rev-parse", "--path-format=absolute", "--git-common-dir"]);
    let objects = Path::new(common.trim_end()).join("objects");
    let mut names: Vec<String> = std::fs::read_dir(&objects)
        .unwrap()
        .chain(std::fs::read_dir(objects.join("pack")).unwrap())
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !(n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit())))
        .collect();
    names.sort();
    out += &names.join("\n");
    out
}

#[track_caller]
fn assert_store_unchanged(before: &str, after: &str, what: &str) {
    assert!(!after.contains("incoming-") && !after.contains("tmp_"), "{what} left something: {after}");
    assert_eq!(before, after, "{what}: the object store changed");
}

/// A commit on top of `parent` whose author has no email (as `git
/// hash-object --literally` lets one be written), in `repo`.
fn commit_without_email(env: &TestEnv, home: &Path, repo: &Path, parent: &str) -> String {
    let tree = env.git_as(home, repo, &["rev-parse", &format!("{parent}^{{tree}}")]).trim().to_owned();
    let text = format!("tree {tree}\nparent {parent}\nauthor nobody 1700000000 +0000\ncommitter x <x@example.com> 1700000000 +0000\n\nno email\n");
    git_input(env, home, repo, &["hash-object", "-t", "commit", "-w", "--literally", "--stdin"], text.as_bytes())
}

/// A commit on top of `parent` adding a `.gitmodules` whose url is an ssh option.
fn commit_with_option_url(env: &TestEnv, home: &Path, repo: &Path, parent: &str, marker: &Path) -> String {
    let modules = format!("[submodule \"x\"]\n\tpath = x\n\turl = -oProxyCommand=touch {}\n", marker.display());
    let blob = git_input(env, home, repo, &["hash-object", "-w", "--stdin"], modules.as_bytes());
    let mut entries = env.git_as(home, repo, &["ls-tree", parent]);
    entries += &format!("100644 blob {blob}\t.gitmodules\n");
    let tree = git_input(env, home, repo, &["mktree"], entries.as_bytes());
    env.git_as(home, repo, &["commit-tree", &tree, "-p", parent, "-m", "submodule"]).trim().to_owned()
}

/// A pack of what `revs` (pack-objects `--revs` lines) reach, made in `repo`.
fn pack_of(env: &TestEnv, home: &Path, repo: &Path, revs: &str) -> Vec<u8> {
    let mut child = env
        .command_with_home("git", repo, home)
        .args(["pack-objects", "--revs", "--stdout", "-q"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(revs.as_bytes()).unwrap();
    child.wait_with_output().unwrap().stdout
}

/// A helper of protocol 4 that hands back the snapshot prepared on the host
/// (`refs/codex-handoff/outgoing/<uuid>`, its note staged) as a real one
/// would, a pack beside `pack_out` made without `there`; `transcript_out`
/// and `pack_out` answer `transcript_out` / `pack_out` when given (shell).
#[allow(clippy::too_many_arguments)]
fn hostile_helper_v4(
    path: &Path,
    repo: &Path,
    uuid: &str,
    snapshot: &str,
    there: &str,
    machine_id: &str,
    transcript_out: Option<&str>,
    pack_out: Option<&str>,
) {
    let honest_pack = r#"notes=$(git --git-dir="@REPO@" rev-parse "refs/codex-handoff/staged/@UUID@/notes")
      printf '%s\n%s\n^%s\n' "@SNAPSHOT@" "$notes" "@THERE@" | git --git-dir="@REPO@" pack-objects --revs --stdout -q > "$tmp"
      echo "{\"ok\":true,\"result\":{\"snapshot\":\"@SNAPSHOT@\",\"notes\":\"$notes\",\"size\":$(wc -c < "$tmp")}}"
      cat "$tmp""#;
    let script = r#"#!/bin/sh
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
while IFS= read -r line; do
  case "$line" in
    *'"op":"hello"'*) echo '{"ok":true,"result":{"protocol":4,"version":"0.1.0","machine":"devbox","machine_id":"@ID@"}}' ;;
    *'"op":"find_project"'*) echo '{"ok":true,"result":{"repo":"@REPO@","project":"@REPO@"}}' ;;
    *'"op":"status"'*) echo '{"ok":true,"result":{"branch":null,"changes":{"staged":0,"unstaged":0,"untracked":0,"bytes":0}}}' ;;
    *'"op":"begin"'*) echo '{"ok":true,"result":{"thread":{"epoch":1,"owner_machine":"devbox","owner_machine_id":"@ID@","snapshot":"@THERE@"}}}' ;;
    *'"op":"depart"'*) echo '{"ok":true,"result":{"snapshot":"@SNAPSHOT@"}}' ;;
    *'"op":"transcript_out"'*)
      @TRANSCRIPT_OUT@ ;;
    *'"op":"pack_out"'*)
      @PACK_OUT@ ;;
    *'"op":"release"'*) echo '{"ok":true,"result":{}}' ;;
    *'"op":"bye"'*) exit 0 ;;
    *) echo '{"ok":false,"error":{"code":"unknown","message":"unknown","exit_code":1}}' ;;
  esac
done
"#
    .replace("@TRANSCRIPT_OUT@", transcript_out.unwrap_or(r#"echo '{"ok":true,"result":{"blob":null}}'"#))
    .replace("@PACK_OUT@", pack_out.unwrap_or(honest_pack))
    .replace("@REPO@", &repo.display().to_string())
    .replace("@UUID@", uuid)
    .replace("@SNAPSHOT@", snapshot)
    .replace("@THERE@", there)
    .replace("@ID@", machine_id);
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A thread handed to the host: its uuid, its snapshot there, and the host's and laptop's machine ids.
fn on_the_host(w: &World, branch: &str) -> (String, String, Value, Value) {
    w.run(&["thread", "new", "--branch", branch]).success();
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let uuid = out["uuid"].as_str().unwrap().to_owned();
    let there = out["snapshot"].as_str().unwrap().to_owned();
    let note: Value =
        serde_json::from_str(&w.env.git(&w.laptop, &["notes", "--ref", "codex-handoff", "show", &there])).unwrap();
    (uuid, there, note["owner_machine_id"].clone(), note["source_machine_id"].clone())
}

/// Put `snapshot` (its note in refs/notes/crafted) on the host as the thread's departure.
fn depart_on_host(w: &World, uuid: &str, snapshot: &str) {
    w.git_remote(&w.remote_clone, &["update-ref", &format!("refs/codex-handoff/outgoing/{uuid}"), snapshot]);
    w.git_remote(
        &w.remote_clone,
        &["update-ref", &format!("refs/codex-handoff/staged/{uuid}/notes"), "refs/notes/crafted"],
    );
}

/// A hand-back whose pack holds a commit without an author email and a
/// `.gitmodules` whose url is an ssh option: with `transfer.fsckObjects`
/// here it is refused as `git fetch` refuses it, with git's own reason, and
/// nothing of it is kept; `fetch.fsck.<msg-id>` and `fetch.fsck.skipList`
/// are honoured as git honours them (and `fsck.<msg-id>` is not, as git's
/// fetch does not read it).
#[test]
fn a_hand_back_gets_the_object_checks_this_computers_git_fetch_gives() {
    let w = World::new(Via::Openssh);
    let env = &w.env;
    let (uuid, there, host_id, laptop_id) = on_the_host(&w, "feat/fsck");
    let marker = env.path("proxy-command-ran");
    let head = env.git(&w.laptop, &["rev-parse", "HEAD"]).trim().to_owned();
    let modules = commit_with_option_url(env, &w.remote_home, &w.remote_clone, &head, &marker);
    let bad = commit_without_email(env, &w.remote_home, &w.remote_clone, &modules);
    let snapshot = craft_on(env, &w.remote_home, &w.remote_clone, &there, Some(&bad), b"", None, |note| {
        // On a detached HEAD: the commit without an email is no branch's.
        note["branch"] = Value::Null;
        note["epoch"] = json!(2);
        note["owner_machine"] = json!("laptop");
        note["owner_machine_id"] = laptop_id.clone();
    });
    depart_on_host(&w, &uuid, &snapshot);
    let script = env.path("hostile-helper");
    let repo = w.remote_clone.join(".git");
    hostile_helper_v4(&script, &repo, &uuid, &snapshot, &there, host_id.as_str().unwrap(), None, None);
    env.git(&w.laptop, &["config", "--global", "codex-handoff.devbox.helper", script.to_str().unwrap()]);
    env.git(&w.laptop, &["config", "transfer.fsckObjects", "true"]);

    // git's own fetch of the same refuses it (in a copy of this clone, which it may litter).
    let probe = env.path("probe.git");
    env.git(env.root.path(), &["clone", "-q", "--bare", w.laptop.to_str().unwrap(), probe.to_str().unwrap()]);
    env.git(&probe, &["config", "transfer.fsckObjects", "true"]);
    let fetched = env.git_with_env(
        &probe,
        &["fetch", "-q", repo.to_str().unwrap(), &format!("refs/codex-handoff/outgoing/{uuid}:refs/probe")],
        &[],
    );
    assert!(!fetched.status.success());
    assert!(String::from_utf8_lossy(&fetched.stderr).contains("missingEmail"), "{fetched:?}");

    let refused = |says: &str| {
        let (store, before) = (object_store(env, &env.home, &w.laptop), digest(&w, &[]));
        w.run(&["1", "local"]).fails_with(4, says).fails_with(4, "nothing of it was kept");
        assert_store_unchanged(&store, &object_store(env, &env.home, &w.laptop), says);
        assert_unchanged(&before, &digest(&w, &[]), says);
        assert!(!env.git_with_env(&w.laptop, &["cat-file", "-e", &bad], &[]).status.success(), "{says}: kept");
        let here = w.run(&["thread", "show", "1", "--json"]).success().json();
        assert_eq!((here["owner"].as_str(), here["epoch"].as_u64()), (Some("devbox"), Some(1)));
    };
    refused("missingEmail");
    env.git(&w.laptop, &["config", "fetch.fsck.missingEmail", "ignore"]);
    refused("gitmodulesUrl");
    // git's fetch does not read fsck.<msg-id>: neither does the hand-back.
    env.git(&w.laptop, &["config", "fsck.gitmodulesUrl", "ignore"]);
    refused("gitmodulesUrl");
    // A skip list naming the objects lets them through, as it does for git.
    let skip = env.path("skip-list");
    let blob = w.git_remote(&w.remote_clone, &["rev-parse", &format!("{modules}:.gitmodules")]);
    std::fs::write(&skip, blob).unwrap();
    env.git(&w.laptop, &["config", "fetch.fsck.skipList", skip.to_str().unwrap()]);
    let out = w.run(&["1", "local", "--detach", "--json"]).success().json();
    assert_eq!(out["epoch"], 2);
    assert!(env.git_with_env(&w.laptop, &["cat-file", "-e", &bad], &[]).status.success());
    assert!(!marker.exists(), "the ssh option in .gitmodules ran");
}

/// `pack_in` over the restricted key gets what `git push` gets from the
/// host's receive-pack: `receive.fsckObjects` with `receive.fsck.*`, and
/// `receive.maxInputSize`, refused before the bytes are read; a refused
/// pack leaves nothing in the host's object store. A transcript announced
/// over the ceiling (the default, 4 GiB, when nothing is set) is refused
/// unread and ends the session.
#[test]
fn what_a_client_sends_gets_the_checks_and_ceiling_of_the_hosts_receive_pack() {
    let w = World::new(Via::Openssh);
    let env = &w.env;
    w.sshd.as_ref().unwrap().authorize(&documented_forced_command());
    let thread = w.run(&["thread", "new", "--branch", "feat/in", "--json"]).success().json();
    let uuid = thread["uuid"].as_str().unwrap().to_owned();
    let head = env.git(&w.laptop, &["rev-parse", "HEAD"]).trim().to_owned();
    let bad = commit_without_email(env, &env.home, &w.laptop, &head);
    let bad_pack = pack_of(env, &env.home, &w.laptop, &format!("{bad}\n^{head}\n"));
    // 3 MiB that do not compress, in one commit.
    std::fs::write(w.laptop.join("big.bin"), crate::harness::Rng::new(3).bytes(3 << 20, true)).unwrap();
    env.git(&w.laptop, &["add", "big.bin"]);
    env.git(&w.laptop, &["commit", "-q", "-m", "big"]);
    let big = env.git(&w.laptop, &["rev-parse", "HEAD"]).trim().to_owned();
    let big_pack = pack_of(env, &env.home, &w.laptop, &format!("{big}\n^{head}\n"));
    let host = |args: &[&str]| w.git_remote(&w.remote_clone, args);
    host(&["config", "receive.fsckObjects", "true"]);

    let session = |w: &World| {
        let mut helper = RawHelper::connect(w);
        let projects = helper.call("projects", json!({}));
        let fingerprint = projects["result"]["projects"][0]["fingerprint"].as_str().unwrap().to_owned();
        let found = helper.call("find_project", json!({ "fingerprint": fingerprint, "subdirectory": "" }));
        let repo = found["result"]["repo"].as_str().unwrap().to_owned();
        helper.send(&json!({ "op": "hello", "params": { "protocol": 4 } }).to_string());
        assert_eq!(helper.call("begin", json!({ "repo": repo, "uuid": uuid }))["ok"], true);
        (helper, repo)
    };
    let pack_in = |helper: &mut RawHelper, repo: &str, commit: &str, pack: &[u8]| {
        let params = json!({ "repo": repo, "uuid": uuid, "refs": { "head": commit }, "size": pack.len() });
        helper.call_with_bytes("pack_in", params, pack.to_vec())
    };
    let incoming = format!("refs/codex-handoff/incoming/{uuid}/head");

    // A commit without an email: git push over the key is refused, and so is pack_in.
    let err = push(&w, host(&["rev-parse", "--absolute-git-dir"]).trim(), &[format!("{bad}:{incoming}")]).unwrap_err();
    assert!(err.contains("missingEmail"), "{err}");
    let store = object_store(env, &w.remote_home, &w.remote_clone);
    let (mut helper, repo) = session(&w);
    let answer = pack_in(&mut helper, &repo, &bad, &bad_pack);
    assert_refused(&answer, 4, "pack_refused");
    assert!(answer["error"]["message"].as_str().unwrap().contains("missingEmail"), "{answer}");
    assert_store_unchanged(&store, &object_store(env, &w.remote_home, &w.remote_clone), "a refused pack_in");
    assert!(!host(&["for-each-ref"]).contains(&incoming));
    // The host's receive.fsck.<msg-id> lets it in, as it lets in git push.
    host(&["config", "receive.fsck.missingEmail", "ignore"]);
    assert_eq!(pack_in(&mut helper, &repo, &bad, &bad_pack)["ok"], true);
    assert_eq!(host(&["rev-parse", &incoming]).trim(), bad);
    drop(helper);

    // receive.maxInputSize: git push of 3 MiB is refused, pack_in too, unread.
    host(&["config", "receive.maxInputSize", "200k"]);
    let err = push(&w, host(&["rev-parse", "--absolute-git-dir"]).trim(), &[format!("+{big}:{incoming}")]).unwrap_err();
    assert!(err.contains("maximum allowed size"), "{err}");
    let store = object_store(env, &w.remote_home, &w.remote_clone);
    let (mut helper, repo) = session(&w);
    let answer = pack_in(&mut helper, &repo, &big, &big_pack);
    assert_refused(&answer, 4, "too_large");
    assert!(answer["error"]["message"].as_str().unwrap().contains("receive.maxInputSize (200 KiB)"), "{answer}");
    assert!(helper.ended_within(Duration::from_secs(10)), "the session went on after bytes it did not read");
    assert_store_unchanged(&store, &object_store(env, &w.remote_home, &w.remote_clone), "an oversized pack_in");

    // A transcript of 2^40 bytes announced: refused at once, nothing written, the session ends.
    host(&["config", "--unset", "receive.maxInputSize"]);
    let (mut helper, repo) = session(&w);
    let started = Instant::now();
    let params = json!({ "repo": repo, "uuid": uuid, "blob": "0".repeat(40), "size": 1u64 << 40 });
    let answer = helper.call_with_bytes("transcript_in", params, vec![b'x'; 8 << 20]);
    assert_refused(&answer, 4, "too_large");
    assert!(answer["error"]["message"].as_str().unwrap().contains("default ceiling of 4 GiB"), "{answer}");
    assert!(helper.ended_within(Duration::from_secs(10)) && started.elapsed() < Duration::from_secs(15));
    assert_store_unchanged(&store, &object_store(env, &w.remote_home, &w.remote_clone), "an oversized transcript");
    // And under a ceiling the host sets, a transcript over it.
    host(&["config", "receive.maxInputSize", "200k"]);
    let (mut helper, repo) = session(&w);
    let params = json!({ "repo": repo, "uuid": uuid, "blob": "0".repeat(40), "size": 300 << 10 });
    let answer = helper.call_with_bytes("transcript_in", params, vec![b'x'; 300 << 10]);
    assert_refused(&answer, 4, "too_large");
    assert_store_unchanged(
        &store,
        &object_store(env, &w.remote_home, &w.remote_clone),
        "a transcript over the ceiling",
    );
}

/// A hostile helper announcing a terabyte beside `transcript_out` or
/// `pack_out`: refused before a byte is written here, at once, and this
/// computer's `receive.maxInputSize` is its ceiling when set.
#[test]
fn a_hostile_host_cannot_fill_this_computers_disk() {
    let w = World::new(Via::Openssh);
    let env = &w.env;
    let (uuid, there, host_id, laptop_id) = on_the_host(&w, "feat/flood");
    let snapshot = craft_on(env, &w.remote_home, &w.remote_clone, &there, None, b"", None, |note| {
        note["epoch"] = json!(2);
        note["owner_machine"] = json!("laptop");
        note["owner_machine_id"] = laptop_id.clone();
    });
    depart_on_host(&w, &uuid, &snapshot);
    let script = env.path("hostile-helper");
    let repo = w.remote_clone.join(".git");
    env.git(&w.laptop, &["config", "--global", "codex-handoff.devbox.helper", script.to_str().unwrap()]);
    let flood = |op: &str| {
        let answer = match op {
            "transcript_out" => format!(
                r#"{{"ok":true,"result":{{"blob":"{}","size":1099511627776,"carrier":null,"time":0}}}}"#,
                "1".repeat(40)
            ),
            _ => format!(
                r#"{{"ok":true,"result":{{"snapshot":"{snapshot}","notes":"{snapshot}","size":1099511627776}}}}"#
            ),
        };
        format!("echo '{answer}'; head -c 200000000 /dev/zero")
    };
    let cases = [
        (Some(flood("transcript_out")), None, "refused a transcript of 1099511627776 bytes"),
        (None, Some(flood("pack_out")), "1099511627776 bytes"),
    ];
    for (transcript_out, pack_out, says) in cases {
        hostile_helper_v4(
            &script,
            &repo,
            &uuid,
            &snapshot,
            &there,
            host_id.as_str().unwrap(),
            transcript_out.as_deref(),
            pack_out.as_deref(),
        );
        let (store, before) = (object_store(env, &env.home, &w.laptop), digest(&w, &[]));
        let started = Instant::now();
        w.run(&["1", "local"]).fails_with(4, says).fails_with(4, "default ceiling of 4 GiB");
        assert!(started.elapsed() < Duration::from_secs(20), "it read what it refused");
        assert_store_unchanged(&store, &object_store(env, &env.home, &w.laptop), says);
        assert_unchanged(&before, &digest(&w, &[]), says);
    }
    // Under a ceiling set here, the genuine pack is over it.
    hostile_helper_v4(&script, &repo, &uuid, &snapshot, &there, host_id.as_str().unwrap(), None, None);
    env.git(&w.laptop, &["config", "receive.maxInputSize", "100"]);
    w.run(&["1", "local"]).fails_with(4, "receive.maxInputSize (100 bytes)");
    env.git(&w.laptop, &["config", "--unset", "receive.maxInputSize"]);
    assert_eq!(w.run(&["1", "local", "--json"]).success().json()["epoch"], 2);
}

/// Session A holds thread U in the saved clone `app`; session B begins U in
/// a second saved clone `app2`. Whatever B then asks about U in `app` is
/// refused (no ref of `app` moves), and A goes on.
#[test]
fn a_session_acts_only_where_it_holds_the_thread() {
    let w = World::new(Via::Openssh);
    let env = &w.env;
    w.sshd.as_ref().unwrap().authorize(&documented_forced_command());
    let thread = w.run(&["thread", "new", "--branch", "feat/two", "--json"]).success().json();
    let uuid = thread["uuid"].as_str().unwrap().to_owned();
    let app2 = env.path("devbox-clone-2");
    w.git_remote(env.root.path(), &["clone", "-q", w.laptop.to_str().unwrap(), app2.to_str().unwrap()]);
    env.run_as(&w.remote_home, &app2, &["project", "save"]).success();
    let dir = |clone: &Path| w.git_remote(clone, &["rev-parse", "--path-format=absolute", "--git-common-dir"]);
    let (app, app2_repo) = (dir(&w.remote_clone).trim().to_owned(), dir(&app2).trim().to_owned());
    let head = env.git(&w.laptop, &["rev-parse", "HEAD"]).trim().to_owned();
    env.git(&w.laptop, &["commit", "-q", "--allow-empty", "-m", "more"]);
    let tip = env.git(&w.laptop, &["rev-parse", "HEAD"]).trim().to_owned();
    let pack = pack_of(env, &env.home, &w.laptop, &format!("{tip}\n^{head}\n"));

    let mut a = RawHelper::connect(&w);
    a.send(&json!({ "op": "hello", "params": { "protocol": 4 } }).to_string());
    assert_eq!(a.call("begin", json!({ "repo": app, "uuid": uuid }))["ok"], true);
    let mut b = RawHelper::connect(&w);
    b.send(&json!({ "op": "hello", "params": { "protocol": 4 } }).to_string());
    assert_eq!(b.call("begin", json!({ "repo": app2_repo, "uuid": uuid }))["ok"], true);
    let refs_before = w.git_remote(&w.remote_clone, &["for-each-ref"]);

    let params = json!({ "repo": app, "uuid": uuid, "refs": { "notes": tip }, "size": pack.len() });
    let answer = b.call_with_bytes("pack_in", params, pack.clone());
    assert_refused(&answer, 2, "not_begun");
    assert!(answer["error"]["message"].as_str().unwrap().contains("another repository"), "{answer}");
    let transcript = json!({ "repo": app, "uuid": uuid, "blob": "0".repeat(40), "size": 3 });
    assert_refused(&b.call_with_bytes("transcript_in", transcript, b"abc".to_vec()), 2, "not_begun");
    let snapshot = json!({ "repo": app, "uuid": uuid, "snapshot": head });
    for (op, params) in [
        ("receive", snapshot.clone()),
        ("release", snapshot.clone()),
        (
            "depart",
            json!({ "repo": app, "uuid": uuid, "epoch": 1, "to_machine": "x", "to_machine_id": "x",
                           "from": "devbox", "to": "x", "initiator": "x", "initiator_id": "x" }),
        ),
        ("transcript_out", json!({ "repo": app, "uuid": uuid })),
        ("pack_out", json!({ "repo": app, "uuid": uuid, "haves": [] })),
        ("lfs_expose", json!({ "repo": app, "uuid": uuid, "oids": [], "done": true })),
    ] {
        assert_refused(&b.call(op, params), 2, "not_begun");
    }
    assert_eq!(w.git_remote(&w.remote_clone, &["for-each-ref"]), refs_before, "a ref of app moved");
    // The session that holds U in app may.
    let params = json!({ "repo": app, "uuid": uuid, "refs": { "notes": tip }, "size": pack.len() });
    assert_eq!(a.call_with_bytes("pack_in", params, pack)["ok"], true);
    let incoming = w.git_remote(&w.remote_clone, &["rev-parse", &format!("refs/codex-handoff/incoming/{uuid}/notes")]);
    assert_eq!(incoming.trim(), tip);
}

/// A submodule's snapshot comes back by git's fetch, which has no ceiling of
/// its own: past this computer's `receive.maxInputSize` it is stopped, the
/// hand-back refused, and no temporary pack is left in the module repository.
#[test]
fn a_submodule_coming_back_is_held_to_this_computers_ceiling() {
    const FILE_PROTOCOL: &str = "protocol.file.allow=always";
    let w = World::with_laptop(Via::Openssh, |env, laptop| {
        let lib = env.committed_repo("origins/lib");
        env.git(laptop, &["-c", FILE_PROTOCOL, "submodule", "add", "-q", lib.to_str().unwrap(), "vendor/lib"]);
        env.git(laptop, &["commit", "-q", "-m", "vendor lib"]);
    });
    let env = &w.env;
    w.git_remote(&w.remote_clone, &["-c", FILE_PROTOCOL, "submodule", "update", "--init", "-q"]);
    w.run(&["thread", "new", "--branch", "feat/sub-flood"]).success();
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let host_lib = Path::new(out["owner_worktree"].as_str().unwrap()).join("vendor/lib");
    // On the host, 1 MiB that does not compress, committed in the submodule.
    std::fs::write(host_lib.join("big.bin"), crate::harness::Rng::new(5).bytes(1 << 20, true)).unwrap();
    w.git_remote(&host_lib, &["add", "big.bin"]);
    w.git_remote(&host_lib, &["commit", "-q", "-m", "big"]);

    env.git(&w.laptop, &["config", "receive.maxInputSize", "512k"]);
    let module_packs = w.laptop.join(".git/modules/vendor/lib/objects/pack");
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(&module_packs)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    };
    let before = listing();
    w.run(&["1", "local"]).fails_with(1, "refused more than 524288 bytes from the host").fails_with(1, "vendor/lib");
    assert_eq!(listing(), before, "a temporary pack was left behind");
    let here = w.run(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!(here["owner"], "devbox");
    env.git(&w.laptop, &["config", "--unset", "receive.maxInputSize"]);
    w.run(&["1", "local"]).success();
    assert_eq!(std::fs::read(w.laptop.join("vendor/lib/big.bin")).unwrap().len(), 1 << 20);
}

/// A genuine handoff of more than the host takes (`receive.maxInputSize`
/// there): the helper refuses the pack unread, and this computer says why,
/// changing nothing on either side.
fn a_handoff_over_the_hosts_ceiling_says_so(via: Via) {
    let w = World::new(via);
    w.run(&["thread", "new", "--branch", "feat/big"]).success();
    std::fs::write(w.laptop.join("big.bin"), crate::harness::Rng::new(9).bytes(3 << 20, true)).unwrap();
    w.git_remote(&w.remote_clone, &["config", "receive.maxInputSize", "200k"]);
    let everything = w.everything();
    w.run(&["1", "devbox"]).fails_with(4, "receive.maxInputSize (200 KiB)");
    assert_unchanged(&everything, &w.everything(), "a handoff over the host's ceiling");
    w.git_remote(&w.remote_clone, &["config", "--unset", "receive.maxInputSize"]);
    assert_eq!(w.run(&["1", "devbox", "--json"]).success().json()["epoch"], 1);
}

mod over_the_hosts_ceiling {
    #[test]
    fn over_openssh() {
        super::a_handoff_over_the_hosts_ceiling_says_so(super::Via::Openssh)
    }
    #[cfg(feature = "ssh2")]
    #[test]
    fn over_ssh2() {
        super::a_handoff_over_the_hosts_ceiling_says_so(super::Via::Ssh2)
    }
    #[test]
    fn over_local() {
        super::a_handoff_over_the_hosts_ceiling_says_so(super::Via::Local)
    }
}
