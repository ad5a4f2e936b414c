//! The man page, git-codex-handoff(1): generated from the clap definitions
//! in `cli` (with clap_mangen) plus the sections clap knows nothing about:
//! exit status, configuration, environment, files and JSON output.
//!
//! Deterministic: no date, and the version comes from Cargo's metadata, so
//! the committed `man/git-codex-handoff.1` can be compared byte for byte.

use clap::CommandFactory;
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use clap_mangen::Man;

use crate::cli::settings::{Scope, SETTINGS};

mod hosts;
mod json;

/// The page's name, as `man` and `git help` look it up.
pub const PAGE: &str = "git-codex-handoff";

/// The version of the shape of every `--json` document (its `schema` field).
pub const JSON_SCHEMA: u32 = 1;

/// The whole man page, as roff.
pub fn man_page() -> String {
    let mut cmd = crate::cli::args::Cli::command();
    cmd.build();
    let man = Man::new(cmd.clone())
        .title(PAGE.to_ascii_uppercase())
        .section("1")
        .date("")
        .source(format!("{PAGE} {}", env!("CARGO_PKG_VERSION")))
        .manual("Git Manual");

    let mut page = String::new();
    // The first chunk keeps roff's preamble (it defines the apostrophe string).
    page += &render(|w| man.render_title(w), true);
    page += &strip_heading(&render(|w| man.render_name_section(w), false), "NAME", "NAME");
    page += &synopsis(&cmd);
    page += &render(|w| man.render_description_section(w), false);
    page += &roff(description_extra());
    page += &render(|w| man.render_options_section(w), false);
    page += &commands(&cmd);
    page += &roff(hosts::section());
    page += &roff(exit_status());
    page += &roff(configuration());
    page += &roff(environment());
    page += &roff(files());
    page += &roff(json::section());
    page += &roff(hooks_section());
    page += &roff(security());
    page += &roff(see_also());
    page += &render(|w| man.render_version_section(w), false);
    code_spans(&page)
}

/// clap's help texts mark code with backticks: set it in bold instead.
fn code_spans(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    for line in page.split_inclusive('\n') {
        if line.starts_with('.') || line.matches('`').count() % 2 == 1 {
            out += line;
            continue;
        }
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 1 {
                out += "\\fB";
                out += part;
                out += "\\fR";
            } else {
                out += part;
            }
        }
    }
    out
}

fn render(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>, keep_preamble: bool) -> String {
    let mut buf = Vec::new();
    f(&mut buf).expect("rendering into memory cannot fail");
    let text = String::from_utf8(buf).expect("roff is UTF-8");
    if keep_preamble {
        return text;
    }
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    while lines.first().is_some_and(|l| l.starts_with(".ie \\n(.g .ds Aq") || l.starts_with(".el .ds Aq")) {
        lines.remove(0);
    }
    lines.concat()
}

fn roff(r: Roff) -> String {
    render(|w| r.to_writer(w), false)
}

/// Replace a `.SH OLD` heading line with `.SH NEW`.
fn strip_heading(text: &str, old: &str, new: &str) -> String {
    text.replacen(&format!(".SH {old}\n"), &format!(".SH {new}\n"), 1)
}

/// The visible leaf commands, in the order of `--help`, with their full names.
fn leaves(cmd: &clap::Command) -> Vec<clap::Command> {
    let mut out = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.has_subcommands() {
            out.extend(leaves(sub));
        } else {
            out.push(sub.clone());
        }
    }
    out
}

/// A leaf as shown in the page: the global flags are described once, at the top.
fn for_page(leaf: &clap::Command) -> clap::Command {
    leaf.clone().mut_arg("help", |a| a.hide(true)).mut_arg("progress", |a| a.hide(true))
}

/// One synopsis line per form, like git's own pages.
fn synopsis(cmd: &clap::Command) -> String {
    let mut out = String::from(".SH SYNOPSIS\n");
    // The handoff itself: the root's own arguments, without its subcommands.
    let mut root = clap::Command::new(PAGE)
        .bin_name(cmd.get_bin_name().unwrap_or(PAGE).to_owned())
        .disable_help_flag(true)
        .disable_version_flag(true);
    for arg in cmd.get_arguments().filter(|a| !["help", "version", "progress"].contains(&a.get_id().as_str())) {
        root = root.arg(arg.clone());
    }
    for (i, form) in std::iter::once(root).chain(leaves(cmd).iter().map(for_page)).enumerate() {
        let man = Man::new(form);
        let text = render(|w| man.render_synopsis_section(w), false);
        if i > 0 {
            out += ".br\n";
        }
        out += text.strip_prefix(".SH SYNOPSIS\n").unwrap_or(&text);
    }
    out
}

