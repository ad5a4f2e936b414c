//! Shell completions, generated from the clap definitions in `cli`.
//!
//! zsh and fish come from clap_complete (fish gets thread numbers and host
//! names added). bash is generated here: it has to plug into git's own
//! completion, which calls `_git_codex_handoff` for `git codex-handoff <TAB>`
//! with its `words`/`cword`/`cur` already set up, and it asks the binary for
//! thread numbers and host names (`git codex-handoff __complete threads|hosts`).

use clap::CommandFactory;

use crate::cli::args::Shell;

const BIN: &str = "git-codex-handoff";

pub fn script(shell: Shell) -> String {
    match shell {
        Shell::Bash => bash(),
        Shell::Zsh => clap_script(clap_complete::Shell::Zsh),
        Shell::Fish => clap_script(clap_complete::Shell::Fish) + FISH_DYNAMIC,
    }
}

fn clap_script(shell: clap_complete::Shell) -> String {
    let mut cmd = without_hidden(&crate::cli::args::Cli::command());
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut buf);
    String::from_utf8(buf).expect("completion scripts are UTF-8")
}

/// The command tree without its hidden subcommands (clap_complete would
/// offer them). Works on the tree before clap's `build()`.
fn without_hidden(cmd: &clap::Command) -> clap::Command {
    // clap wants names that live for the program's life; this runs once per process.
    let name: &'static str = Box::leak(cmd.get_name().to_owned().into_boxed_str());
    let mut out = clap::Command::new(name).disable_help_subcommand(true);
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        out = out.version(&*Box::leak(version.to_owned().into_boxed_str()));
    }
    for arg in cmd.get_arguments() {
        out = out.arg(arg.clone());
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        out = out.subcommand(without_hidden(sub));
    }
    out
}

const FISH_DYNAMIC: &str = r#"
# Thread numbers and host names, asked from git-codex-handoff itself.
function __git_codex_handoff_positionals
    set -l args (commandline -opc)
    set -e args[1]
    test "$args[1]" = codex-handoff; and set -e args[1]
    for a in $args
        string match -q -- '-*' $a; or echo $a
    end
end
function __git_codex_handoff_wants_thread
    set -l pos (__git_codex_handoff_positionals)
    test (count $pos) -eq 0; and return 0
    test (count $pos) -eq 2; and test "$pos[1]" = thread; and contains -- $pos[2] show log snapshot restore run
end
function __git_codex_handoff_wants_host
    set -l pos (__git_codex_handoff_positionals)
    if test (count $pos) -eq 1; and string match -qr '^[0-9a-fA-F-]+$' -- $pos[1]
        return 0
    end
    test (count $pos) -eq 2; and test "$pos[1]" = host; and contains -- $pos[2] remove check
end
complete -c git-codex-handoff -n __git_codex_handoff_wants_thread -f -a "(git-codex-handoff __complete threads 2>/dev/null)"
complete -c git-codex-handoff -n __git_codex_handoff_wants_host -f -a "(git-codex-handoff __complete hosts 2>/dev/null)"
complete -c git-codex-handoff -n "__git_codex_handoff_wants_host; and test (count (__git_codex_handoff_positionals)) -eq 1" -f -a local -d "this computer"
complete -c git-codex-handoff -l host -r -f -a "(git-codex-handoff __complete hosts 2>/dev/null)"
"#;

/// One command path's completion facts.
struct Spec {
    path: String,
    subs: Vec<String>,
    opts: Vec<String>,
    /// `--option` → the kind of its value.
    valopts: Vec<(String, String)>,
    /// The kinds of the positionals, in order.
    positionals: Vec<String>,
}

fn specs(cmd: &clap::Command, path: &str, out: &mut Vec<Spec>) {
    let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    let mut opts = Vec::new();
    let mut valopts = Vec::new();
    let mut positionals = Vec::new();
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        if arg.is_positional() {
            positionals.push(kind(path, arg));
        } else if let Some(long) = arg.get_long() {
            let name = format!("--{long}");
            if arg.get_action().takes_values() {
                valopts.push((name.clone(), kind(path, arg)));
            }
            opts.push(name);
        }
    }
    out.push(Spec {
        path: path.to_owned(),
        subs: subs.iter().map(|s| s.get_name().to_owned()).collect(),
        opts,
        valopts,
        positionals,
    });
    for sub in subs {
        let sub_path = if path.is_empty() { sub.get_name().to_owned() } else { format!("{path} {}", sub.get_name()) };
        specs(sub, &sub_path, out);
    }
}

