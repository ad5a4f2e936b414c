//! The command line, as clap definitions. The man page and completions are
//! generated from these.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "git-codex-handoff",
    bin_name = "git codex-handoff",
    version,
    about = "Hand a coding-agent thread, with its exact Git state, to another machine and back",
    long_about = "Hand a coding-agent thread (its conversation and the exact Git state it works in: \
branch, HEAD, staged, unstaged and untracked files) to a remote host over SSH, and back.\n\n\
`git codex-handoff 42 devbox` hands thread 42 to the host `devbox`; `git codex-handoff 42 local` brings it back.",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Print one JSON document on stdout (errors too) instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Show progress on stderr even when it is not a terminal (with --json: as JSON lines).
    #[arg(long, global = true)]
    pub progress: bool,

    #[command(flatten)]
    pub handoff: HandoffArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
pub struct HandoffArgs {
    /// The thread: a number, a UUID (or 6+ hex digits of one), a title, or a Codex thread id (or prefix) or name.
    #[arg(value_name = "THREAD")]
    pub thread: Option<String>,

    /// Where to: a configured host name, a `Host` alias of ~/.ssh/config, or `local` (also `.`) for this computer.
    #[arg(value_name = "HOST")]
    pub host: Option<String>,

    /// Carry the thread on this branch at the destination (when its own has diverged there).
    #[arg(long, value_name = "NAME")]
    pub branch: Option<String>,

    /// Work on a detached HEAD at the destination and leave the branch there alone, even where it is free
    /// (what happens anyway where the branch is checked out in another worktree).
    #[arg(long, conflicts_with = "branch")]
    pub detach: bool,

    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Print the plan and change nothing anywhere.
    #[arg(long)]
    pub dry_run: bool,

    /// Seconds to wait after interrupting a running thread before terminating it
    /// [default: codex-handoff.interruptTimeout, else 10].
    #[arg(long, value_name = "SECS")]
    pub interrupt_timeout: Option<u64>,

    /// Refuse to hand off a running thread instead of interrupting it.
    #[arg(long)]
    pub no_interrupt: bool,

    /// Then go on with the thread there, in this terminal: over the same connection, in its worktree, run
    /// codex-handoff.attachCommand (default: `codex resume <id>` for a Codex thread, else the login shell);
    /// exits with that command's status.
    #[arg(long, conflicts_with = "dry_run")]
    pub attach: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the hosts a thread can be handed to (those with a matching saved project).
    Destinations(DestinationsArgs),
    /// Create, inspect and checkpoint threads.
    #[command(subcommand)]
    Thread(ThreadCommand),
    /// Configure the hosts threads can be handed to.
    #[command(subcommand)]
    Host(HostCommand),
    /// Save the directories that are handoff targets on this machine.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Install the git hooks (pre-commit guard for threads owned elsewhere, ...).
    InstallHooks(InstallHooksArgs),
    /// Install the Codex skill that lets Codex hand off another named thread (in $CODEX_HOME/skills).
    InstallSkill(InstallSkillArgs),
    /// List every setting (git config key) with its value here and its default.
    Config,
    /// Run one of the git hooks `install-hooks` installs (called by the hook itself).
    #[command(hide = true)]
    Hook(HookArgs),
    /// Generate the man page or shell completions (used by `make man` and `make install`).
    #[command(subcommand, hide = true)]
    Generate(GenerateCommand),
    /// Print completion candidates, one per line (used by the shell completions).
    #[command(name = "__complete", hide = true)]
    Complete(CompleteArgs),
    /// The remote-side helper.
    #[command(subcommand, hide = true)]
    Remote(RemoteCommand),
}

#[derive(Debug, Args)]
pub struct DestinationsArgs {
    /// Only hosts that can take this thread.
    #[arg(value_name = "THREAD")]
    pub thread: Option<String>,
    /// Also show hosts that cannot, with the reason.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum ThreadCommand {
    /// Start a thread on the Git state of this worktree.
    New(ThreadNewArgs),
    /// List the threads of this repository.
    List(ThreadListArgs),
    /// Show one thread.
    Show(ThreadArg),
    /// Show a thread's history of snapshots and handoffs.
    Log(ThreadArg),
    /// Record the thread's Git state now (a checkpoint); prints the snapshot id.
    Snapshot(ThreadArg),
    /// Write a thread's latest snapshot into a new worktree (the owner does not change).
    Restore(ThreadRestoreArgs),
    /// Run the agent command of a thread in its worktree.
    Run(ThreadRunArgs),
}

#[derive(Debug, Args)]
pub struct ThreadNewArgs {
    /// A title for the thread.
    #[arg(long, value_name = "T")]
    pub title: Option<String>,
    /// The branch the thread is carried on (default: the current branch).
    #[arg(long, value_name = "B")]
    pub branch: Option<String>,
    /// Link the thread to a Codex CLI session (its UUID or rollout file).
    #[arg(long, value_name = "UUID|PATH")]
    pub codex_session: Option<String>,
}