/// COMMANDS: every visible leaf with its description, synopsis and options.
fn commands(cmd: &clap::Command) -> String {
    let mut out = String::from(".SH COMMANDS\n");
    for leaf in leaves(cmd) {
        let name = leaf.get_bin_name().unwrap_or(leaf.get_name()).to_owned();
        let page = for_page(&leaf);
        let man = Man::new(page.clone());
        let mut r = Roff::new();
        r.control("SS", [name.as_str()]);
        out += &roff(r);
        let synopsis = render(|w| man.render_synopsis_section(w), false);
        out += synopsis.strip_prefix(".SH SYNOPSIS\n").unwrap_or(&synopsis);
        let description = render(|w| man.render_description_section(w), false);
        let description = description.strip_prefix(".SH DESCRIPTION\n").unwrap_or(&description);
        out += ".PP\n";
        out += description;
        if page.get_arguments().any(|a| !a.is_hide_set()) {
            let options = render(|w| man.render_options_section(w), false);
            out += options.strip_prefix(".SH OPTIONS\n").unwrap_or(&options);
        }
    }
    out
}

pub(super) fn paragraph(r: &mut Roff, text: &str) {
    r.control("PP", []);
    r.text(inline_code(text));
}

/// Text where `backticked` spans are set in bold.
fn inline_code(text: &str) -> Vec<Inline> {
    text.split('`').enumerate().map(|(i, part)| if i % 2 == 1 { bold(part) } else { roman(part) }).collect()
}

fn item(r: &mut Roff, term: Vec<Inline>, text: &str) {
    r.control("TP", []);
    r.text(term);
    r.text(inline_code(text));
}

fn preformatted(r: &mut Roff, text: &str) {
    r.control("PP", []);
    r.control("RS", ["4"]);
    r.control("nf", []);
    for line in text.trim_end().lines() {
        r.text([roman(line)]);
    }
    r.control("fi", []);
    r.control("RE", []);
}

