//! The man page's text on going on with a thread where it is: `--attach`
//! and the Codex skill (paragraphs of DESCRIPTION, FILES, JSON OUTPUT).

use clap_mangen::roff::{bold, Inline, Roff};

/// Add the DESCRIPTION paragraphs with `paragraph`.
pub fn description(r: &mut Roff, paragraph: fn(&mut Roff, &str)) {
    for text in DESCRIPTION {
        paragraph(r, text);
    }
}

/// Add the FILES entries with `item`.
pub fn files(r: &mut Roff, item: fn(&mut Roff, Vec<Inline>, &str)) {
    for (name, text) in FILES {
        item(r, vec![bold(name)], text);
    }
}

const FILES: [(&str, &str); 2] = [
    ("$CODEX_HOME/skills/git-codex-handoff/SKILL.md", "The Codex skill `install-skill` writes (see DESCRIPTION)."),
    (
        "$XDG_STATE_HOME/git-codex-handoff/attach/",
        "Tickets for `--attach` on a host: what to run, readable by its user only, used once within a minute.",
    ),
];

/// JSON OUTPUT shapes.
pub const JSON: [(&str, &str); 1] = [(
    "install-skill",
    r#"{"schema": 1, "skill": "git-codex-handoff", "path": "...",
 "change": "installed" | "updated" | "unchanged" | "removed" | "absent"}"#,
)];

const DESCRIPTION: [&str; 3] = [
    "`--attach` goes on with the thread where it arrived, in the same terminal. Once the thread is there (or at \
     once, when it already was), the helper works out what to run in the thread's worktree, and this computer \
     starts it over the handoff's own connection with a terminal of its own there (`ssh -t`): \
     `codex-handoff.attachCommand` when set, else `codex resume <id>` for a Codex thread (Codex looked for on the \
     PATH, then through the login shell), else the user's login shell. `git codex-handoff 42 local --attach` \
     does the same on this computer. The command runs as the thread's agent (as with `thread run`), so handing \
     the thread on from elsewhere interrupts it first; the exit status is the command's. Without a terminal \
     (stdin and stdout), `--attach` is refused before anything happens. A key restricted to handoffs gets the \
     handoff, not the session.",
    "`codex-handoff.attachCommand` is a `/bin/sh` command line. Its placeholders `{thread}` (the UUID), \
     `{number}`, `{title}`, `{branch}`, `{codex_thread}` and `{worktree}` are values, never code: each becomes \
     a quoted reference to a positional parameter that holds the value, so a title such as `$(rm -rf ~)` \
     reaches the command as those characters, inside quotes or out. Only a command that itself evaluates its \
     arguments again (`sh -c \"... {title}\"`) would run them. For example \
     `git config --global codex-handoff.attachCommand 'tmux new -A -s thread-{number} codex resume {codex_thread}'`.",
    "`git codex-handoff install-skill` writes a Codex skill, `$CODEX_HOME/skills/git-codex-handoff/SKILL.md`, \
     which Codex offers its model with no further setup: it tells Codex when and how to hand off another, named \
     thread (`git codex-handoff <THREAD> <HOST> --yes --json`), how to list the hosts that can take it, how to \
     read the JSON answer, and that a thread cannot hand itself off (Codex names the asking thread in \
     `CODEX_THREAD_ID`, and such a handoff is refused). Running it again changes nothing; `--uninstall` removes \
     the skill. A `SKILL.md` there that this tool did not write is left alone, and the command is refused.",
];
