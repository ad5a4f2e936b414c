//! What differs when one of the machines is a Mac: file systems that do
//! not tell names apart by case, and a long `$TMPDIR`.

use std::path::PathBuf;

use crate::handoff::{Via, World};
use crate::harness::{assert_unchanged, write};

/// A thread with `Readme` (staged) and `README` (untracked): a destination
/// that does not tell case apart (a test knob makes either side such a
/// machine) gets neither, and the plan says why; one that does gets both.
#[cfg(feature = "test-faults")]
#[test]
fn files_whose_names_differ_only_in_case_are_refused_where_case_is_not_told_apart() {
    let w = World::new(Via::Openssh);
    let env = &w.env;
    w.run(&["thread", "new", "--branch", "feat/case"]).success();
    write(&w.laptop, b"Readme", b"the staged one\n");
    env.git(&w.laptop, &["add", "Readme"]);
    write(&w.laptop, b"README", b"the untracked one\n");

    // The host's worktree root does not tell case apart: the plan refuses, nothing moves.
    w.git_remote(&w.remote_home, &["config", "--global", "codex-handoff.testFault", "case-insensitive"]);
    let before = w.everything();
    for args in [&["1", "devbox", "--dry-run"][..], &["1", "devbox"], &["1", "devbox", "--json"]] {
        let out = w.run(args);
        out.fails_with(4, "devbox does not tell file names apart by case")
            .fails_with(4, "thread #1 has files whose names differ only in case: `README` and `Readme`")
            .fails_with(4, "git mv");
        assert!(!out.stderr.contains("would become thread") && !out.stdout.contains("\"worktree\""), "{out:?}");
    }
    assert_unchanged(&before, &w.everything(), "a refused handoff to a case-insensitive host");
    let here = w.run(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!((here["owner"].as_str(), here["epoch"].as_u64()), (Some("local"), Some(0)));

    // A host that tells case apart gets both files, as they are.
    w.git_remote(&w.remote_home, &["config", "--global", "--unset", "codex-handoff.testFault"]);
    let facts = env.carried_facts(&w.laptop);
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());
    assert_eq!(env.carried_facts(&remote_wt), facts);
    assert_eq!(std::fs::read(remote_wt.join("README")).unwrap(), b"the untracked one\n");
    assert_eq!(std::fs::read(remote_wt.join("Readme")).unwrap(), b"the staged one\n");

    // Back to this computer, now the one that does not tell case apart: refused in the plan.
    env.git(&w.laptop, &["config", "--global", "codex-handoff.testFault", "case-insensitive"]);
    let before = w.everything();
    for args in [&["1", "local", "--dry-run"][..], &["1", "local"]] {
        w.run(args)
            .fails_with(4, "this computer does not tell file names apart by case")
            .fails_with(4, "`README` and `Readme`");
    }
    assert_unchanged(&before, &w.everything(), "a refused hand-back to a case-insensitive computer");
    let here = w.run(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!((here["owner"].as_str(), here["epoch"].as_u64()), (Some("devbox"), Some(1)));

    // Once one of them is renamed there, the thread comes back.
    std::fs::rename(remote_wt.join("README"), remote_wt.join("README.upper")).unwrap();
    let there = env.carried_facts(&remote_wt);
    w.run(&["1", "local"]).success();
    assert_eq!(env.carried_facts(&w.laptop), there);
    env.git(&w.laptop, &["config", "--global", "--unset", "codex-handoff.testFault"]);
}

/// An older helper is not asked which files collide: what it sends back
/// is looked at here, and refused before anything here changes.
#[cfg(feature = "test-faults")]
#[test]
fn files_that_differ_only_in_case_from_an_older_helper_are_refused_when_they_arrive() {
    let w = World::new(Via::Openssh);
    let env = &w.env;
    w.run(&["thread", "new", "--branch", "feat/case-old"]).success();
    write(&w.laptop, b"docs/Notes.md", b"the staged one\n");
    env.git(&w.laptop, &["add", "docs/Notes.md"]);
    write(&w.laptop, b"docs/notes.md", b"the untracked one\n");
    let out = w.run(&["1", "devbox", "--json"]).success().json();
    let remote_wt = PathBuf::from(out["owner_worktree"].as_str().unwrap());

    w.git_remote(&w.remote_home, &["config", "--global", "codex-handoff.testFault", "helper-protocol-2"]);
    env.git(&w.laptop, &["config", "--global", "codex-handoff.testFault", "case-insensitive"]);
    let here = |w: &World| {
        let refs = env.git(&w.laptop, &["for-each-ref", "--format=%(refname) %(objectname)"]);
        format!("{refs}{}{:?}", env.git(&w.laptop, &["worktree", "list", "--porcelain"]), env.facts(&w.laptop))
    };
    let before = here(&w);
    w.run(&["1", "local"])
        .fails_with(4, "this computer does not tell file names apart by case")
        .fails_with(4, "`docs/Notes.md` and `docs/notes.md`");
    assert_unchanged(&before, &here(&w), "this computer, after refusing what came");
    let shown = w.run(&["thread", "show", "1", "--json"]).success().json();
    assert_eq!((shown["owner"].as_str(), shown["epoch"].as_u64()), (Some("devbox"), Some(1)));

    std::fs::rename(remote_wt.join("docs/notes.md"), remote_wt.join("docs/notes-2.md")).unwrap();
    let there = env.carried_facts(&remote_wt);
    w.run(&["1", "local"]).success();
    assert_eq!(env.carried_facts(&w.laptop), there);
    env.git(&w.laptop, &["config", "--global", "--unset", "codex-handoff.testFault"]);
}

/// A `$TMPDIR` too long for a Unix socket under it (as a Mac's can come
/// close to): the ControlMaster socket and the ssh2 bridge git pushes
/// through still bind, in a private directory elsewhere.
#[test]
fn a_long_tmpdir_leaves_room_for_the_connections_sockets() {
    let mut vias = vec![Via::Openssh];
    if cfg!(all(feature = "ssh2", feature = "test-faults")) {
        vias.push(Via::Ssh2);
    }
    for via in vias {
        let w = World::new(via);
        let env = &w.env;
        let tmp = env.path(&format!("tmp-{}", "t".repeat(120)));
        std::fs::create_dir(&tmp).unwrap();
        env.set_var("TMPDIR", tmp.to_str().unwrap());
        if matches!(via, Via::Ssh2) {
            // An older helper: the snapshot goes by git push, through the bridge's socket.
            w.git_remote(&w.remote_home, &["config", "--global", "codex-handoff.testFault", "helper-protocol-2"]);
        }
        w.run(&["host", "check", "devbox"]).success();
        w.run(&["thread", "new", "--branch", "feat/tmpdir"]).success();
        write(&w.laptop, b"a.txt", b"edited under a long TMPDIR\n");
        let facts = env.carried_facts(&w.laptop);
        let out = w.run(&["1", "devbox", "--json"]).success().json();
        assert_eq!(env.carried_facts(&PathBuf::from(out["owner_worktree"].as_str().unwrap())), facts, "{via:?}");
        w.run(&["1", "local"]).success();
        assert_eq!(env.carried_facts(&w.laptop), facts, "{via:?}");
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "nothing is left in {}", tmp.display());
    }
}