fn description_extra() -> Roff {
    let mut r = Roff::new();
    paragraph(
        &mut r,
        "THREAD is a thread number, a UUID, or a UUID prefix of at least 6 hex digits, a title, or a Codex \
         thread's id or name; an ambiguous one is an error that lists the candidates. A Codex thread of any \
         worktree of this repository is found (the Codex App gives each thread a worktree of its own), and the \
         handoff takes the worktree it works in; one of another repository is refused (exit status 3), naming \
         its directory and that repository. HOST is a host (see HOSTS AND TRANSPORTS), or `local` (also `.`) \
         for this computer. In a thread's worktree THREAD may be left out.",
    );
    paragraph(
        &mut r,
        "With no HOST, on a terminal, a picker lists this computer (when the thread is elsewhere) and every \
         host with a matching saved project, probed at once, each with the project there and the round trip; \
         the plan and the confirmation follow the pick. Without a terminal the command stops with exit status \
         2 naming the same choices; under `--json` the error document carries them as `choices`.",
    );
    paragraph(
        &mut r,
        "A thread on one host goes to another (`42 devbox2` while devbox has it) through this computer's object \
         store: devbox departs towards devbox2, the snapshot, notes and transcript pass through this computer's \
         git objects on their way, devbox2 restores the thread and owns it, then devbox lets go. No file of this \
         computer's worktrees changes and no worktree is made here; the plan says `from devbox to devbox2 \
         (through this computer; no files here change)`. A run that stopped half-way is settled by the next: it \
         asks devbox2 whether the thread arrived, then records that here and has devbox let go, or leaves the \
         thread on devbox.",
    );
    paragraph(
        &mut r,
        "A handoff snapshots the thread's Git state (branch, HEAD, staged, unstaged and untracked files) into \
         commits without touching the working tree, pushes the branch, the snapshot and the notes ref to the \
         host, where the helper (`git-codex-handoff remote serve`, the same binary) restores the exact state in \
         a worktree and takes ownership. It shows its plan and asks for confirmation only when stdin and stderr \
         are terminals and `--yes` was not given; `--dry-run` prints the plan and changes nothing anywhere.",
    );
    paragraph(
        &mut r,
        "The helper is started by one fixed command line. When the host's plain PATH lacks it (ssh runs commands \
         through a non-login shell, and installers such as rustup add their folders to PATH in login files only), \
         the host's login shell is asked on the same connection (sh, bash, zsh, fish and csh/tcsh alike), then \
         `~/.cargo/bin`, `~/.local/bin`, `/usr/local/bin` and `/opt/homebrew/bin`; the helper found is used, the \
         handoff says where, and its path is stored in the host's `helper` setting so later handoffs start it \
         directly. A key restricted by a forced command runs that command whatever is asked, so it is never \
         looked up this way.",
    );
    paragraph(
        &mut r,
        "A host takes a thread into a saved project (`project save`) that is a clone of the same repository: one \
         whose root commits agree with this clone's or, when either clone is shallow and so cannot know its \
         roots, one that has a remote URL in common (compared without scheme, user, port and `.git`, so \
         `git@host:a/b.git` and `https://host/a/b` agree). With a shallow clone on either side, the handoff first \
         checks that the two histories meet (the commits where the shallow clone is cut off are known to the \
         other side, or the thread's commits are known to the shallow side) and refuses, saying what to fetch, \
         before anything is sent. A partial clone (`--filter`) fetches the files it lacks from its promisor \
         remote, which must then be reachable from that machine. When no project matches, the error lists each \
         saved project with the reason it did not.",
    );
    paragraph(
        &mut r,
        "Ownership is recorded by machine id (see `codex-handoff.machineId`), never by hostname. Any step may \
         die (a lost connection, a killed process, a full disk): each machine records where a handoff stands \
         before it changes anything, and running the same command again finishes the handoff or rolls the \
         half-done step back, saying what it repaired. Exactly one machine owns the thread throughout. A \
         worktree that a handoff made lets go of its branch when the thread leaves it (HEAD detached at the \
         same commit, files untouched), so the branch can be checked out elsewhere on that machine; the \
         thread takes the branch again when it comes back.",
    );
    paragraph(
        &mut r,
        "Where the thread's branch is checked out in another worktree on the destination (typically `main` in \
         the host's own clone), the thread's worktree there works on a detached HEAD at the thread's commit; \
         the plan says so in one line, and that other worktree and the branch there are never touched. The \
         thread keeps its branch: commits made on the detached HEAD travel with it, and where it arrives and \
         the branch is free (or the branch is checked out in the thread's own worktree there) the branch moves \
         forward to them, fast-forward only. A branch that has diverged there is refused before anything \
         changes, offering `--branch NEW`. The same holds on this computer when a thread comes back while its \
         branch is checked out in another worktree here. `--detach` asks for the detached HEAD even where the \
         branch is free. `thread show` and `thread list` show such a branch as `main (detached on devbox)`.",
    );
    paragraph(
        &mut r,
        "Run as `git codex-handoff`, it works like any git command: `git -C <dir> codex-handoff ...`, aliases \
         (`git config alias.ho codex-handoff`), and `git help codex-handoff` (or `git codex-handoff --help`) \
         for this page.",
    );
    super::manual_attach::description(&mut r, paragraph);
    r
}

fn exit_status() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["EXIT STATUS"]);
    for (code, text) in [
        ("0", "Done."),
        ("1", "Failed."),
        ("2", "Usage: the command line was wrong."),
        ("3", "Not found: a thread, host or project."),
        (
            "4",
            "Refused, because going on could lose work or break a rule: a dirty reused worktree, a diverged \
             branch, a self-handoff, an unsupported destination, a merge or rebase in progress, a commit in a \
             worktree whose thread is on another machine (the pre-commit hook), shallow histories that do not \
             meet, a partial clone whose promisor remote cannot be reached, a host that answers with this \
             computer's own machine id, files whose names differ only in case for a destination whose file \
             system does not tell case apart (macOS's by default), a thread that another computer handed off.",
        ),
        (
            "5",
            "The host could not be reached or authenticated, or the connection was lost mid-way (nothing came \
             for `codex-handoff.ioTimeout`, or it closed): the message names the step and where the thread is, \
             and running the same command again finishes the handoff.",
        ),
        ("6", "The helper is missing on the host, or of an incompatible version."),
    ] {
        item(&mut r, vec![bold(code)], text);
    }
    paragraph(
        &mut r,
        "`thread run`, and a handoff with `--attach`, exit with their command's exit status. Under `--json` an \
         error is also printed on stdout, with its exit code (see JSON OUTPUT).",
    );
    r
}

