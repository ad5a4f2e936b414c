//! The real Codex CLI (see `codex_cli`) as the agent on either side of a
//! handoff: `--attach` goes on with a real Codex thread on the host over
//! the real sshd, and the skill `install-skill` writes is offered to the
//! model and lets a Codex turn hand another, named thread to the host.

use std::path::PathBuf;

use serde_json::Value;

use crate::codex::rollouts_of;
use crate::codex_cli::{codex, codex_cli, codex_home, in_order, input_texts};
use crate::handoff::{Via, World};
use crate::harness::{write, BIN};
use crate::mock_model::{MockModel, Reply};
use crate::sshd::Sshd;

/// The Codex thread id in the name of a rollout file.
fn id_of(rollout: &std::path::Path) -> String {
    let name = rollout.file_name().unwrap().to_str().unwrap();
    name[name.len() - 36 - ".jsonl".len()..name.len() - ".jsonl".len()].to_owned()
}

#[test]
fn attach_goes_on_with_a_real_codex_thread_on_the_host() {
    let Some(bin) = codex_cli() else {
        eprintln!("SKIPPED: npm is not installed, so the real Codex CLI cannot be installed");
        return;
    };
    let model = MockModel::with_replies(vec![
        Reply::text("Antwort eins: der Parser liest das Ende nicht."),
        Reply::text("Antwort zwei, auf dem Server."),
    ]);
    // Codex is on the host's login PATH only (its profile adds it, as nvm's does), not on the PATH
    // ssh gives a command: the helper finds it through the login shell.
    let (env, laptop, remote_home, remote_clone) = World::fixture(|_, _| {});
    let profile = format!("PATH=\"{}:$PATH\"\nexport PATH\n", bin.parent().unwrap().display());
    write(&remote_home, b".profile", profile.as_bytes());
    let sshd = Sshd::start_with_env(&env, &remote_home, &[("PATH", "/usr/bin:/bin")]);
    env.set_var("GIT_SSH_COMMAND", &sshd.ssh_command());
    env.run(&laptop, &["host", "add", "devbox", "devbox", "--helper", BIN]).success();
    let w = World { env, laptop, remote_home, remote_clone, sshd: Some(sshd) };
    let env = &w.env;
    let local_codex = codex_home(&env.home, &model);
    let remote_codex = codex_home(&w.remote_home, &model);
    codex(env, &bin, &env.home, &w.laptop, &["exec", "Erste Frage: warum schl\u{e4}gt der Test fehl?"]).success();
    let id = id_of(&rollouts_of(&local_codex, "")[0]);

    let command = "codex exec resume {codex_thread} \"Zweite Frage, auf dem Server\"";
    env.git(&w.laptop, &["config", "--global", "codex-handoff.attachCommand", command]);
    let run = env.run_in_terminal(&w.laptop, &[&id, "devbox", "--yes", "--attach"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("Antwort zwei, auf dem Server."), "Codex's answer in this terminal:\n{}", run.stdout);
    let there = rollouts_of(&remote_codex, &id);
    assert_eq!(there.len(), 1, "{there:?}");
    let worktree = w.run(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!(worktree["owner"], "devbox");
    // The model got the whole conversation, and the worktree on the host as the working directory.
    let requests = model.requests();
    assert_eq!(requests.len(), 2, "one turn here, one there");
    let last = input_texts(&requests[1]);
    let remote_wt = w.remote_home.join(".codex/worktrees");
    in_order(
        &last,
        &["Erste Frage", "Antwort eins", &format!("<cwd>{}", remote_wt.display()), "Zweite Frage, auf dem Server"],
    );
    let rollout = std::fs::read_to_string(&there[0]).unwrap();
    assert!(rollout.contains("Antwort zwei, auf dem Server."), "the turn went into the thread's file there");
}

/// What the command Codex ran printed, from the `function_call_output` the model got.
fn tool_output(request: &Value) -> String {
    let items = request["input"].as_array().unwrap();
    let output = items.iter().rev().find(|i| i["type"] == "function_call_output").expect("a command's output");
    output["output"].as_str().unwrap().to_owned()
}

#[test]
fn the_skill_lets_codex_hand_a_named_thread_to_the_host() {
    let Some(bin) = codex_cli() else {
        eprintln!("SKIPPED: npm is not installed, so the real Codex CLI cannot be installed");
        return;
    };
    let w = World::new(Via::Openssh);
    let env = &w.env;
    w.run(&["thread", "new", "--title", "Parser fix", "--branch", "fix/parser"]).success();
    write(&w.laptop, b"a.txt", b"work in progress\n");
    let model = MockModel::with_replies(vec![
        // What the skill says to run, for the thread the user named; then for the asking thread itself.
        Reply::shell("git codex-handoff 'Parser fix' devbox --yes --json"),
        Reply::shell("git codex-handoff \"$CODEX_THREAD_ID\" devbox --yes --json"),
        Reply::text("Thread 'Parser fix' is on devbox now."),
    ]);
    let local_codex = codex_home(&env.home, &model);
    // Codex runs commands in a login shell, whose /etc/profile sets PATH anew: the
    // user's profile puts the tool back on it, as rustup's does for ~/.cargo/bin.
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    write(&env.home, b".profile", format!("PATH=\"{}:$PATH\"\n", bin_dir.display()).as_bytes());

    let installed = w.run(&["install-skill", "--json"]).success().json();
    let file = local_codex.join("skills/git-codex-handoff/SKILL.md");
    assert_eq!((installed["change"].as_str(), installed["path"].as_str()), (Some("installed"), file.to_str()));
    let again = w.run(&["install-skill", "--json"]).success().json();
    assert_eq!(again["change"], "unchanged");
    let description = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("description: ").map(|d| d.trim_matches('"').to_owned()))
        .unwrap();

    let answer = codex(env, &bin, &env.home, &w.laptop, &["exec", "Hand the thread 'Parser fix' to devbox"]);
    answer.success();
    let requests = model.requests();
    assert_eq!(requests.len(), 3, "{answer:?}");
    // Codex offered the skill to the model.
    let offered = format!("- git-codex-handoff: {description} (file: ");
    let developer = input_texts(&requests[0]);
    assert!(
        developer.iter().any(|t| t.starts_with("developer: ") && t.contains(&offered)),
        "the skill is not in what Codex offered the model:\n{}",
        developer.join("\n---\n")
    );
    // The handoff Codex ran: the named thread is on the host, with its work.
    let output = tool_output(&requests[1]);
    assert!(output.contains("Process exited with code 0"), "{output}");
    let json: Value = serde_json::from_str(&output[output.find('{').unwrap()..]).unwrap();
    assert_eq!((json["thread"].as_u64(), json["host"].as_str()), (Some(1), Some("devbox")), "{json}");
    let remote_wt = PathBuf::from(json["owner_worktree"].as_str().unwrap());
    assert_eq!(std::fs::read(remote_wt.join("a.txt")).unwrap(), b"work in progress\n");
    assert_eq!(w.run(&["thread", "show", "1", "--json"]).success().json()["owner"], "devbox");
    // The asking thread cannot hand itself off.
    let output = tool_output(&requests[2]);
    assert!(output.contains("Process exited with code 4") && output.contains("self_handoff"), "{output}");

    let removed = w.run(&["install-skill", "--uninstall", "--json"]).success().json();
    assert_eq!(removed["change"], "removed");
    assert!(!file.exists() && !file.parent().unwrap().exists());
    assert_eq!(w.run(&["install-skill", "--uninstall", "--json"]).success().json()["change"], "absent");
}

/// The Codex App gives each thread a worktree of its own. A real Codex turn
/// in one worktree hands off, by its Codex id, the Codex thread that works
/// in another worktree of the same repository: that worktree's state goes
/// to the host, with the thread's conversation. A Codex thread of another
/// repository is refused, naming its directory and that repository.
#[test]
fn a_codex_turn_in_one_worktree_hands_off_the_codex_thread_of_another() {
    let Some(bin) = codex_cli() else {
        eprintln!("SKIPPED: npm is not installed, so the real Codex CLI cannot be installed");
        return;
    };
    let w = World::new(Via::Openssh);
    let env = &w.env;
    let model = MockModel::with_replies(vec![
        Reply::text("Antwort in B: der Login braucht einen Test."),
        Reply::text("Antwort im anderen Projekt."),
        // Thread A's turn: the two handoffs it is asked for, then its answer.
        Reply::shell("git codex-handoff \"$THREAD_B\" devbox --yes --json"),
        Reply::shell("git codex-handoff \"$OTHER\" devbox --yes --json"),
        Reply::text("Thread B is on devbox now."),
    ]);
    let local_codex = codex_home(&env.home, &model);
    let remote_codex = codex_home(&w.remote_home, &model);
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    write(&env.home, b".profile", format!("PATH=\"{}:$PATH\"\n", bin_dir.display()).as_bytes());

    // Thread B works in a worktree of its own, on its branch, with work in progress.
    let b = env.path("app-b");
    env.git(&w.laptop, &["worktree", "add", "-q", "-b", "feature/b", b.to_str().unwrap()]);
    codex(env, &bin, &env.home, &b, &["exec", "Frage in B: was fehlt am Login?"]).success();
    let id_b = id_of(&rollouts_of(&local_codex, "")[0]);
    write(&b, b"a.txt", b"work in progress in B\n");
    write(&b, b"b-untracked.txt", b"untracked in B\n");
    write(&b, b"b.txt", b"staged in B\n");
    env.git(&b, &["add", "b.txt"]);
    let state_b = env.carried_facts(&b);
    let here_a = env.carried_facts(&w.laptop);
    // A Codex thread of another repository.
    let other = env.committed_repo("other-project");
    codex(env, &bin, &env.home, &other, &["exec", "Frage im anderen Projekt"]).success();
    let id_other = rollouts_of(&local_codex, "").iter().map(|p| id_of(p)).find(|id| *id != id_b).unwrap();

    // Thread A, in the main worktree, is asked to hand both off.
    let mut cmd = env.command_with_home(bin.to_str().unwrap(), &w.laptop, &env.home);
    cmd.env("CODEX_HOME", &local_codex).env("THREAD_B", &id_b).env("OTHER", &id_other);
    cmd.args(["exec", "Hand thread B and the other project's thread to devbox"]);
    let answer = crate::harness::Run::from(cmd.output().unwrap());
    answer.success();
    let requests = model.requests();
    assert_eq!(requests.len(), 5, "{answer:?}");

    // The first command handed off thread B: its worktree's state is on devbox, with its conversation.
    let output = tool_output(&requests[3]);
    assert!(output.contains("Process exited with code 0"), "{output}");
    let json: Value = serde_json::from_str(&output[output.find('{').unwrap()..output.rfind('}').unwrap() + 1]).unwrap();
    assert_eq!((json["host"].as_str(), json["branch"].as_str()), (Some("devbox"), Some("feature/b")), "{json}");
    assert!(json["worktree"].is_null(), "{json}");
    let remote_wt = PathBuf::from(json["owner_worktree"].as_str().unwrap());
    assert_eq!(env.carried_facts(&remote_wt), state_b, "thread B's worktree, exactly");
    assert_eq!(env.carried_facts(&w.laptop), here_a, "the asking thread's worktree is untouched");
    assert_eq!(rollouts_of(&remote_codex, &id_b).len(), 1, "B's conversation went along");
    let shown = w.run(&["thread", "show", &id_b, "--json"]).success().json();
    assert_eq!((shown["owner"].as_str(), shown["codex_session"].as_str()), (Some("devbox"), Some(id_b.as_str())));
    assert_eq!(shown["owner_worktree"], remote_wt.to_str().unwrap());
    let there = w.run_remote(&["thread", "show", &id_b, "--json"]).success().json();
    assert_eq!(there["worktree"], remote_wt.to_str().unwrap());

    // The second was refused: exit 3, naming the directory and the repository it works in.
    let output = tool_output(&requests[4]);
    assert!(output.contains("Process exited with code 3"), "{output}");
    assert!(output.contains("codex_thread_elsewhere"), "{output}");
    let other = other.canonicalize().unwrap();
    assert!(output.contains(&format!("the repository {}", other.display())), "{output}");
    assert!(rollouts_of(&remote_codex, &id_other).is_empty(), "nothing of it went to devbox");
}
