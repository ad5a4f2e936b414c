//! The `ssh2` transport and the `~/.ssh/config` options that decide whom
//! to trust: each is honoured as `ssh` honours it, or the connection is
//! refused naming the option and `--transport openssh`; none is skipped.

use std::io::Write;
use std::path::Path;

use crate::handoff::{Via, World};
use crate::harness::BIN;

/// `~/.ssh/config` as the harness wrote it, with `extra` at its end (for every host).
fn with_config(w: &World, original: &str, extra: &str) {
    let config = w.env.home.join(".ssh/config");
    std::fs::write(&config, format!("{original}\nHost *\n{extra}\n")).unwrap();
}

/// `ssh devbox true` with the same config file: what the system ssh makes of it.
fn system_ssh_connects(w: &World) -> bool {
    let config = w.env.home.join(".ssh/config");
    let out = w
        .env
        .command("ssh", w.env.root.path())
        .arg("-F")
        .arg(&config)
        .args(["-o", "BatchMode=yes", crate::sshd::HOST, "true"])
        .output()
        .unwrap();
    out.status.success()
}

fn ssh_keygen(w: &World, args: &[&str], dir: &Path) {
    let out = w.env.command("ssh-keygen", dir).args(args).output().unwrap();
    assert!(out.status.success(), "ssh-keygen {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn revoked_host_keys_and_every_trust_option_are_honoured_or_refused_by_name() {
    let w = World::new(Via::Ssh2);
    let sshd = w.sshd.as_ref().unwrap();
    let original = std::fs::read_to_string(w.env.home.join(".ssh/config")).unwrap();
    let host_key = sshd.dir().join("host_key.pub");
    let keys = w.env.path("keys");
    std::fs::create_dir_all(&keys).unwrap();
    w.run(&["host", "check", "devbox"]).success();

    // RevokedHostKeys: a plain list holding the host's key, and a KRL made by ssh-keygen -k.
    let plain = keys.join("revoked.pub");
    let mut list = std::fs::File::create(&plain).unwrap();
    writeln!(list, "# retired keys").unwrap();
    list.write_all(&std::fs::read(&host_key).unwrap()).unwrap();
    let krl = keys.join("revoked.krl");
    ssh_keygen(&w, &["-q", "-k", "-f", krl.to_str().unwrap(), host_key.to_str().unwrap()], &keys);
    for file in [&plain, &krl] {
        with_config(&w, &original, &format!("\tRevokedHostKeys {}", file.display()));
        assert!(!system_ssh_connects(&w), "ssh itself accepts the key revoked by {}", file.display());
        w.run(&["host", "check", "devbox"])
            .fails_with(5, "is revoked by RevokedHostKeys")
            .fails_with(5, &file.display().to_string());
    }
    // A KRL of another key: the host's key is fine.
    ssh_keygen(&w, &["-q", "-t", "ed25519", "-N", "", "-f", keys.join("other").to_str().unwrap()], &keys);
    let other_krl = keys.join("other.krl");
    ssh_keygen(&w, &["-q", "-k", "-f", other_krl.to_str().unwrap(), keys.join("other.pub").to_str().unwrap()], &keys);
    with_config(&w, &original, &format!("\tRevokedHostKeys {}", other_krl.display()));
    assert!(system_ssh_connects(&w));
    w.run(&["host", "check", "devbox"]).success();
    // Without ssh-keygen a KRL cannot be read: refused, by name, never skipped.
    let bin = w.env.path("bin-without-ssh-keygen");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["git", "sh"] {
        let found = ["/usr/bin", "/bin"].iter().map(|d| Path::new(d).join(tool)).find(|p| p.exists()).unwrap();
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    let mut cmd = w.env.command(BIN, &w.laptop);
    cmd.args(["host", "check", "devbox"]).env("PATH", &bin);
    crate::harness::Run::from(cmd.output().unwrap())
        .fails_with(4, "RevokedHostKeys")
        .fails_with(4, "could not be checked")
        .fails_with(4, "--transport openssh");
    // A revocation file that cannot be read refuses the connection, as for ssh.
    with_config(&w, &original, "\tRevokedHostKeys ~/.ssh/no-such-file");
    assert!(!system_ssh_connects(&w));
    w.run(&["host", "check", "devbox"]).fails_with(4, "RevokedHostKeys").fails_with(4, "cannot read");

    // Options the transport cannot follow: refused by name, pointing at the openssh transport.
    let cert = keys.join("cert.pub");
    std::fs::write(&cert, "").unwrap();
    for (line, name) in [
        ("\tKnownHostsCommand /bin/echo %H".to_owned(), "KnownHostsCommand"),
        ("\tVerifyHostKeyDNS yes".to_owned(), "VerifyHostKeyDNS"),
        ("\tUpdateHostKeys ask".to_owned(), "UpdateHostKeys"),
        (format!("\tCertificateFile {}", cert.display()), "CertificateFile"),
        ("\tProxyJump nowhere".to_owned(), "ProxyJump"),
        ("\tProxyCommand nc %h %p".to_owned(), "ProxyCommand"),
        // A block that cannot be evaluated here might apply: its trust options are refused too.
        (format!("Match exec true\n\tRevokedHostKeys {}", plain.display()), "RevokedHostKeys"),
    ] {
        with_config(&w, &original, &line);
        w.run(&["host", "check", "devbox"]).fails_with(4, name).fails_with(4, "--transport openssh");
    }

    // HostKeyAlgorithms is honoured: one the host has connects, one it lacks is refused
    // (by ssh too), and one the transport lacks is refused by name.
    with_config(&w, &original, "\tHostKeyAlgorithms ssh-ed25519");
    w.run(&["host", "check", "devbox"]).success();
    with_config(&w, &original, "\tHostKeyAlgorithms ecdsa-sha2-nistp256");
    assert!(!system_ssh_connects(&w));
    w.run(&["host", "check", "devbox"]).fails_with(5, "HostKeyAlgorithms here: ecdsa-sha2-nistp256");
    with_config(&w, &original, "\tHostKeyAlgorithms sk-ssh-ed25519@openssh.com");
    w.run(&["host", "check", "devbox"]).fails_with(4, "HostKeyAlgorithms").fails_with(4, "--transport openssh");
    // CASignatureAlgorithms restricts certificates, which this transport never trusts: it connects.
    with_config(&w, &original, "\tCASignatureAlgorithms ssh-ed25519\n\tVerifyHostKeyDNS no\n\tUpdateHostKeys no");
    w.run(&["host", "check", "devbox"]).success();
}