fn configuration() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["CONFIGURATION"]);
    paragraph(
        &mut r,
        "Settings live in git's config, read with `git config` (so includes, `GIT_CONFIG_GLOBAL` and the XDG \
         location work as for git). Machine-wide ones belong in the global config; per-host ones are written by \
         `host add` as a `[codex-handoff \"<host>\"]` section. A value given on git's command line wins over \
         the config files for one command: `git -c codex-handoff.worktreeRoot=/tmp/wt codex-handoff ...`. \
         `git codex-handoff config` lists every key with its value here (and where it comes from) and its \
         default.",
    );
    for setting in SETTINGS {
        let scope = match setting.scope {
            Scope::Global => "global config",
            Scope::Repository => "repository or global config",
            Scope::Host => "global config, one per host",
        };
        let multi = if setting.multi { "; multi-valued" } else { "" };
        item(
            &mut r,
            vec![bold(setting.key)],
            &format!("{} Default: {}. ({scope}{multi})", setting.description, setting.default),
        );
    }
    r
}

fn environment() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["ENVIRONMENT"]);
    for (name, text) in [
        ("CODEX_HOME", "The Codex CLI's home (default `~/.codex`): linked sessions are read from and written to its `sessions/` folder and `session_index.jsonl`. The helper on a host, whose environment is that of a non-login shell, takes it from the host's login shell when its own environment lacks it."),
        ("CODEX_HANDOFF_THREAD", "Set by `thread run` and `--attach` to the thread's UUID for the command they run; handing off that same thread from inside it is refused."),
        ("CODEX_HANDOFF_TRANSCRIPT", "Set by `thread run`: the file that holds the transcript of a thread without a Codex session."),
        ("GIT_SSH_COMMAND", "As for git: the ssh command (with options) the openssh transport runs, for the helper and for the push."),
        ("SSH_AUTH_SOCK", "The ssh-agent the ssh2 transport logs in with first, before the identity files of ~/.ssh/config."),
        ("NO_COLOR", "When set (and not empty), error reports are not coloured. Otherwise git's `color.ui` decides, as for git's own output."),
        ("GIT_DIR, GIT_WORK_TREE", "As for git: the repository and worktree to work on."),
        ("XDG_STATE_HOME", "Where this machine's id is kept (`git-codex-handoff/machine-id` below it; default `~/.local/state`)."),
    ] {
        item(&mut r, vec![bold(name)], text);
    }
    r
}

fn files() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["FILES"]);
    for (name, text) in [
        ("refs/codex-handoff/threads/<uuid>", "A thread's latest snapshot commit: its tree is the working tree, its parents HEAD, an index commit and a thread-data commit (transcript, intent-to-add paths) chained to the previous one. Travels with the repository."),
        ("refs/notes/codex-handoff", "A JSON note on every snapshot commit: the thread's state, with a `schema` version. `git notes --ref codex-handoff show <commit>` reads one."),
        ("refs/codex-handoff/incoming/...", "Where a push lands on the receiving side; the helper moves it into place under a lock and removes it."),
        ("$GIT_COMMON_DIR/codex-handoff/locks/", "Per-thread locks on this machine (flock: a process that dies holds nothing)."),
        ("$GIT_COMMON_DIR/codex-handoff/worktrees/<uuid>", "The worktree a thread lives (or last lived) in on this machine. Paths do not travel."),
        ("$GIT_COMMON_DIR/codex-handoff/pending/", "Handoffs in flight, so that running the same command again finishes or cleanly restarts one."),
        ("$XDG_STATE_HOME/git-codex-handoff/machine-id", "This machine's id (default `~/.local/state/git-codex-handoff/machine-id`), made on first use. Not kept in `~/.gitconfig`, which is often synced between machines."),
        ("~/.codex/worktrees/<repository>/<number>-<uuid>", "Where arriving threads get new worktrees (see `codex-handoff.worktreeRoot`)."),
        ("<hooks>/pre-commit", "The hook `install-hooks` installs, in `core.hooksPath` or the repository's hooks directory (see HOOKS)."),
    ] {
        item(&mut r, vec![bold(name)], text);
    }
    super::manual_attach::files(&mut r, item);
    r
}