/// What a value is, for completion: `thread`, `host`, `destination` (a host
/// or `local`), `dir`, `file`, `command`, `choice:a b c`, or `none`.
fn kind(path: &str, arg: &clap::Arg) -> String {
    let value_name = arg.get_value_names().and_then(|v| v.first()).map(|s| s.as_str()).unwrap_or_default();
    let choices: Vec<String> =
        arg.get_possible_values().iter().filter(|v| !v.is_hide_set()).map(|v| v.get_name().to_owned()).collect();
    if !choices.is_empty() {
        return format!("choice:{}", choices.join(" "));
    }
    match value_name {
        "THREAD" => return "thread".into(),
        "HOST" => return "destination".into(),
        "COMMAND" => return "command".into(),
        _ => {}
    }
    let names_a_host =
        arg.get_long() == Some("host") || (arg.get_id() == "name" && matches!(path, "host remove" | "host check"));
    if names_a_host {
        return "host".into();
    }
    match arg.get_value_hint() {
        clap::ValueHint::DirPath => "dir".into(),
        clap::ValueHint::FilePath | clap::ValueHint::AnyPath => "file".into(),
        clap::ValueHint::CommandName | clap::ValueHint::CommandString => "command".into(),
        _ if value_name.contains("PATH") => "file".into(),
        _ => "none".into(),
    }
}

fn bash() -> String {
    let mut cmd = crate::cli::args::Cli::command();
    cmd.build();
    let mut all = Vec::new();
    specs(&cmd, "", &mut all);
    let mut table = String::new();
    let mut values = String::new();
    for s in &all {
        table += &format!(
            "\t\"{}\") subs=\"{}\"; opts=\"{}\"; pos=\"{}\" ;;\n",
            s.path,
            s.subs.join(" "),
            s.opts.join(" "),
            s.positionals.iter().map(|k| k.replace(' ', ",")).collect::<Vec<_>>().join(" ")
        );
        for (opt, kind) in &s.valopts {
            values += &format!("\t\"{} {opt}\") kind=\"{}\" ;;\n", s.path, kind.replace(' ', ","));
        }
    }
    BASH_TEMPLATE.replace("@TABLE@", &table).replace("@VALUES@", &values)
}

const BASH_TEMPLATE: &str = r#"# bash completion for git-codex-handoff                     -*- shell-script -*-
# Generated by `git-codex-handoff generate completions bash` from its
# command-line definitions; do not edit.
#
# `git codex-handoff <TAB>` goes through git's own completion, which calls
# _git_codex_handoff (load git's completion first, or let bash-completion
# load this file on demand); `git-codex-handoff <TAB>` works on its own.

# The facts of one command path: its subcommands, options and positionals.
__git_codex_handoff_spec ()
{
	case "$1" in
@TABLE@	*) subs=""; opts=""; pos="" ;;
	esac
}

# The kind of value the option $2 of command path $1 takes.
__git_codex_handoff_value_kind ()
{
	case "$1 $2" in
@VALUES@	*) kind="" ;;
	esac
}

# Thread numbers or host names, from the binary itself (quietly: nothing on error).
__git_codex_handoff_ask ()
{
	if declare -F __git >/dev/null 2>&1; then
		__git codex-handoff __complete "$1"
	else
		git codex-handoff __complete "$1" 2>/dev/null
	fi
}

# Set COMPREPLY to the words of the newline-separated list $1 that start
# with $2, each after prefix $3; through git's completion (which completes
# with `-o nospace`) each gets the trailing space git's own __gitcomp adds.
__git_codex_handoff_words ()
{
	local IFS=$'\n'
	COMPREPLY=($(compgen -P "${3-}" -W "$1" -- "$2"))
	if [ -n "${__git_codex_handoff_via_git-}" ]; then
		COMPREPLY=("${COMPREPLY[@]/%/ }")
	fi
}

# Set COMPREPLY to the candidates of kind $1 that start with $2 (after prefix $3).
__git_codex_handoff_reply_kind ()
{
	local kind="$1" word="$2" prefix="${3-}" list=""
	case "$kind" in
	thread) list="$(__git_codex_handoff_ask threads)" ;;
	host) list="$(__git_codex_handoff_ask hosts)" ;;
	destination) list="$(__git_codex_handoff_ask hosts)"$'\n'"local" ;;
	choice:*) list="${kind#choice:}"; list="${list//,/$'\n'}" ;;
	dir)
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -d -- "$word"))
		return ;;
	file)
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -f -- "$word"))
		return ;;
	command)
		__git_codex_handoff_words "$(compgen -c -- "$word")" "$word"
		return ;;
	*) COMPREPLY=(); return ;;
	esac
	__git_codex_handoff_words "$list" "$word" "$prefix"
}

