//! What a snapshot carries beside its files, from a restricted key:
//! submodule records and `.gitmodules` urls, Git LFS lists and pointers,
//! worktree settings. Refused before anything is written (or, for LFS
//! pointers whose objects did not come, left as pointers: git-lfs never
//! reaches for the server a snapshot's `.lfsconfig` names).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use super::{assert_refused, digest, documented_forced_command, git_input, push, RawHelper};
use crate::handoff::{Via, World};
use crate::harness::{assert_unchanged, TestEnv};

/// A snapshot made on this computer as a hostile one would: `base`'s note
/// (edited by `edit`), its worktree tree with `files` added (mktree lines)
/// and its thread-data tree with `data` added (name, bytes). In refs/notes/crafted.
fn craft_carrying(
    env: &TestEnv,
    repo: &Path,
    base: &str,
    files: &str,
    data: &[(&str, &[u8])],
    edit: impl FnOnce(&mut Value),
) -> String {
    let home = &env.home;
    let git = |args: &[&str]| env.git_as(home, repo, args).trim().to_owned();
    let mut note: Value = serde_json::from_str(&git(&["notes", "--ref", "codex-handoff", "show", base])).unwrap();
    let empty = git_input(env, home, repo, &["hash-object", "-w", "--stdin"], b"");
    let mut entries = format!("100644 blob {empty}\ttranscript\n");
    for (name, bytes) in data {
        let blob = git_input(env, home, repo, &["hash-object", "-w", "--stdin"], bytes);
        entries += &format!("100644 blob {blob}\t{name}\n");
    }
    let tree = git_input(env, home, repo, &["mktree"], entries.as_bytes());
    let old_data = note["data_commit"].as_str().unwrap().to_owned();
    let data_commit = git(&["commit-tree", &tree, "-p", &old_data, "-m", "thread data"]);
    let mut listing = env.git_as(home, repo, &["ls-tree", &format!("{base}^{{tree}}")]);
    listing += files;
    let files_tree = git_input(env, home, repo, &["mktree"], listing.as_bytes());
    let mut args = vec!["commit-tree".to_owned(), files_tree];
    for parent in note["head"].as_str().into_iter().chain(note["index_commit"].as_str()) {
        args.extend(["-p".to_owned(), parent.to_owned()]);
    }
    args.extend(["-p".to_owned(), data_commit.clone(), "-m".to_owned(), "snapshot".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let snapshot = git(&args);
    use sha2::Digest;
    note["data_commit"] = json!(data_commit);
    note["transcript"]["sha256"] = json!(format!("{:x}", sha2::Sha256::digest(b"")));
    note["transcript"]["size"] = json!(0);
    edit(&mut note);
    let text = serde_json::to_vec_pretty(&note).unwrap();
    git_input(env, home, repo, &["notes", "--ref", "refs/notes/crafted", "add", "-f", "-F", "-", &snapshot], &text);
    snapshot
}

/// A blob in `repo` holding `bytes`.
fn blob(env: &TestEnv, repo: &Path, bytes: &[u8]) -> String {
    git_input(env, &env.home, repo, &["hash-object", "-w", "--stdin"], bytes)
}

struct Attack {
    w: World,
    helper: RawHelper,
    repo: String,
    uuid: String,
    base: String,
    host_id: String,
}

impl Attack {
    fn new(setup: impl FnOnce(&World)) -> Attack {
        let w = World::new(Via::Openssh);
        setup(&w);
        w.sshd.as_ref().unwrap().authorize(&documented_forced_command());
        let thread = w.run(&["thread", "new", "--branch", "feat/carried", "--json"]).success().json();
        let uuid = thread["uuid"].as_str().unwrap().to_owned();
        let base = thread["snapshot"].as_str().unwrap().to_owned();
        let mut helper = RawHelper::connect(&w);
        let projects = helper.call("projects", json!({}));
        let fingerprint = projects["result"]["projects"][0]["fingerprint"].as_str().unwrap().to_owned();
        let found = helper.call("find_project", json!({ "fingerprint": fingerprint, "subdirectory": "" }));
        let repo = found["result"]["repo"].as_str().unwrap().to_owned();
        assert_eq!(helper.call("begin", json!({ "repo": repo, "uuid": uuid }))["ok"], true);
        let host_id = helper.machine_id.clone();
        Attack { w, helper, repo, uuid, base, host_id }
    }

    /// Send a snapshot carrying `files` and `data` over the key and ask the host to take it.
    fn receive(&mut self, files: &str, data: &[(&str, &[u8])]) -> Value {
        let host_id = self.host_id.clone();
        let snapshot = craft_carrying(&self.w.env, &self.w.laptop, &self.base, files, data, |note| {
            note["epoch"] = json!(1);
            note["owner_machine"] = json!("devbox");
            note["owner_machine_id"] = json!(host_id);
        });
        let refspecs = vec![
            format!("+{snapshot}:refs/codex-handoff/incoming/{}/snapshot", self.uuid),
            format!("+refs/notes/crafted:refs/codex-handoff/incoming/{}/notes", self.uuid),
        ];
        push(&self.w, &self.repo, &refspecs).unwrap();
        self.helper.call("receive", json!({ "repo": self.repo, "uuid": self.uuid, "snapshot": snapshot }))
    }
}

#[test]
fn hostile_submodules_lfs_lists_and_settings_are_refused_before_anything_is_written() {
    let mut a = Attack::new(|_| {});
    let (env, laptop) = (&a.w.env, a.w.laptop.clone());
    let commit = env.git(&laptop, &["rev-parse", "HEAD"]).trim().to_owned();
    let gitlink = format!("160000 commit {commit}\tsub\n");
    let modules = |url: &str| {
        let text = format!("[submodule \"sub\"]\n\tpath = sub\n\turl = {url}\n");
        format!("100644 blob {}\t.gitmodules\n", blob(env, &laptop, text.as_bytes()))
    };
    let record = |path: &str, name: &str| {
        let json = json!({ "submodules": [{ "path": path, "name": name, "snapshot": commit }] });
        serde_json::to_vec(&json).unwrap()
    };
    let marker = env.path("pwned");
    let settings = |key: &str, value: &str| serde_json::to_vec(&json!({ "settings": { key: value } })).unwrap();
    // The snapshot's extra files (mktree lines), its extra data, and the refusal: exit code, code, words.
    type Case<'a> = (String, Vec<(&'a str, Vec<u8>)>, u64, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (gitlink.clone(), vec![("worktree.json", record("../escape", "sub"))], 1, "bad_snapshot", "../escape"),
        (gitlink.clone(), vec![("worktree.json", record("sub/.GIT/hooks", "sub"))], 1, "bad_snapshot", ".GIT"),
        (
            gitlink.clone(),
            vec![("worktree.json", record("sub", "../../../../outside"))],
            4,
            "submodule_name",
            "outside",
        ),
        (
            format!("{gitlink}{}", modules(&format!("ext::sh -c touch% {}", marker.display()))),
            vec![("worktree.json", record("sub", "sub"))],
            4,
            "submodule_url",
            "ext::",
        ),
        (
            format!("{gitlink}{}", modules(&format!("-oProxyCommand=touch {}", marker.display()))),
            vec![("worktree.json", record("sub", "sub"))],
            4,
            "submodule_url",
            "-oProxyCommand",
        ),
        (String::new(), vec![("lfs-objects", b"../../../../etc/passwd 12\n".to_vec())], 1, "bad_snapshot", "LFS"),
        (String::new(), vec![("lfs-pointers", b"x/.g\xe2\x80\x8cit/hooks/post-checkout\0".to_vec())], 4, "", "LFS"),
        (
            String::new(),
            vec![("worktree.json", settings("core.fsmonitor", "touch pwned"))],
            1,
            "bad_snapshot",
            "core.fsmonitor",
        ),
        (
            String::new(),
            vec![("worktree.json", settings("core.autocrlf", "true\n[core]\nhooksPath=/tmp"))],
            1,
            "bad_snapshot",
            "core.autocrlf",
        ),
    ];
    let before = digest(&a.w, &[]);
    for (files, data, exit_code, code, says) in cases {
        let data: Vec<(&str, &[u8])> = data.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        let answer = a.receive(&files, &data);
        assert_eq!(answer["ok"], false, "{says}: {answer}");
        assert_eq!(answer["error"]["exit_code"], exit_code, "{says}: {answer}");
        if !code.is_empty() {
            assert_refused(&answer, exit_code, code);
        }
        assert!(answer["error"]["message"].as_str().unwrap().contains(says), "{says}: {answer}");
        assert_unchanged(&before, &digest(&a.w, &[]), says);
        assert!(!marker.exists());
    }
    let config = a.w.git_remote(&a.w.remote_clone, &["config", "--list", "--show-origin"]);
    assert!(!config.contains("ext::") && !config.contains("ProxyCommand") && !config.contains("fsmonitor"), "{config}");
}

