//! Hosts as the Codex App finds them: the concrete `Host` aliases of
//! `~/.ssh/config` and the files it includes are hosts without `host add`;
//! pattern-only entries are not; `destinations` probes them all at once and
//! a host that never answers does not hold up the list.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::handoff::{every_kind_of_change, World};
use crate::harness::BIN;
use crate::sshd::Sshd;

/// The dev box behind a real sshd whose sessions find the helper on PATH,
/// known to this computer only through `~/.ssh/config`.
fn world_from_ssh_config() -> World {
    let (env, laptop, remote_home, remote_clone) = World::fixture(|_, _| {});
    let bin_dir = Path::new(BIN).parent().unwrap().display().to_string();
    let sshd = Sshd::start_with_env(&env, &remote_home, &[("PATH", &format!("{bin_dir}:/usr/bin:/bin"))]);
    sshd.install_user_config(&env);
    World { env, laptop, remote_home: sshd.remote_home().to_owned(), remote_clone, sshd: Some(sshd) }
}

/// `~/.ssh/config` as a user with several hosts writes it: an Include of a
/// folder (one alias per file, relative to ~/.ssh), a pattern-only entry,
/// then the harness's `devbox` and `stranger`.
fn write_user_config(w: &World, dead_port: u16) {
    let sshd = w.sshd.as_ref().unwrap();
    let ssh_dir = w.env.home.join(".ssh");
    let harness = std::fs::read_to_string(ssh_dir.join("config")).unwrap();
    std::fs::create_dir_all(ssh_dir.join("config.d")).unwrap();
    std::fs::write(ssh_dir.join("config.d/box.conf"), sshd.client_block("included-box")).unwrap();
    std::fs::write(
        ssh_dir.join("config.d/dead.conf"),
        sshd.client_block("deadbox").replace(&format!("Port {}", sshd.port()), &format!("Port {dead_port}")),
    )
    .unwrap();
    let config = format!(
        "Include config.d/*.conf\n\nHost *.internal !db.internal\n\tUser nobody\n\tConnectTimeout 2\n\n{harness}"
    );
    std::fs::write(ssh_dir.join("config"), config).unwrap();
}