# Complete words[cword], where words[$1] is the first word after the command.
__git_codex_handoff_complete_from ()
{
	local i="$1" path="" npos=0 expect="" w subs opts pos kind
	local cur_word="${words[cword]}"
	while [ "$i" -lt "$cword" ]; do
		w="${words[i]}"
		if [ -n "$expect" ]; then
			expect=""
		elif [ "$w" = "--" ]; then
			# Everything after `--` is the command `thread run` runs.
			if [ $((i + 1)) -eq "$cword" ]; then
				__git_codex_handoff_reply_kind command "$cur_word"
			else
				__git_codex_handoff_reply_kind file "$cur_word"
			fi
			return
		elif [[ "$w" == --*=* ]]; then
			:
		elif [[ "$w" == -* ]]; then
			kind=""
			__git_codex_handoff_value_kind "$path" "$w"
			[ -n "$kind" ] && expect=1
		else
			__git_codex_handoff_spec "$path"
			if [ "$npos" -eq 0 ] && [[ " $subs " == *" $w "* ]]; then
				path="${path:+$path }$w"
			else
				npos=$((npos + 1))
			fi
		fi
		i=$((i + 1))
	done
	if [ -n "$expect" ]; then
		__git_codex_handoff_value_kind "$path" "${words[cword - 1]}"
		__git_codex_handoff_reply_kind "$kind" "$cur_word"
		return
	fi
	__git_codex_handoff_spec "$path"
	case "$cur_word" in
	--*=*)
		kind=""
		__git_codex_handoff_value_kind "$path" "${cur_word%%=*}"
		# bash breaks words at `=`: only the value is being replaced.
		__git_codex_handoff_reply_kind "$kind" "${cur_word#*=}"
		return ;;
	-*)
		__git_codex_handoff_words "${opts// /$'\n'}" "$cur_word"
		return ;;
	esac
	local kinds=($pos) candidates=""
	if [ "$npos" -eq 0 ] && [ -n "$subs" ]; then
		candidates="${subs// /$'\n'}"
	fi
	if [ "$npos" -lt "${#kinds[@]}" ]; then
		kind="${kinds[npos]//,/ }"
		if [ -z "$candidates" ]; then
			__git_codex_handoff_reply_kind "$kind" "$cur_word"
			return
		fi
		case "$kind" in
		thread) candidates="$candidates"$'\n'"$(__git_codex_handoff_ask threads)" ;;
		esac
	fi
	__git_codex_handoff_words "$candidates" "$cur_word"
}

# Called by git's completion for `git codex-handoff ...`, with words, cword
# and cur set up (and __git_cmd_idx, the index of `codex-handoff`, in newer gits).
_git_codex_handoff ()
{
	local start="${__git_cmd_idx-}" i
	if [ -z "$start" ]; then
		start=1
		for ((i = 1; i < cword; i++)); do
			if [ "${words[i]}" = codex-handoff ]; then
				start=$i
				break
			fi
		done
	fi
	local __git_codex_handoff_via_git=1
	__git_codex_handoff_complete_from $((start + 1))
}

# `git-codex-handoff ...` on its own.
_git_codex_handoff_standalone ()
{
	local cur words cword prev
	if declare -F _get_comp_words_by_ref >/dev/null 2>&1; then
		_get_comp_words_by_ref -n =: cur words cword prev
	else
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi
	__git_codex_handoff_complete_from 1
}

complete -o bashdefault -o default -F _git_codex_handoff_standalone git-codex-handoff
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_knows_every_visible_command_and_value_kind() {
        let text = bash();
        assert!(
            text.contains("\t\"\") subs=\"destinations thread host project install-hooks install-skill config\""),
            "{text}"
        );
        assert!(text.contains("pos=\"thread destination\""));
        assert!(
            text.contains("\t\"thread show\") subs=\"\"; opts=\"--json --progress --help\"; pos=\"thread\" ;;"),
            "{text}"
        );
        assert!(text.contains("\"host add --transport\") kind=\"choice:openssh,ssh2,local\""));
        assert!(text.contains("\"project save --host\") kind=\"host\""));
        assert!(!text.contains("__complete\")"), "hidden commands stay hidden");
    }
}
