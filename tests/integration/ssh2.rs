//! What is particular to the `ssh2` transport: the host key checked
//! strictly against known_hosts (hashed names too), ssh-agent and key files,
//! and settings of ~/.ssh/config it cannot follow refused with a hint.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::handoff::{Via, World};
use crate::harness::{Run, BIN};

/// `ssh-keygen -lf` of the server's host key: the fingerprint as OpenSSH shows it.
fn host_fingerprint(w: &World) -> String {
    let out = Command::new("ssh-keygen").arg("-lf").arg(w.sshd.as_ref().unwrap().dir().join("host_key.pub")).output();
    let text = String::from_utf8(out.unwrap().stdout).unwrap();
    text.split_whitespace().nth(1).unwrap().to_owned()
}

#[test]
fn host_keys_are_checked_strictly_and_reported() {
    let w = World::new(Via::Ssh2);
    let sshd = w.sshd.as_ref().unwrap();
    let fingerprint = host_fingerprint(&w);
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");

    // `host add` and `host check` say how the host was reached.
    let added = w.run(&["host", "add", "devbox2", "devbox", "--transport", "ssh2", "--helper", BIN, "--json"]);
    let added = added.success().json();
    assert_eq!(added["transport"], "ssh2");
    assert_eq!(added["reached"]["host_key_algorithm"], "ssh-ed25519");
    assert_eq!(added["reached"]["host_key_fingerprint"], fingerprint.as_str());
    let check = w.run(&["host", "check", "devbox", "--json"]).success().json();
    assert_eq!(
        (check["transport"].as_str(), check["host_key_algorithm"].as_str()),
        (Some("ssh2"), Some("ssh-ed25519"))
    );
    assert!(check["auth"].as_str().unwrap().starts_with("identity file "), "{check}");
    let human = w.run(&["host", "check", "devbox"]).success().stdout.clone();
    assert!(human.contains("transport ssh2, host key ssh-ed25519 SHA256:"), "{human}");

    // An unknown key: refused with exit 5, the fingerprint and the line to add; nothing changed.
    w.run(&["thread", "new", "--branch", "feat/keys"]).success();
    let connections = w.connections().unwrap();
    w.run(&["host", "add", "stranger", "stranger", "--transport", "ssh2", "--helper", BIN]).success();
    let before = w.everything();
    let refused = w.run(&["1", "stranger"]);
    refused.fails_with(5, "is not known").fails_with(5, &fingerprint);
    refused.fails_with(5, &format!("[127.0.0.1]:{} ssh-ed25519 AAAA", sshd.port()));
    let json = w.run(&["1", "stranger", "--json"]).json();
    assert_eq!(json["error"]["code"], "host_key_unknown");
    assert_eq!(w.everything(), before);
    assert_eq!(w.connections().unwrap(), connections, "no login with an unknown host key");

    // A changed key: another ed25519 key recorded for the host.
    let known_hosts = sshd.dir().join("known_hosts");
    let original = std::fs::read_to_string(&known_hosts).unwrap();
    let other = w.env.path("other_key");
    let made = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&other).status().unwrap();
    assert!(made.success());
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let other_key: Vec<&str> = other_pub.split_whitespace().take(2).collect();
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{} {}\n", sshd.port(), other_key.join(" "))).unwrap();
    w.run(&["host", "check", "devbox"]).fails_with(5, "has CHANGED").fails_with(5, &fingerprint);

    // A revoked key is refused even where it is also listed.
    std::fs::write(&known_hosts, format!("{original}@revoked * {}\n", original.split_once(' ').unwrap().1)).unwrap();
    w.run(&["host", "check", "devbox"]).fails_with(5, "is revoked");

    // Hashed names (`ssh-keygen -H`) match, and carry a whole handoff.
    std::fs::write(&known_hosts, &original).unwrap();
    let hashed = Command::new("ssh-keygen").arg("-H").arg("-f").arg(&known_hosts).output().unwrap();
    assert!(hashed.status.success(), "{}", String::from_utf8_lossy(&hashed.stderr));
    assert!(std::fs::read_to_string(&known_hosts).unwrap().starts_with("|1|"));
    let connections = w.connections().unwrap();
    w.run(&["1", "devbox", "--json"]).success();
    assert_eq!(w.connections().unwrap(), connections + 1);
}

#[test]
fn settings_ssh2_cannot_follow_are_refused_with_a_hint() {
    let w = World::new(Via::Ssh2);
    let config = w.env.home.join(".ssh/config");
    let text = std::fs::read_to_string(&config).unwrap();
    let sshd = w.sshd.as_ref().unwrap();
    let extra = format!(
        "{}\tProxyJump devbox\n{}\tCertificateFile ~/.ssh/id_ed25519-cert.pub\n",
        sshd.client_block("jumpy"),
        sshd.client_block("certy")
    );
    std::fs::write(&config, format!("{text}{extra}")).unwrap();
    for (alias, keyword) in [("jumpy", "ProxyJump devbox"), ("certy", "CertificateFile")] {
        w.run(&["host", "add", alias, alias, "--transport", "ssh2"])
            .fails_with(4, keyword)
            .fails_with(4, "--transport openssh");
    }
    let list = w.run(&["host", "list", "--json"]).success().json();
    let configured: Vec<&str> = list["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["discovered"] == false)
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(configured, vec!["devbox"], "nothing was added");
    // The openssh transport takes the same alias.
    w.run(&["host", "add", "jumpy", "jumpy", "--transport", "openssh"]).success();
}

/// A real ssh-agent on a socket of its own; stopped when dropped.
struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent").arg("-D").arg("-a").arg(&socket).stdout(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "ssh-agent did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent { child, socket }
    }

    fn add(&self, key: &Path) {
        let out = Command::new("ssh-add").arg(key).env("SSH_AUTH_SOCK", &self.socket).output().unwrap();
        assert!(out.status.success(), "ssh-add: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ssh_agent_first_then_key_files() {
    let w = World::new(Via::Ssh2);
    let key = w.sshd.as_ref().unwrap().dir().join("user_key");
    let agent = Agent::start(w.env.root.path());
    agent.add(&key);
    // Only the agent holds the private key now (the .pub stays: IdentitiesOnly picks the agent key by it).
    let aside = w.env.path("user_key.aside");
    std::fs::rename(&key, &aside).unwrap();
    let with_agent = |args: &[&str]| -> Run {
        let mut cmd = w.env.command("git", &w.laptop);
        cmd.env("SSH_AUTH_SOCK", &agent.socket).arg("codex-handoff").args(args);
        Run::from(cmd.output().unwrap())
    };
    let check = with_agent(&["host", "check", "devbox", "--json"]).success().json();
    assert_eq!(check["auth"], "ssh-agent key codex-handoff-test", "{check}");

    w.run(&["thread", "new", "--branch", "feat/agent"]).success();
    crate::harness::write(&w.laptop, b"a.txt", b"through the agent\n");
    let connections = w.connections().unwrap();
    let out = with_agent(&["1", "devbox", "--json"]).success().json();
    assert_eq!(w.connections().unwrap(), connections + 1);
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_eq!(std::fs::read(remote_wt.join("a.txt")).unwrap(), b"through the agent\n");

    // Without the agent and without the key file: nothing to log in with.
    w.run(&["host", "check", "devbox"]).fails_with(5, "no key was accepted");
    // With the key file back, it is used when the agent has nothing.
    std::fs::rename(&aside, &key).unwrap();
    let check = w.run(&["host", "check", "devbox", "--json"]).success().json();
    assert_eq!(check["auth"], format!("identity file {}", key.display()));
    with_agent(&["1", "local"]).success();
}
