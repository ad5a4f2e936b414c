//! The helper is found where people install it: `cargo install` puts it in
//! `~/.cargo/bin`, which rustup adds to PATH in `~/.profile`, read by login
//! shells only, while ssh runs commands through a non-login shell with a
//! minimal PATH. The first handoff asks the login shell on the same
//! connection, says where it found the helper and remembers the path; later
//! handoffs start it directly. The helper learns CODEX_HOME the same way, so
//! a rollout lands where the host's Codex looks.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::codex::{rollouts_of, write_rollout, SESSION};
use crate::handoff::{Via, World};
use crate::harness::BIN;
use crate::sshd::Sshd;

/// What sshd gives a session when the system's default is minimal.
const MINIMAL_PATH: &str = "/usr/bin:/bin";

fn executable(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A stand-in for the Codex CLI that says which version it is.
fn codex_stand_in(path: &Path) {
    executable(path, "#!/bin/sh\necho 'codex-cli 9.9.9 (stand-in)'\n");
}

/// The helper where `cargo install` puts it.
fn install_helper(remote_home: &Path) -> PathBuf {
    let path = remote_home.join(".cargo/bin/git-codex-handoff");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _ = fs::remove_file(&path);
    std::os::unix::fs::symlink(BIN, &path).unwrap();
    path
}

/// The fixture over an sshd already started for its remote HOME, reached
/// `via` a transport; the host is added with no `--helper`, as a new user would.
fn world_over(fixture: (crate::harness::TestEnv, PathBuf, PathBuf, PathBuf), sshd: Sshd, via: Via) -> World {
    let (env, laptop, remote_home, remote_clone) = fixture;
    sshd.install_user_config(&env);
    env.run(&laptop, &["host", "add", "devbox", "devbox", "--transport", via.transport()]).success();
    World { env, laptop, remote_home, remote_clone, sshd: Some(sshd) }
}

impl World {
    /// The `helper` setting of `devbox` on this computer.
    fn helper_setting(&self) -> String {
        self.env.git(&self.laptop, &["config", "--global", "codex-handoff.devbox.helper"]).trim().to_owned()
    }

    /// Login shells sshd started so far (sessions without a command).
    fn login_sessions(&self) -> usize {
        self.sshd.as_ref().unwrap().log().lines().filter(|l| l.contains("Starting session: shell")).count()
    }

    /// A thread linked to a Codex thread, its rollout in this computer's ~/.codex.
    fn codex_thread(&self, branch: &str) {
        write_rollout(&self.env.home.join(".codex"), &self.laptop, 3);
        self.run(&["thread", "new", "--codex-session", SESSION, "--branch", branch]).success();
    }
}

#[test]
fn a_helper_in_cargo_bin_is_found_through_the_login_shell_and_remembered() {
    helper_found_through_the_login_shell(Via::Openssh)
}

/// The same over ssh2: the login shell is a shell channel on the session.
#[cfg(feature = "ssh2")]
#[test]
fn a_helper_in_cargo_bin_is_found_through_the_login_shell_over_ssh2() {
    helper_found_through_the_login_shell(Via::Ssh2)
}

fn helper_found_through_the_login_shell(via: Via) {
    let fixture = World::fixture(|_, _| {});
    let sshd = Sshd::start_with_env(&fixture.0, &fixture.2, &[("PATH", MINIMAL_PATH)]);
    let w = world_over(fixture, sshd, via);
    let home = &w.remote_home;
    // As rustup sets it up: ~/.profile sources ~/.cargo/env. Codex comes from an npm prefix.
    fs::write(
        home.join(".profile"),
        "echo 'Welcome to the dev box'\necho read >> \"$HOME/profile-reads\"\n. \"$HOME/.cargo/env\"\n\
         export PATH=\"$HOME/.npm-global/bin:$PATH\"\nexport CODEX_HOME=\"$HOME/codex-from-profile\"\n",
    )
    .unwrap();
    fs::create_dir_all(home.join(".cargo")).unwrap();
    fs::write(
        home.join(".cargo/env"),
        "case \":${PATH}:\" in\n  *:\"$HOME/.cargo/bin\":*) ;;\n  *) export PATH=\"$HOME/.cargo/bin:$PATH\" ;;\nesac\n",
    )
    .unwrap();
    codex_stand_in(&home.join(".npm-global/bin/codex"));
    w.codex_thread("feat/found");

    // An old helper there (it speaks protocol 0): exit 6, both versions, how to upgrade; nothing remembered.
    let old = home.join(".cargo/bin/git-codex-handoff");
    executable(
        &old,
        "#!/bin/sh\nread -r line\necho '{\"ok\":true,\"result\":{\"protocol\":0,\"version\":\"0.0.1\",\"machine\":\"devbox\"}}'\n",
    );
    // The login shell leaves a trace of its reading; everything else stays as it was.
    let everything = || {
        let _ = fs::remove_file(home.join("profile-reads"));
        w.everything()
    };
    let before = everything();
    w.run(&["1", "devbox"])
        .fails_with(6, "the helper on devbox at ~/.cargo/bin/git-codex-handoff is version 0.0.1 and speaks protocol 0")
        .fails_with(6, &format!("this computer's git-codex-handoff {} speaks protocol", env!("CARGO_PKG_VERSION")))
        .fails_with(6, "upgrade the helper on devbox to version");
    assert_eq!(everything(), before);
    assert_eq!(w.helper_setting(), "git-codex-handoff", "an incompatible helper is not remembered");

    // The real one: found through the login shell on the same connection, used, and remembered.
    let installed = install_helper(home);
    let connections = w.connections().unwrap();
    let out = w.run(&["1", "devbox", "--json"]);
    assert!(
        out.stderr.contains(
            "found the helper at ~/.cargo/bin/git-codex-handoff through the login shell; remembered for devbox"
        ),
        "{}",
        out.stderr
    );
    let remote_wt = PathBuf::from(out.success().json()["owner_worktree"].as_str().unwrap());
    assert_eq!(w.connections().unwrap(), connections + 1, "one connection: {}", w.sshd.as_ref().unwrap().log());
    assert_eq!(w.login_sessions(), 2, "each of the two handoffs asked the login shell once");
    assert_eq!(w.helper_setting(), installed.to_str().unwrap());
    assert!(remote_wt.join("a.txt").exists());
    // The rollout lands where the host's Codex looks: CODEX_HOME from ~/.profile.
    assert_eq!(rollouts_of(&home.join("codex-from-profile"), SESSION).len(), 1);
    assert!(rollouts_of(&home.join(".codex"), SESSION).is_empty());

    // Later handoffs start it directly: no login shell, one connection, nothing said.
    let connections = w.connections().unwrap();
    let out = w.run(&["1", "local"]);
    out.success();
    assert!(!out.stderr.contains("found the helper"), "{}", out.stderr);
    assert_eq!(w.connections().unwrap(), connections + 1);
    assert_eq!(w.login_sessions(), 2, "the remembered path needs no lookup");
    // The connection that outlived the helper's session for the lookup is closed with the handoff.
    w.sshd.as_ref().unwrap().assert_all_closed();

    // host check: the helper's path and how it was found, Codex and CODEX_HOME as the login shell sets them.
    let check = w.run(&["host", "check", "devbox", "--json"]).success().json();
    assert_eq!(check["helper_path"], installed.to_str().unwrap());
    assert_eq!(check["helper_found"], "setting");
    assert_eq!(check["helper_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(check["protocol"], 4);
    assert_eq!(check["codex_home"], home.join("codex-from-profile").to_str().unwrap());
    assert_eq!(check["codex_home_from"], "login_shell");
    assert_eq!(check["codex"]["path"], home.join(".npm-global/bin/codex").to_str().unwrap());
    assert_eq!(check["codex"]["found"], "login_shell");
    assert_eq!(check["codex"]["version"], "codex-cli 9.9.9 (stand-in)");
    let text = w.run(&["host", "check", "devbox"]).success().stdout.clone();
    for line in [
        format!("helper      {} (the host's helper setting)", installed.display()),
        format!(
            "Codex CLI   codex-cli 9.9.9 (stand-in) at {} (through the login shell)",
            home.join(".npm-global/bin/codex").display()
        ),
        format!("CODEX_HOME  {} (set by the login shell)", home.join("codex-from-profile").display()),
    ] {
        assert!(text.contains(&line), "{line:?} in:\n{text}");
    }

    // A restricted key's helper runs exactly what authorized_keys says: no login shell, no CODEX_HOME from it.
    let _ = fs::remove_file(home.join("profile-reads"));
    w.sshd.as_ref().unwrap().restrict_to(&format!("{} remote serve --restricted", installed.display()));
    let check = w.run(&["host", "check", "devbox", "--json"]).success().json();
    assert_eq!((check["codex_home_from"].as_str(), check["codex"].is_null()), (Some("default"), true), "{check}");
    assert!(!home.join("profile-reads").exists(), "a login shell ran under a restricted key");

    // A restricted key is never asked where the helper is: its forced command runs whatever the session asks for.
    w.sshd.as_ref().unwrap().restrict_to("/nonexistent/git-codex-handoff remote serve --restricted");
    let before = everything();
    w.run(&["1", "devbox"]).fails_with(6, "not installed").fails_with(6, "the login shell did not answer");
    assert!(!home.join("profile-reads").exists(), "a login shell ran under a restricted key");
    assert_eq!(w.helper_setting(), installed.to_str().unwrap());
    assert_eq!(w.everything(), before);
}

#[test]
fn a_csh_login_shell_finds_the_helper_too() {
    let fixture = World::fixture(|_, _| {});
    let sshd = Sshd::start_with_login_shell(&fixture.0, &fixture.2, &[("PATH", MINIMAL_PATH)], "/usr/bin/tcsh");
    let w = world_over(fixture, sshd, Via::Openssh);
    let home = &w.remote_home;
    fs::write(
        home.join(".login"),
        "setenv PATH \"$HOME/.cargo/bin:$PATH\"\nsetenv CODEX_HOME \"$HOME/codex-from-login\"\n",
    )
    .unwrap();
    let installed = install_helper(home);
    w.codex_thread("feat/csh");

    let out = w.run(&["1", "devbox", "--json"]);
    assert!(
        out.stderr.contains(
            "found the helper at ~/.cargo/bin/git-codex-handoff through the login shell; remembered for devbox"
        ),
        "{}",
        out.stderr
    );
    out.success();
    assert_eq!(w.connections(), Some(1));
    assert_eq!(w.helper_setting(), installed.to_str().unwrap());
    assert_eq!(rollouts_of(&home.join("codex-from-login"), SESSION).len(), 1, "CODEX_HOME from ~/.login");
    w.run(&["1", "local"]).success();
    assert_eq!((w.connections(), w.login_sessions()), (Some(2), 1), "the second handoff started the helper directly");

    // host check looks the same way when the setting is gone, and says so.
    w.env.git(&w.laptop, &["config", "--global", "--unset", "codex-handoff.devbox.helper"]);
    let out = w.run(&["host", "check", "devbox", "--json"]);
    assert!(out.stderr.contains("found the helper at ~/.cargo/bin/git-codex-handoff through the login shell"));
    let check = out.success().json();
    assert_eq!(
        (check["helper_path"].as_str(), check["helper_found"].as_str()),
        (installed.to_str(), Some("login_shell"))
    );
    assert_eq!(check["login_shell"], "/usr/bin/tcsh");
    assert_eq!(check["codex_home"], home.join("codex-from-login").to_str().unwrap());
    assert_eq!(check["codex_home_from"], "login_shell");
    assert_eq!(w.helper_setting(), installed.to_str().unwrap());
}

#[test]
fn every_login_shell_is_asked_the_same_question() {
    let w = World::new(Via::Local);
    let home = &w.remote_home;
    // Each shell reads its own login files; each says where Codex is and sets its own CODEX_HOME.
    fs::write(
        home.join(".profile"),
        "echo 'Welcome'\nexport PATH=\"$HOME/.npm-global/bin:$PATH\"\nexport CODEX_HOME=\"$HOME/codex-sh\"\n",
    )
    .unwrap();
    fs::write(
        home.join(".zprofile"),
        "export PATH=\"$HOME/.npm-global/bin:$PATH\"\nexport CODEX_HOME=\"$HOME/codex-zsh\"\n",
    )
    .unwrap();
    fs::create_dir_all(home.join(".config/fish")).unwrap();
    fs::write(
        home.join(".config/fish/config.fish"),
        "if status is-login\n  set -gx PATH $HOME/.npm-global/bin $PATH\n  set -gx CODEX_HOME $HOME/codex-fish\nend\n",
    )
    .unwrap();
    fs::write(
        home.join(".login"),
        "setenv PATH \"$HOME/.npm-global/bin:$PATH\"\nsetenv CODEX_HOME \"$HOME/codex-csh\"\n",
    )
    .unwrap();
    let codex = home.join(".npm-global/bin/codex");
    codex_stand_in(&codex);
    for (shell, codex_home) in [
        ("/bin/sh", "codex-sh"),
        ("/usr/bin/dash", "codex-sh"),
        ("/usr/bin/bash", "codex-sh"),
        ("/usr/bin/zsh", "codex-zsh"),
        ("/usr/bin/fish", "codex-fish"),
        ("/usr/bin/tcsh", "codex-csh"),
    ] {
        assert!(Path::new(shell).exists(), "{shell} is missing: install zsh, fish and tcsh (.ci/run does)");
        let check = check_with_shell(&w, "devbox", shell);
        assert_eq!(check["login_shell"], shell);
        assert_eq!(check["codex_home"], home.join(codex_home).to_str().unwrap(), "{shell}: {check}");
        assert_eq!(check["codex_home_from"], "login_shell", "{shell}");
        assert_eq!(check["codex"]["path"], codex.to_str().unwrap(), "{shell}");
        assert_eq!(check["codex"]["found"], "login_shell", "{shell}");
        assert_eq!(check["codex"]["version"], "codex-cli 9.9.9 (stand-in)", "{shell}");
    }

    // A login shell whose PATH lacks the program: the usual folders are searched next.
    let bare = w.env.path("bare-home");
    codex_stand_in(&bare.join(".local/bin/codex"));
    w.run(&["host", "add", "bare", bare.to_str().unwrap(), "--transport", "local"]).success();
    let check = check_with_shell(&w, "bare", "/usr/bin/bash");
    assert_eq!(check["codex"]["path"], bare.join(".local/bin/codex").to_str().unwrap());
    assert_eq!(check["codex"]["found"], "folder");
    assert_eq!(check["codex_home"], bare.join(".codex").to_str().unwrap());
    assert_eq!(check["codex_home_from"], "default");
}

/// `host check <host> --json` with `shell` as the login shell (the local transport's helper inherits SHELL).
fn check_with_shell(w: &World, host: &str, shell: &str) -> serde_json::Value {
    let mut cmd = w.env.command("git", &w.laptop);
    cmd.env("SHELL", shell).args(["codex-handoff", "host", "check", host, "--json"]);
    crate::harness::Run::from(cmd.output().unwrap()).success().json()
}
