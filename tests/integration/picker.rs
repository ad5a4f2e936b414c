//! `git codex-handoff <THREAD>` with no HOST: the destination picker. On a
//! terminal it lists this computer (when the thread is elsewhere) and every
//! host with a matching saved project, probed at once, with the project
//! there and the round trip; the person picks one, then the plan and the
//! confirmation follow. Without a terminal the command stops (exit 2)
//! naming the same choices, as JSON under `--json`. Inside a thread's
//! worktree THREAD may be left out too.

use std::path::Path;

use serde_json::Value;

use crate::handoff::{every_kind_of_change, Via};
use crate::relay::Hosts;

fn owner(t: &Hosts, dir: &Path) -> String {
    let show = t.w.env.run(dir, &["thread", "show", "1", "--json"]).success().json();
    show["owner"].as_str().unwrap().to_owned()
}

/// The hosts a choice list names, in order.
fn hosts_of(choices: &Value) -> Vec<&str> {
    choices.as_array().unwrap().iter().map(|c| c["host"].as_str().unwrap()).collect()
}

#[test]
fn without_a_terminal_the_choices_are_named_and_nothing_changes() {
    let t = Hosts::new(Via::Local);
    let env = &t.w.env;
    let laptop = t.w.laptop.clone();
    // A host without the project is no choice.
    let empty = crate::harness::make_home(&env.path("empty-home"), "empty");
    t.w.run(&["host", "add", "empty", empty.to_str().unwrap(), "--transport", "local"]).success();
    t.w.run(&["thread", "new", "--title", "Pick", "--branch", "feat/pick"]).success();
    every_kind_of_change(env, &laptop);
    let before = t.w.everything();

    let run = t.w.run(&["1"]);
    run.fails_with(2, "where should thread #1 go? It can go to: devbox (");
    let devbox_project = t.w.remote_clone.canonicalize().unwrap();
    let devbox2_project = t.clone2.canonicalize().unwrap();
    assert!(run.stderr.contains(&format!("devbox ({}, ", devbox_project.display())), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("devbox2 ({}, ", devbox2_project.display())), "{}", run.stderr);
    assert!(!run.stderr.contains("this computer") && !run.stderr.contains("empty ("), "{}", run.stderr);
    assert!(run.stderr.contains("`git codex-handoff 1 devbox`"), "the help names one: {}", run.stderr);

    let run = t.w.run(&["1", "--json"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let doc = run.json();
    assert_eq!((doc["error"]["code"].as_str(), doc["error"]["exit_code"].as_u64()), (Some("missing_host"), Some(2)));
    assert_eq!(hosts_of(&doc["choices"]), ["devbox", "devbox2"], "{doc}");
    for (choice, project) in doc["choices"].as_array().unwrap().iter().zip([&devbox_project, &devbox2_project]) {
        assert_eq!(choice["project"], project.to_str().unwrap(), "{doc}");
        assert!(choice["round_trip_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{doc}");
        assert_eq!(choice["this_computer"], false);
    }
    assert_eq!(t.w.everything(), before, "asking changed something");
    assert_eq!(owner(&t, &laptop), "local");

    // Once the thread is on devbox: this computer first, and devbox is no destination.
    t.w.run(&["1", "devbox", "--yes"]).success();
    let doc = t.w.run(&["1", "--json"]).json();
    assert_eq!(hosts_of(&doc["choices"]), ["local", "devbox2"], "{doc}");
    assert_eq!(doc["choices"][0]["this_computer"], true);
    assert!(doc["choices"][0]["project"].is_null());
    t.w.run(&["1"])
        .fails_with(2, "where should thread #1 go (it is on devbox)? It can go to: this computer (local); devbox2 (");

    // Inside the thread's worktree THREAD may be left out: with no word at all, the same choices...
    let doc = t.w.run(&["--json"]).json();
    assert_eq!(hosts_of(&doc["choices"]), ["local", "devbox2"], "{doc}");
    // ...and with only the destination, the thread goes there.
    let out = t.w.run(&["devbox2", "--yes", "--json"]).success().json();
    assert_eq!((out["thread"].as_u64(), out["host"].as_str()), (Some(1), Some("devbox2")));
    let out = t.w.run(&["local", "--yes", "--json"]).success().json();
    assert_eq!((out["host"].as_str(), out["worktree"].as_str()), (Some("local"), laptop.to_str()));

    // Outside any thread's worktree there is nothing to leave out.
    let other = env.path("no-thread-here");
    env.git(&laptop, &["worktree", "add", "-q", "--detach", other.to_str().unwrap()]);
    env.run(&other, &[]).fails_with(2, "no thread or command given");
    env.run(&other, &["devbox"]).fails_with(3, "no thread devbox");
}

#[test]
fn in_a_terminal_the_person_picks_and_then_confirms() {
    let t = Hosts::new(Via::Openssh);
    let env = &t.w.env;
    let laptop = t.w.laptop.clone();
    t.w.run(&["thread", "new", "--title", "Pick me", "--branch", "feat/pick"]).success();
    every_kind_of_change(env, &laptop);
    let state = env.carried_facts(&laptop);

    // Nothing picked: nothing changes.
    let before = t.w.everything();
    let run = env.type_in_terminal(&laptop, &["1"], b"\n");
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("no destination picked; nothing was changed"), "{}", run.stdout);
    assert_eq!(t.w.everything(), before);

    // The second choice, devbox2; then the plan and the question.
    let run = env.type_in_terminal(&laptop, &["1"], b"2\ny\n");
    assert_eq!(run.code, 0, "{}", run.stdout);
    let screen = &run.stdout;
    let listed = format!("  1  devbox           {}  (", t.w.remote_clone.canonicalize().unwrap().display());
    assert!(screen.contains("Where should thread #1 go?"), "{screen}");
    assert!(screen.contains(&listed), "{screen}");
    assert!(
        screen.contains(&format!("  2  devbox2          {}  (", t.clone2.canonicalize().unwrap().display())),
        "{screen}"
    );
    assert!(screen.contains(" ms)\n"), "each with its round trip: {screen}");
    let asked = screen.find("Destination [1-2, Enter to cancel]").expect("the question");
    let plan = screen.find("  to        devbox2").expect("the plan");
    let confirm = screen.find("Hand it off? [y/N]").expect("the confirmation");
    assert!(asked < plan && plan < confirm, "{screen}");
    assert_eq!(owner(&t, &laptop), "devbox2");
    let there = env.run(&laptop, &["thread", "show", "1", "--json"]).success().json();
    let wt = std::path::PathBuf::from(there["owner_worktree"].as_str().unwrap());
    assert_eq!(env.carried_facts(&wt), state);

    // In the thread's worktree, no THREAD: this computer is the first choice; the relay's plan says how.
    let run = env.type_in_terminal(&laptop, &[], b"2\nn\n");
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("Where should thread #1 go (it is on devbox2)?"), "{}", run.stdout);
    assert!(run.stdout.contains("  1  this computer\n"), "{}", run.stdout);
    assert!(
        run.stdout.contains("from devbox2 to devbox (through this computer; no files here change)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("handoff cancelled; nothing was changed"), "{}", run.stdout);
    assert_eq!(owner(&t, &laptop), "devbox2");
    let run = env.type_in_terminal(&laptop, &[], b"1\ny\n");
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("  from      devbox2\n  to        local"), "{}", run.stdout);
    assert_eq!(owner(&t, &laptop), "local");
    assert_eq!(env.carried_facts(&laptop), state, "home, exactly");
}