/// A snapshot whose `.lfsconfig` names a server (here: a port on loopback
/// that notes who calls), with a pointer whose object did not come: the
/// file stays the pointer (which the verification then refuses), and
/// nobody calls the server.
#[test]
fn an_arriving_snapshot_never_sends_git_lfs_to_a_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://127.0.0.1:{}/lfs", listener.local_addr().unwrap().port());
    let mut a = Attack::new(|w| {
        w.git_remote(&w.remote_home, &["lfs", "install", "--skip-repo"]);
    });
    let (env, laptop) = (&a.w.env, a.w.laptop.clone());
    let oid = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";
    let pointer = format!("version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize 12345\n");
    let mut files = String::new();
    for (name, bytes) in [
        (".gitattributes", "*.bin filter=lfs diff=lfs merge=lfs -text\n".to_owned()),
        (".lfsconfig", format!("[lfs]\n\turl = {url}\n")),
        ("asset.bin", pointer.clone()),
    ] {
        files += &format!("100644 blob {}\t{name}\n", blob(env, &laptop, bytes.as_bytes()));
    }
    // git-lfs, run as the filter of the arriving files, sets itself up in the clone (its hooks, a
    // config line, its storage's directories) as it does in any repository it works in.
    let lfs_setup = ["config", "hooks", "lfs"].map(|p| PathBuf::from("devbox-clone/.git").join(p));
    let before = digest(&a.w, &lfs_setup);
    let answer = a.receive(&files, &[]);
    // The file stays a pointer, which the snapshot did not say: refused, the new worktree removed.
    assert_refused(&answer, 1, "verify_failed");
    assert!(answer["error"]["message"].as_str().unwrap().contains("left as pointers include asset.bin"), "{answer}");
    assert_unchanged(&before, &digest(&a.w, &lfs_setup), "a snapshot naming an LFS server");
    let config = a.w.git_remote(&a.w.remote_clone, &["config", "--list"]);
    assert!(!config.contains(&url), "{config}");
    let stored = crate::harness::files(&a.w.remote_clone.join(".git/lfs/objects"));
    assert!(stored.iter().all(|(_, f)| !matches!(f, crate::harness::FileFact::File { .. })), "{stored:?}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(listener.accept().is_err(), "git-lfs called the server the snapshot named");
}