#[derive(Debug, Args)]
pub struct ThreadListArgs {
    /// All threads of the repository, not only those of the current directory's project.
    #[arg(long)]
    pub all: bool,
    /// The Codex threads working in the worktrees of this repository (id, name, last activity, linked thread, working
    /// directory), from `$CODEX_HOME/sessions`.
    #[arg(long)]
    pub codex: bool,
}

#[derive(Debug, Args)]
pub struct ThreadArg {
    /// The thread: a number, a UUID (or 6+ hex digits of one), a title, or a Codex thread id (or prefix) or name.
    #[arg(value_name = "THREAD")]
    pub thread: String,
}

#[derive(Debug, Args)]
pub struct ThreadRestoreArgs {
    /// The thread: a number, a UUID (or 6+ hex digits of one), a title, or a Codex thread id (or prefix) or name.
    #[arg(value_name = "THREAD")]
    pub thread: String,
    /// The new worktree's directory (must not exist, or be empty).
    #[arg(value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub dir: std::path::PathBuf,
    /// Detach HEAD at the snapshot's commit instead of checking out its branch.
    #[arg(long)]
    pub detach: bool,
}

#[derive(Debug, Args)]
pub struct ThreadRunArgs {
    /// The thread: a number, a UUID (or 6+ hex digits of one), a title, or a Codex thread id (or prefix) or name.
    #[arg(value_name = "THREAD")]
    pub thread: String,
    /// The agent command and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Add a host reachable over SSH.
    Add(HostAddArgs),
    /// List the hosts: those added, and those found in ~/.ssh/config.
    List(HostListArgs),
    /// Remove a host.
    Remove(HostNameArg),
    /// Connect to a host and check its helper: versions, where it is and how it was found, the Codex CLI and CODEX_HOME there.
    Check(HostNameArg),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    Openssh,
    Ssh2,
    Local,
}

#[derive(Debug, Args)]
pub struct HostAddArgs {
    /// A short name for the host (`devbox`).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// How to reach it: anything `ssh` accepts (`me@devbox.example.com`, an alias from ~/.ssh/config).
    #[arg(value_name = "SSH-DESTINATION")]
    pub destination: String,
    /// How to connect (default: openssh where `ssh` is on PATH, else ssh2).
    #[arg(long, value_enum)]
    pub transport: Option<Transport>,
    /// The helper's path on the host (default: `git-codex-handoff`, looked for on its PATH, then through its login shell).
    #[arg(long, value_name = "PATH")]
    pub helper: Option<String>,
}

#[derive(Debug, Args)]
pub struct HostListArgs {
    /// Hosts of ~/.ssh/config are always listed now; kept so that scripts that pass it still work.
    #[arg(long, hide = true)]
    pub ssh_config: bool,
}

#[derive(Debug, Args)]
pub struct HostNameArg {
    /// The host's name, as given to `host add` or as a `Host` alias of ~/.ssh/config.
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Save a directory (default: the current one) as a handoff target.
    Save(ProjectSaveArgs),
    /// List the saved projects.
    List(ProjectListArgs),
    /// Forget a saved project.
    Forget(ProjectForgetArgs),
}

#[derive(Debug, Args)]
pub struct ProjectSaveArgs {
    /// The directory: a repository, or a subdirectory of one (default: the current directory).
    #[arg(value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub dir: Option<std::path::PathBuf>,
    /// Save it on this host instead of this computer.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
}

#[derive(Debug, Args)]
pub struct ProjectListArgs {
    /// List the projects saved on this host.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
}

#[derive(Debug, Args)]
pub struct ProjectForgetArgs {
    /// The saved directory.
    #[arg(value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub dir: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct InstallHooksArgs {
    /// Remove the lines this tool installed.
    #[arg(long)]
    pub uninstall: bool,
}

#[derive(Debug, Args)]
pub struct InstallSkillArgs {
    /// Remove the skill instead.
    #[arg(long)]
    pub uninstall: bool,
}

#[derive(Debug, Args)]
pub struct HookArgs {
    /// The hook's name (`pre-commit`).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The arguments git gave the hook.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARG")]
    pub args: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Print the man page (roff) on stdout.
    Man,
    /// Print a shell's completion script on stdout.
    Completions(CompletionsArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompleteWhat {
    /// Thread numbers of the current repository.
    Threads,
    /// Configured host names.
    Hosts,
}

#[derive(Debug, Args)]
pub struct CompleteArgs {
    #[arg(value_enum, value_name = "WHAT")]
    pub what: CompleteWhat,
}

#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Serve requests (JSON lines) on stdin/stdout.
    Serve(RemoteServeArgs),
    /// Run the command a ticket from `serve` names, in this terminal (for --attach).
    Attach(RemoteAttachArgs),
}

#[derive(Debug, Args)]
pub struct RemoteAttachArgs {
    /// The ticket `serve` gave (hex).
    #[arg(value_name = "TICKET")]
    pub ticket: String,
}

#[derive(Debug, Args)]
pub struct RemoteServeArgs {
    /// Allow only the helper and git's receive/upload-pack on saved projects.
    #[arg(long)]
    pub restricted: bool,
}