fn hooks_section() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["HOOKS"]);
    paragraph(
        &mut r,
        "`git codex-handoff install-hooks` adds a few lines, between the marker lines `# >>> git-codex-handoff >>>` \
         and `# <<< git-codex-handoff <<<`, to the `pre-commit` hook of the directory git runs hooks from \
         (`core.hooksPath`, else the repository's hooks directory, which linked worktrees share). Existing hook \
         content is kept; running it again changes nothing; `--uninstall` removes only those lines. The lines \
         call `git codex-handoff hook pre-commit`, and do nothing when git-codex-handoff is not installed.",
    );
    paragraph(
        &mut r,
        "The pre-commit check refuses (exit status 4) a commit in a worktree that is the recorded worktree of a \
         thread now owned by another machine, naming that machine and how to bring the thread back \
         (`git codex-handoff <THREAD> local`). Override it once with `git commit --no-verify`, or for good with \
         `git config codex-handoff.allowCommitsElsewhere true`. `make install` also puts the stand-alone hook \
         scripts in `share/git-codex-handoff/hooks`, for use as a `core.hooksPath`.",
    );
    paragraph(
        &mut r,
        "During a handoff the helper writes the host's repository as the host's own \
         user, the way `git fetch` writes yours: what arrives is taken in over the helper's session, not by \
         git's receive-pack, so `pre-receive`, `update`, `post-receive`, `post-update` and `push-to-checkout` \
         do not run (a `pre-receive` that refuses every push does not stop a handoff), and only the thread's \
         own refs under `refs/codex-handoff/` and the thread's branch are written. The hooks of the git \
         commands a handoff runs do run, on both machines: `reference-transaction` for every ref it updates \
         (the thread's branch and HEAD in its worktree) and `post-index-change` for the index it writes. \
         `pre-commit`, `post-commit`, `pre-push` and `post-checkout` do not (no commit is made on a branch, \
         nothing is pushed with git push, files are written by `read-tree`). A `reference-transaction` hook \
         that refuses an update stops that step like any failure: the handoff is rolled back, the message says \
         where the thread is, and running the same command again once the hook allows it finishes the handoff.",
    );
    r
}

fn security() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["SECURITY"]);
    paragraph(&mut r, "What arrives from the other machine is checked before anything is written: the thread is the one \
        the request names, a Codex thread's file goes only where Codex here keeps it, and a note naming another file, a \
        path outside the worktree or a bad branch is refused (exit status 4). Titles and branch names are shown with \
        control characters escaped. A key given `restrict,command=\"/path/to/git-codex-handoff remote serve --restricted\"` \
        in the host's `~/.ssh/authorized_keys` runs only the helper and git on projects the host's user saved there, and \
        changes no configuration; without `restrict`, `ssh -L` through the host would still work. A request about a \
        thread's state goes on only when its session began that thread in that repository.");
    paragraph(&mut r, "Packs are taken in as the receiving repository's git would take them: one this computer asked for \
        with the object checks of `git fetch` there (fetch.fsckObjects, else transfer.fsckObjects, with fetch.fsck.<msg-id> \
        and fetch.fsck.skipList; as for git's fetch, fsck.<msg-id> does not apply), one sent to the host with those of \
        `git receive-pack` (receive.fsckObjects, receive.fsck.*). A pack waits in a quarantine under `objects/` until \
        every check passed; one that fails is refused with git's own reason (exit status 4) and nothing of it is kept. \
        Every stream of raw bytes (packs, long transcripts, Git LFS objects, submodule snapshots) has a ceiling on the \
        receiving side, receive.maxInputSize where that repository sets it (0: none), else 4 GiB: a size announced over \
        it is refused before a byte is written, git checks it again while the bytes stream, and a partial file is \
        removed. A snapshot's submodule urls that are options or `ext::` commands, paths with `.git` in any spelling, \
        and settings beyond core.autocrlf and core.eol are refused; git-lfs gets content only from this machine's LFS \
        storage, never from a server a snapshot's `.lfsconfig` names.");
    r
}

fn see_also() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["SEE ALSO"]);
    r.text([
        bold("git"),
        roman("(1), "),
        bold("git-worktree"),
        roman("(1), "),
        bold("git-notes"),
        roman("(1), "),
        bold("githooks"),
        roman("(5), "),
        bold("git-config"),
        roman("(1), "),
        bold("ssh"),
        roman("(1), "),
        italic("DESIGN.md"),
        roman(" beside the project."),
    ]);
    r
}
