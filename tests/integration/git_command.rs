//! A first-class git command: man page, install, completions, hooks,
//! aliases, and the interface editors rely on (`--json`, colour, progress).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::handoff::{Via, World};
use crate::harness::{write, Run, TestEnv, BIN};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn generate(env: &TestEnv, args: &[&str]) -> String {
    let out = env.command(BIN, env.root.path()).arg("generate").args(args).output().unwrap();
    assert!(out.status.success(), "generate {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A repository with one commit.
fn repo(env: &TestEnv, rel: &str) -> PathBuf {
    env.committed_repo(rel)
}

#[test]
fn man_page_is_up_to_date() {
    let env = TestEnv::new();
    let generated = generate(&env, &["man"]);
    let committed = std::fs::read(Path::new(MANIFEST_DIR).join("man/git-codex-handoff.1")).unwrap_or_default();
    assert!(
        generated.as_bytes() == committed.as_slice(),
        "man/git-codex-handoff.1 is stale: run `make man` and commit the result"
    );
    assert_eq!(generate(&env, &["man"]), generated, "the page is the same on every run");
}

#[test]
fn man_page_documents_commands_exit_codes_settings_environment_files_and_json() {
    let env = TestEnv::new();
    let page = generate(&env, &["man"]);
    let text = page.replace("\\-", "-").replace("\\fB", "").replace("\\fR", "").replace("\\fI", "");
    for section in
        ["SYNOPSIS", "COMMANDS", "EXIT STATUS", "CONFIGURATION", "ENVIRONMENT", "FILES", "JSON OUTPUT", "HOOKS"]
    {
        assert!(
            text.contains(&format!(".SH \"{section}\"")) || text.contains(&format!(".SH {section}\n")),
            "{section}"
        );
    }
    for command in [
        "git codex-handoff destinations",
        "git codex-handoff thread new",
        "git codex-handoff thread list",
        "git codex-handoff thread show",
        "git codex-handoff thread log",
        "git codex-handoff thread snapshot",
        "git codex-handoff thread restore",
        "git codex-handoff thread run",
        "git codex-handoff host add",
        "git codex-handoff host list",
        "git codex-handoff host remove",
        "git codex-handoff host check",
        "git codex-handoff project save",
        "git codex-handoff project list",
        "git codex-handoff project forget",
        "git codex-handoff install-hooks",
        "git codex-handoff config",
    ] {
        assert!(text.contains(&format!(".SS \"{command}\"")), "no section for {command}");
    }
    for fact in [
        "codex-handoff.machine",
        "codex-handoff.worktreeRoot",
        "codex-handoff.project",
        "codex-handoff.<host>.ssh",
        "codex-handoff.<host>.transport",
        "codex-handoff.<host>.helper",
        "codex-handoff.allowCommitsElsewhere",
        "CODEX_HOME",
        "CODEX_HANDOFF_THREAD",
        "GIT_SSH_COMMAND",
        "NO_COLOR",
        "refs/codex-handoff/threads/<uuid>",
        "refs/notes/codex-handoff",
        "\"schema\": 1",
        "\"owner_machine\"",
        "--progress",
    ] {
        assert!(text.contains(fact), "the man page does not mention {fact}");
    }
    for code in 0..=6 {
        assert!(text.contains(&format!(".TP\n{code}\n")), "exit code {code}");
    }
    assert!(!text.contains("remote serve [") && !text.contains("__complete"), "hidden commands stay out");
}

#[test]
fn dash_dash_help_of_the_binary_prints_clap_help() {
    let env = TestEnv::new();
    let run = Run::from(env.command(BIN, env.root.path()).arg("--help").output().unwrap());
    run.success();
    assert!(run.stdout.contains("Usage: git codex-handoff"), "{}", run.stdout);
    assert!(run.stdout.contains("install-hooks"));
    let run = Run::from(env.command(BIN, env.root.path()).args(["thread", "--help"]).output().unwrap());
    assert!(run.success().stdout.contains("snapshot"));
}

#[test]
fn make_install_puts_the_man_page_where_man_and_git_help_find_it_and_uninstall_removes_it_all() {
    let env = TestEnv::new();
    let prefix = env.path("prefix");
    let make = |target: &str| {
        let out = env
            .command("make", Path::new(MANIFEST_DIR))
            .args(["--no-print-directory", "-s", target])
            .arg(format!("PREFIX={}", prefix.display()))
            .arg(format!("BIN={BIN}"))
            .output()
            .expect("run make");
        assert!(out.status.success(), "make {target}: {}", String::from_utf8_lossy(&out.stderr));
    };
    make("install-files");
    let installed = [
        "bin/git-codex-handoff",
        "share/man/man1/git-codex-handoff.1",
        "share/bash-completion/completions/git-codex-handoff",
        "share/zsh/site-functions/_git-codex-handoff",
        "share/fish/vendor_completions.d/git-codex-handoff.fish",
        "share/git-codex-handoff/hooks/pre-commit",
    ];
    for file in installed {
        let meta = std::fs::metadata(prefix.join(file)).unwrap_or_else(|_| panic!("{file} is not installed"));
        assert!(meta.len() > 0, "{file} is empty");
    }
    assert!(std::fs::metadata(prefix.join("bin/git-codex-handoff")).unwrap().permissions().mode() & 0o111 != 0);

    let manpath = prefix.join("share/man");
    let out = env
        .command("man", env.root.path())
        .args(["-w", "git-codex-handoff"])
        .env("MANPATH", &manpath)
        .output()
        .expect("run man (install man-db)");
    assert!(out.status.success(), "man -w: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()), manpath.join("man1/git-codex-handoff.1"));
    let out = env
        .command("git", env.root.path())
        .args(["help", "-m", "codex-handoff"])
        .env("MANPATH", &manpath)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .unwrap();
    assert!(out.status.success(), "git help -m: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("EXIT STATUS"));

    make("uninstall");
    let left: Vec<PathBuf> = walk_files(&prefix);
    assert!(left.is_empty(), "uninstall left {left:?}");
    assert!(!prefix.join("share/git-codex-handoff").exists());
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn completions_are_generated_for_bash_zsh_and_fish() {
    let env = TestEnv::new();
    let bash = generate(&env, &["completions", "bash"]);
    assert!(bash.contains("_git_codex_handoff ()"));
    let zsh = generate(&env, &["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef git-codex-handoff"));
    let fish = generate(&env, &["completions", "fish"]);
    assert!(fish.contains("complete -c git-codex-handoff"));
    for (shell, script, ext) in [("bash", &bash, "bash"), ("zsh", &zsh, "zsh"), ("fish", &fish, "fish")] {
        for hidden in ["__complete\"", "generate\"", "\"remote\""] {
            assert!(!script.contains(&format!("-a {hidden}")), "{shell} offers a hidden command {hidden}");
        }
        let file = env.path(&format!("completion.{ext}"));
        std::fs::write(&file, script).unwrap();
        // Check the syntax with each shell that is installed (bash always is).
        match env.command(shell, env.root.path()).arg("-n").arg(&file).output() {
            Ok(out) => assert!(out.status.success(), "{shell} -n: {}", String::from_utf8_lossy(&out.stderr)),
            Err(_) => assert_ne!(shell, "bash", "bash is needed"),
        }
    }
}

fn git_completion_script() -> PathBuf {
    let candidates =
        ["/usr/share/bash-completion/completions/git", "/usr/share/doc/git/contrib/completion/git-completion.bash"];
    candidates.iter().map(PathBuf::from).find(|p| p.exists()).unwrap_or_else(|| {
        panic!("git's bash completion is missing (looked in {candidates:?}); install git from the distribution")
    })
}

/// What bash completes for `line` (the cursor at its end), through git's own completion.
fn complete(env: &TestEnv, dir: &Path, script: &Path, line: &str) -> Vec<String> {
    let driver = format!(
        r#"source {git_completion}
source {script}
COMP_LINE="$1"; COMP_POINT=${{#COMP_LINE}}
read -ra COMP_WORDS <<< "$1"
[[ "$1" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMPREPLY=()
__git_wrap__git_main
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
        git_completion = git_completion_script().display(),
        script = script.display()
    );
    let out =
        env.command("bash", dir).args(["--norc", "--noprofile", "-c", &driver, "complete", line]).output().unwrap();
    assert!(out.status.success(), "bash: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect()
}

#[test]
fn bash_completion_through_gits_own_completes_subcommands_threads_and_hosts() {
    let env = TestEnv::new();
    let script = env.path("git-codex-handoff.bash");
    std::fs::write(&script, generate(&env, &["completions", "bash"])).unwrap();
    let outside = env.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    assert_eq!(complete(&env, &outside, &script, "git codex-handoff th"), ["thread"]);

    let repo = repo(&env, "repo");
    env.run(&repo, &["thread", "new", "--title", "One"]).success();
    env.run(&repo, &["host", "add", "devbox", env.path("devbox-home").to_str().unwrap(), "--transport", "local"])
        .success();
    let top = complete(&env, &repo, &script, "git codex-handoff ");
    for word in ["thread", "host", "project", "destinations", "install-hooks", "config", "1"] {
        assert!(top.contains(&word.to_owned()), "{word} missing from {top:?}");
    }
    assert!(!top.iter().any(|w| w.contains("complete") || w == "remote" || w == "hook"), "{top:?}");
    assert_eq!(complete(&env, &repo, &script, "git codex-handoff 1 "), ["devbox", "local"]);
    assert_eq!(complete(&env, &repo, &script, "git codex-handoff thread sh"), ["show"]);
    assert_eq!(complete(&env, &repo, &script, "git codex-handoff thread show "), ["1"]);
    assert_eq!(complete(&env, &repo, &script, "git codex-handoff host check "), ["devbox"]);
    assert_eq!(
        complete(&env, &repo, &script, "git codex-handoff host add x y --transport "),
        ["openssh", "ssh2", "local"]
    );
    assert_eq!(complete(&env, &repo, &script, "git codex-handoff thread list --a"), ["--all"]);
}

fn hook_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn install_hooks_twice_keeps_existing_content_and_uninstall_removes_only_its_lines() {
    let env = TestEnv::new();
    let repo = repo(&env, "repo");
    let hook = repo.join(".git/hooks/pre-commit");
    let original = "#!/bin/sh\necho existing hook ran >&2\n";
    std::fs::write(&hook, original).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();

    let first = env.run(&repo, &["install-hooks", "--json"]).success().json();
    assert_eq!(first["hooks"][0]["action"], "added");
    assert_eq!(first["schema"], 1);
    let installed = hook_text(&hook);
    let second = env.run(&repo, &["install-hooks", "--json"]).success().json();
    assert_eq!(second["hooks"][0]["action"], "unchanged");
    assert_eq!(hook_text(&hook), installed, "a second install changes nothing");
    assert_eq!(installed.matches("# >>> git-codex-handoff >>>").count(), 1);
    assert_eq!(installed.matches("# <<< git-codex-handoff <<<").count(), 1);
    assert!(installed.contains("git codex-handoff hook pre-commit"));
    assert!(installed.starts_with("#!/bin/sh\n# >>> git-codex-handoff >>>"), "ours runs first:\n{installed}");
    assert!(installed.ends_with(&original["#!/bin/sh\n".len()..]), "the existing content is kept:\n{installed}");

    // Both run on a commit (no thread here: ours lets it through).
    write(&repo, b"b.txt", b"beta\n");
    env.git(&repo, &["add", "b.txt"]);
    let out = env.git_with_env(&repo, &["commit", "-q", "-m", "two"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("existing hook ran"));

    let removed = env.run(&repo, &["install-hooks", "--uninstall", "--json"]).success().json();
    assert_eq!(removed["hooks"][0]["action"], "removed");
    assert_eq!(hook_text(&hook), original, "exactly the original content is left");
    let again = env.run(&repo, &["install-hooks", "--uninstall", "--json"]).success().json();
    assert_eq!(again["hooks"][0]["action"], "absent");

    // A hook file of ours alone is deleted on uninstall.
    std::fs::remove_file(&hook).unwrap();
    assert_eq!(env.run(&repo, &["install-hooks", "--json"]).success().json()["hooks"][0]["action"], "created");
    assert!(std::fs::metadata(&hook).unwrap().permissions().mode() & 0o111 != 0, "the hook is executable");
    assert_eq!(
        env.run(&repo, &["install-hooks", "--uninstall", "--json"]).success().json()["hooks"][0]["action"],
        "deleted"
    );
    assert!(!hook.exists());

    // A hook in another language is left alone.
    std::fs::write(&hook, "#!/usr/bin/env python3\nprint('mine')\n").unwrap();
    env.run(&repo, &["install-hooks"]).fails_with(4, "not a shell script");
    assert_eq!(hook_text(&hook), "#!/usr/bin/env python3\nprint('mine')\n");
}

#[test]
fn install_hooks_honours_core_hooks_path_and_linked_worktrees() {
    let env = TestEnv::new();
    let repo = repo(&env, "repo");
    let linked = env.path("linked");
    env.git(&repo, &["worktree", "add", "-q", "-b", "side", linked.to_str().unwrap()]);

    // From a linked worktree: the hooks every worktree shares.
    let out = env.run(&linked, &["install-hooks", "--json"]).success().json();
    let common_hook = repo.join(".git/hooks/pre-commit");
    assert_eq!(PathBuf::from(out["hooks"][0]["path"].as_str().unwrap()), common_hook);
    assert!(hook_text(&common_hook).contains("git codex-handoff hook pre-commit"));
    env.run(&linked, &["install-hooks", "--uninstall"]).success();
    assert!(!common_hook.exists());

    // core.hooksPath, relative to the worktree root as git runs hooks there.
    env.git(&repo, &["config", "core.hooksPath", ".githooks"]);
    std::fs::create_dir_all(repo.join("sub")).unwrap();
    let out = env.run(&repo.join("sub"), &["install-hooks", "--json"]).success().json();
    assert_eq!(PathBuf::from(out["hooks_dir"].as_str().unwrap()), repo.join(".githooks"));
    assert!(hook_text(&repo.join(".githooks/pre-commit")).contains("git codex-handoff hook pre-commit"));
    assert!(!common_hook.exists(), "the hooks directory git does not use is left alone");
    // git runs it: a commit goes through (no thread here).
    write(&repo, b"c.txt", b"c\n");
    env.git(&repo, &["add", "c.txt"]);
    env.git(&repo, &["commit", "-q", "-m", "with hooksPath"]);
}

#[test]
fn pre_commit_guard_refuses_in_a_worktree_handed_away_and_the_overrides_let_it_through() {
    let w = World::new(Via::Local);
    let env = &w.env;
    w.run(&["thread", "new", "--title", "Guarded", "--branch", "feat/guarded"]).success();
    w.run(&["install-hooks"]).success();
    write(&w.laptop, b"here.txt", b"while the thread is here\n");
    env.git(&w.laptop, &["add", "here.txt"]);
    env.git(&w.laptop, &["commit", "-q", "-m", "allowed while the thread is here"]);

    // Progress shows with --progress though stderr is not a terminal; stdout stays one JSON document.
    let handoff = w.run(&["1", "devbox", "--yes", "--json", "--progress"]);
    handoff.success();
    assert_eq!(handoff.json()["host"], "devbox");
    assert_eq!(handoff.json()["schema"], 1);
    assert!(handoff.stderr.contains("taking a snapshot"), "progress with --progress:\n{}", handoff.stderr);

    write(&w.laptop, b"late.txt", b"a late edit\n");
    env.git(&w.laptop, &["add", "late.txt"]);
    let head = env.git(&w.laptop, &["rev-parse", "HEAD"]);
    let refused = Run::from(env.git_with_env(&w.laptop, &["commit", "-q", "-m", "refused"], &[]));
    assert_ne!(refused.code, 0, "the commit is refused");
    assert!(refused.stderr.contains("now on devbox"), "{}", refused.stderr);
    assert!(refused.stderr.contains("git codex-handoff 1 local"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--no-verify"), "{}", refused.stderr);
    assert_eq!(env.git(&w.laptop, &["rev-parse", "HEAD"]), head, "nothing was committed");

    // The hook command itself: exit 4 (refused).
    env.run(&w.laptop, &["hook", "pre-commit"]).fails_with(4, "thread #1");

    let forced = Run::from(env.git_with_env(&w.laptop, &["commit", "-q", "--no-verify", "-m", "forced"], &[]));
    assert_eq!(forced.code, 0, "{}", forced.stderr);

    write(&w.laptop, b"later.txt", b"later\n");
    env.git(&w.laptop, &["add", "later.txt"]);
    env.git(&w.laptop, &["config", "codex-handoff.allowCommitsElsewhere", "true"]);
    env.git(&w.laptop, &["commit", "-q", "-m", "allowed by config"]);
}

#[test]
fn hook_outside_any_thread_context_lets_git_go_on() {
    let env = TestEnv::new();
    let outside = env.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    env.command(BIN, &outside).args(["hook", "pre-commit"]).status().map(|s| assert!(s.success())).unwrap();
    let repo = repo(&env, "repo");
    env.run(&repo, &["hook", "pre-commit"]).success();
    let run = env.run(&repo, &["hook", "post-something-new"]);
    run.success();
    assert!(run.stderr.contains("ignored"));
}

#[test]
fn an_alias_runs_the_plugin() {
    let env = TestEnv::new();
    let repo = repo(&env, "repo");
    env.git(&repo, &["config", "alias.ho", "codex-handoff"]);
    let mut cmd = env.command("git", &repo);
    cmd.args(["ho", "thread", "new", "--title", "Via an alias"]);
    Run::from(cmd.output().unwrap()).success();
    let mut cmd = env.command("git", &repo);
    cmd.args(["ho", "thread", "list", "--json"]);
    let list = Run::from(cmd.output().unwrap()).success().json();
    assert_eq!(list["threads"][0]["title"], "Via an alias");
    let mut cmd = env.command("git", &repo);
    cmd.args(["ho", "thread", "list"]);
    assert!(Run::from(cmd.output().unwrap()).success().stdout.contains("Via an alias"));
}

#[test]
fn json_of_every_read_command_is_one_document_also_on_errors() {
    let env = TestEnv::new();
    let repo = repo(&env, "repo");
    env.run(&repo, &["thread", "new", "--title", "Read me"]).success();
    for args in [
        &["thread", "list", "--json"][..],
        &["thread", "list", "--all", "--json"],
        &["thread", "list", "--codex", "--json"],
        &["thread", "show", "1", "--json"],
        &["thread", "log", "1", "--json"],
        &["host", "list", "--json"],
        &["project", "list", "--json"],
        &["destinations", "--json"],
        &["config", "--json"],
        &["1", "local", "--dry-run", "--json"],
    ] {
        let run = env.run(&repo, args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        let doc = run.json();
        assert_eq!(doc["schema"], 1, "{args:?} has a schema: {doc}");
        assert!(doc.get("error").is_none());
    }
    let outside = env.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    for (dir, args, code) in [
        (&repo, &["thread", "show", "99", "--json"][..], 3),
        (&repo, &["thread", "show", "--json"], 2),
        (&repo, &["thread", "log", "zz", "--json"], 3),
        (&repo, &["--json"], 2),
        (&repo, &["host", "check", "nowhere", "--json"], 3),
        (&repo, &["1", "nowhere", "--json", "--yes"], 3),
        (&outside, &["thread", "list", "--json"], 3),
        (&outside, &["destinations", "--json"], 3),
    ] {
        let run = env.run(dir, args);
        assert_eq!(run.code, code, "{args:?}\nstdout: {}\nstderr: {}", run.stdout, run.stderr);
        let doc = run.json();
        assert!(doc["error"]["code"].is_string(), "{args:?}: {doc}");
        assert!(doc["error"]["message"].is_string(), "{args:?}: {doc}");
        assert_eq!(doc["error"]["exit_code"], code);
        assert_eq!(doc["schema"], 1);
    }
}

#[test]
fn colour_follows_no_color_and_git_color_ui() {
    let env = TestEnv::new();
    let repo = repo(&env, "repo");
    let run = |color_ui: &str, no_color: bool| {
        let mut cmd = env.command("git", &repo);
        cmd.args(["-c", &format!("color.ui={color_ui}"), "codex-handoff", "thread", "show", "99"]);
        if !no_color {
            cmd.env_remove("NO_COLOR");
        }
        let run = Run::from(cmd.output().unwrap());
        assert_eq!(run.code, 3);
        assert!(run.stderr.contains("no thread 99"), "{}", run.stderr);
        run.stderr.contains('\u{1b}')
    };
    assert!(run("always", false), "color.ui=always colours the report");
    assert!(!run("never", false), "color.ui=never");
    assert!(!run("auto", false), "auto: stderr is not a terminal here");
    assert!(!run("always", true), "NO_COLOR wins");
}

#[test]
fn config_lists_every_setting_with_its_value_origin_and_default() {
    let env = TestEnv::new();
    let repo = repo(&env, "repo");
    env.run(&repo, &["host", "add", "devbox", "me@devbox.example.com"]).success();
    env.git(&repo, &["config", "codex-handoff.allowCommitsElsewhere", "true"]);
    let doc = env.run(&repo, &["config", "--json"]).success().json();
    let settings = doc["settings"].as_array().unwrap();
    let find = |key: &str| {
        settings.iter().find(|s| s["key"] == key).unwrap_or_else(|| panic!("{key} is not listed: {doc}")).clone()
    };
    let machine = find("codex-handoff.machine");
    assert_eq!(machine["values"][0]["value"], "laptop");
    assert_eq!(machine["values"][0]["origin"], "global");
    assert_eq!(machine["default"], "the hostname");
    let root = find("codex-handoff.worktreeRoot");
    assert_eq!(root["values"].as_array().unwrap().len(), 0);
    assert_eq!(root["default"], "~/.codex/worktrees");
    assert_eq!(root["effective"], env.home.join(".codex/worktrees").to_str().unwrap());
    assert_eq!(find("codex-handoff.devbox.ssh")["values"][0]["value"], "me@devbox.example.com");
    assert_eq!(find("codex-handoff.devbox.transport")["default"], "openssh where `ssh` is on PATH, else ssh2");
    assert_eq!(find("codex-handoff.devbox.helper")["effective"], "git-codex-handoff");
    let allow = find("codex-handoff.allowCommitsElsewhere");
    assert_eq!(
        (allow["values"][0]["value"].as_str(), allow["values"][0]["origin"].as_str()),
        (Some("true"), Some("local"))
    );
    find("codex-handoff.project");
    find("codex-handoff.fingerprint");

    // A value on git's command line wins for one command.
    let mut cmd = env.command("git", &repo);
    cmd.args(["-c", "codex-handoff.worktreeRoot=/elsewhere", "codex-handoff", "config", "--json"]);
    let doc = Run::from(cmd.output().unwrap()).success().json();
    let root =
        doc["settings"].as_array().unwrap().iter().find(|s| s["key"] == "codex-handoff.worktreeRoot").unwrap().clone();
    assert_eq!(
        (root["effective"].as_str(), root["values"][0]["origin"].as_str()),
        (Some("/elsewhere"), Some("command"))
    );

    let text = env.run(&repo, &["config"]).success().stdout.clone();
    assert!(text.starts_with("KEY"), "{text}");
    for key in [
        "codex-handoff.machine",
        "codex-handoff.worktreeRoot",
        "codex-handoff.devbox.helper",
        "codex-handoff.allowCommitsElsewhere",
    ] {
        assert!(text.contains(key), "{key} in\n{text}");
    }
}