fn host_names(list: &serde_json::Value) -> Vec<(String, bool, String)> {
    list["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap().to_owned(),
                h["discovered"] == true,
                h["transport"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn hosts_of_ssh_config_take_threads_and_give_them_back() {
    let w = world_from_ssh_config();
    // Accepts connections (the kernel completes them) and never says a word.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    write_user_config(&w, dead.local_addr().unwrap().port());

    // Listed as discovered, in file order, the Include first; no pattern, no negation.
    let list = w.run(&["host", "list", "--json"]).success().json();
    let names = host_names(&list);
    let expected: Vec<(String, bool, String)> = ["included-box", "deadbox", "devbox", "stranger"]
        .iter()
        .map(|n| (n.to_string(), true, "openssh".to_owned()))
        .collect();
    assert_eq!(names, expected, "{list}");
    let human = w.run(&["host", "list"]).success().stdout.clone();
    assert!(human.contains("devbox") && human.contains("(discovered in ~/.ssh/config)"), "{human}");
    assert!(!human.contains("internal"), "{human}");

    // A handoff and a hand-back to an alias found only in ~/.ssh/config, one connection each.
    w.run(&["thread", "new", "--branch", "feat/discovered"]).success();
    every_kind_of_change(&w.env, &w.laptop);
    let before = w.env.carried_facts(&w.laptop);
    let connections = w.connections().unwrap();
    let out = w.run(&["1", "devbox", "--yes", "--json"]).success().json();
    assert_eq!(w.connections().unwrap(), connections + 1, "{}", w.sshd.as_ref().unwrap().log());
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_eq!(w.env.carried_facts(&remote_wt), before);
    let shown = w.run(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!(shown["owner"], "devbox");
    crate::harness::write(&remote_wt, b"from-devbox.txt", b"made there\n");
    let remote_state = w.env.carried_facts(&remote_wt);
    w.run(&["1", "local", "--json"]).success();
    assert_eq!(w.connections().unwrap(), connections + 2);
    assert_eq!(w.env.carried_facts(&w.laptop), remote_state);

    // The alias of an included file: out and back.
    let out = w.run(&["1", "included-box", "--json"]).success().json();
    assert_eq!(out["host"], "included-box");
    assert_eq!(w.run(&["thread", "show", "1", "--json"]).success().json()["owner"], "included-box");
    w.run(&["1", "local"]).success();

    // Patterns are no hosts.
    w.run(&["1", "db.internal"]).fails_with(3, "no host named \"db.internal\"");
    w.run(&["1", "x.internal"]).fails_with(3, "as `Host x.internal` in ~/.ssh/config");

    // Every host probed at once: the dead one and the unknown key are listed
    // apart, with the reason, and do not hold up the live ones.
    let started = Instant::now();
    let found = w.run(&["destinations", "--json"]).success().json();
    let took = started.elapsed();
    let available: BTreeSet<&str> =
        found["destinations"].as_array().unwrap().iter().map(|r| r["host"].as_str().unwrap()).collect();
    assert_eq!(available, BTreeSet::from(["devbox", "included-box"]), "{found}");
    for row in found["destinations"].as_array().unwrap() {
        assert_eq!(row["project"].as_str().unwrap(), w.remote_clone.to_str().unwrap());
        assert!(row["round_trip_ms"].as_f64().unwrap() > 0.0, "{row}");
    }
    let unreachable: BTreeSet<(&str, &str)> = found["unreachable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["host"].as_str().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(unreachable, BTreeSet::from([("deadbox", "unreachable"), ("stranger", "unreachable")]), "{found}");
    // Bounded by the probe's connect timeout (5 s), not by the dead host.
    assert!(took < Duration::from_secs(30), "destinations took {took:?}");
    let human = w.run(&["destinations"]).success().stdout.clone();
    assert!(human.contains("Unreachable:") && human.contains("deadbox"), "{human}");
    assert!(human.contains(" ms)"), "{human}");

    // A configured host of the same name wins, and is listed once.
    w.run(&["host", "add", "devbox", "devbox", "--transport", "ssh2", "--helper", BIN]).success();
    let names = host_names(&w.run(&["host", "list", "--json"]).success().json());
    assert_eq!(names.iter().filter(|(n, _, _)| n == "devbox").count(), 1);
    assert_eq!(names[0], ("devbox".to_owned(), false, "ssh2".to_owned()));
    w.run(&["host", "remove", "stranger"]).fails_with(3, "comes from ~/.ssh/config");
}

/// Where no `ssh` is on PATH, the hosts of ~/.ssh/config go over ssh2.
#[cfg(feature = "ssh2")]
#[test]
fn without_an_ssh_binary_discovered_hosts_go_over_ssh2() {
    let w = world_from_ssh_config();
    // A PATH with git and this binary only.
    let bin = w.env.path("bin-without-ssh");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink("/usr/bin/git", bin.join("git")).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("git-codex-handoff")).unwrap();
    let run = |args: &[&str]| -> crate::harness::Run {
        let mut cmd = w.env.command("git", &w.laptop);
        cmd.env("PATH", &bin).env_remove("GIT_SSH_COMMAND").arg("codex-handoff").args(args);
        crate::harness::Run::from(cmd.output().unwrap())
    };
    let list = run(&["host", "list", "--json"]).success().json();
    assert!(host_names(&list).contains(&("devbox".to_owned(), true, "ssh2".to_owned())), "{list}");
    let check = run(&["host", "check", "devbox", "--json"]).success().json();
    assert_eq!((check["transport"].as_str(), check["discovered"].as_bool()), (Some("ssh2"), Some(true)));

    w.run(&["thread", "new", "--branch", "feat/no-ssh"]).success();
    every_kind_of_change(&w.env, &w.laptop);
    let before = w.env.carried_facts(&w.laptop);
    let connections = w.connections().unwrap();
    let out = run(&["1", "devbox", "--json"]).success().json();
    assert_eq!(w.connections().unwrap(), connections + 1);
    assert_eq!(w.env.carried_facts(&PathBuf::from(out["owner_worktree"].as_str().unwrap())), before);
    run(&["1", "local", "--json"]).success();
    assert_eq!(w.connections().unwrap(), connections + 2);
    assert_eq!(w.env.carried_facts(&w.laptop), before);
}
