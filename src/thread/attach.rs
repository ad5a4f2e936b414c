//! What continues a thread on this machine when a person attaches to it
//! (`--attach`): the command, where it runs and with what environment.
//!
//! The command is `codex-handoff.attachCommand` when set, else `codex resume
//! <id>` for a Codex thread, else the user's login shell. The setting is a
//! `/bin/sh` command line whose placeholders (`{thread}`, `{codex_thread}`,
//! ...) stand for values, never for code: each becomes a quoted reference to
//! a positional parameter (`"${1}"`) and the value is passed as that
//! parameter, so the shell never parses it. A title such as `$(rm -rf ~)`
//! reaches the command as those very characters.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::repo::Repo;
use crate::thread::store::Thread;

/// The placeholders `attachCommand` may hold, each as `{name}`.
pub const PLACEHOLDERS: [&str; 6] = ["thread", "number", "title", "branch", "codex_thread", "worktree"];

/// What to run for a thread, resolved on the machine where it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launch {
    /// The program and its arguments (no shell parses them).
    pub argv: Vec<String>,
    /// The thread's directory in its worktree.
    pub dir: PathBuf,
    /// Variables set for it.
    pub env: Vec<(String, String)>,
    /// What runs, for people.
    pub shown: String,
}

/// Where Codex is on this machine, when it is not on the PATH as it is.
pub type FindCodex<'a> = &'a dyn Fn() -> Option<PathBuf>;

/// What attaching to `thread` runs here, in its worktree.
pub fn launch(repo: &Repo, thread: &Thread, template: Option<&str>, find_codex: FindCodex) -> Result<Launch> {
    let worktree = crate::thread::thread_worktree(repo, thread)?.workdir()?;
    let dir = thread_dir(&worktree, &thread.state.subdirectory)?;
    let codex_id = codex_id(thread)?;
    let mut env = crate::thread::agent_env(repo, thread)?;
    let template = template.map(str::trim).filter(|t| !t.is_empty());
    let (argv, shown) = match (template, &codex_id) {
        (Some(template), _) => {
            let values = Values { thread, worktree: &worktree, codex_id: codex_id.as_deref() };
            let (script, args) = shell_script(template, |name| values.get(name))?;
            // A command that starts Codex finds it where a login finds it.
            if template.contains("codex") && on_path("codex").is_none() {
                if let Some(folder) = find_codex().as_deref().and_then(Path::parent) {
                    env.push(("PATH".into(), prefixed_path(folder)));
                }
            }
            let mut argv = vec!["/bin/sh".to_owned(), "-c".to_owned(), script, "sh".to_owned()];
            argv.extend(args);
            (argv, template.to_owned())
        }
        (None, Some(id)) => {
            let codex = codex_program(find_codex)?;
            if let Some(folder) = codex.parent().filter(|_| codex.is_absolute()) {
                // Codex from npm starts `node` from beside itself (nvm and the like).
                env.push(("PATH".into(), prefixed_path(folder)));
            }
            let codex = codex.to_string_lossy().into_owned();
            (vec![codex, "resume".into(), id.clone()], format!("codex resume {id}"))
        }
        (None, None) => {
            let shell = login_shell();
            // `-l`: a login shell, as after `ssh host`; every common shell takes it alone.
            (vec![shell.clone(), "-l".into()], format!("{shell} (login shell)"))
        }
    };
    Ok(Launch { argv, dir, env, shown })
}

/// The thread's directory: the worktree, or the project's subdirectory in
/// it. The subdirectory comes from a note: it must stay inside.
fn thread_dir(worktree: &Path, subdirectory: &str) -> Result<PathBuf> {
    let root = worktree.canonicalize()?;
    let dir = root.join(subdirectory);
    let dir = dir.canonicalize().unwrap_or(dir);
    if !dir.starts_with(&root) || !dir.is_dir() {
        return Err(Error::refused(
            "bad_subdirectory",
            format!(
                "the thread's directory {subdirectory:?} is not a directory inside its worktree {}",
                root.display()
            ),
        ));
    }
    Ok(dir)
}

/// The thread's Codex thread id, checked: it comes from a note and reaches a command line.
fn codex_id(thread: &Thread) -> Result<Option<String>> {
    let Some(id) = &thread.state.transcript.codex_session else { return Ok(None) };
    if !crate::codex::rollout::is_uuid(id) {
        return Err(Error::refused("bad_codex_thread", format!("the thread's Codex thread id {id:?} is not an id")));
    }
    Ok(Some(id.clone()))
}

struct Values<'a> {
    thread: &'a Thread,
    worktree: &'a Path,
    codex_id: Option<&'a str>,
}

impl Values<'_> {
    fn get(&self, name: &str) -> Result<String> {
        let s = &self.thread.state;
        Ok(match name {
            "thread" => s.uuid.clone(),
            "number" => s.number.to_string(),
            "title" => s.title.clone(),
            "branch" => s.branch.clone().unwrap_or_default(),
            "worktree" => self.worktree.to_string_lossy().into_owned(),
            "codex_thread" => self.codex_id.map(str::to_owned).ok_or_else(|| {
                Error::refused(
                    "no_codex_thread",
                    format!("thread #{} has no Codex thread for {{codex_thread}} in the attach command", s.number),
                )
                .with_help(format!("unset {} or use {{thread}}", crate::config::ATTACH_COMMAND))
            })?,
            other => return Err(Error::usage("bad_placeholder", format!("unknown placeholder {{{other}}}"))),
        })
    }
}

/// Turn `template` (a `/bin/sh` command line) into a script and its
/// positional parameters: each placeholder becomes a quoted reference to a
/// parameter holding its value, quoted to suit where it stands (outside
/// quotes, inside double quotes, inside single quotes). Braces that name no
/// placeholder, or follow `$`, stay as they are.
pub fn shell_script(template: &str, value_of: impl Fn(&str) -> Result<String>) -> Result<(String, Vec<String>)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut quote = Quote::None;
    let mut script = String::with_capacity(template.len());
    let mut names: Vec<&str> = Vec::new();
    let mut values: Vec<String> = Vec::new();
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        let placeholder = (c == '{' && !script.ends_with('$'))
            .then(|| PLACEHOLDERS.iter().copied().find(|name| rest[1..].starts_with(&format!("{name}}}"))))
            .flatten();
        if let Some(name) = placeholder {
            let n = match names.iter().position(|n| *n == name) {
                Some(i) => i + 1,
                None => {
                    let value = value_of(name)?;
                    if value.contains('\0') {
                        return Err(Error::refused("bad_value", format!("{{{name}}} holds a NUL character")));
                    }
                    names.push(name);
                    values.push(value);
                    names.len()
                }
            };
            script += &match quote {
                Quote::None => format!("\"${{{n}}}\""),
                Quote::Double => format!("${{{n}}}"),
                Quote::Single => format!("'\"${{{n}}}\"'"),
            };
            rest = &rest[name.len() + 2..];
            continue;
        }
        script.push(c);
        rest = &rest[c.len_utf8()..];
        match (quote, c) {
            (Quote::None, '\'') => quote = Quote::Single,
            (Quote::None, '"') => quote = Quote::Double,
            (Quote::Single, '\'') | (Quote::Double, '"') => quote = Quote::None,
            (Quote::None | Quote::Double, '\\') => {
                // The escaped character is taken as it is.
                if let Some(next) = rest.chars().next() {
                    script.push(next);
                    rest = &rest[next.len_utf8()..];
                }
            }
            _ => {}
        }
    }
    Ok((script, values))
}

/// Codex: on the PATH, else where `find_codex` says.
fn codex_program(find_codex: FindCodex) -> Result<PathBuf> {
    if let Some(found) = on_path("codex") {
        return Ok(found);
    }
    find_codex().ok_or_else(|| {
        Error::not_found(
            "codex_missing",
            "the Codex CLI is not installed here (not on the PATH, nor through the login shell)",
        )
        .with_help(format!(
            "install it (`npm install -g @openai/codex`), or set {} to the command that continues the thread",
            crate::config::ATTACH_COMMAND
        ))
    })
}

fn on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| {
        candidate.is_absolute()
            && std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// PATH with `folder` in front.
fn prefixed_path(folder: &Path) -> String {
    let current = std::env::var("PATH").unwrap_or_default();
    if current.is_empty() {
        folder.to_string_lossy().into_owned()
    } else {
        format!("{}:{current}", folder.to_string_lossy())
    }
}

/// `$SHELL` (what sshd sets from the user's passwd entry), else `/bin/sh`.
fn login_shell() -> String {
    std::env::var("SHELL").ok().filter(|s| s.starts_with('/')).unwrap_or_else(|| "/bin/sh".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(name: &str) -> Result<String> {
        Ok(match name {
            "thread" => "T".into(),
            "title" => "$(touch pwned) `id` 'q' \"d\" \\ ; & | * ?".into(),
            "branch" => "a$(id)b".into(),
            "worktree" => "/w w".into(),
            _ => return Err(Error::usage("x", name.to_owned())),
        })
    }

    #[test]
    fn placeholders_become_quoted_parameters_wherever_they_stand() {
        let (script, args) = shell_script("echo {title} \"in {title}\" 'lit {branch}' x{thread}", values).unwrap();
        assert_eq!(script, "echo \"${1}\" \"in ${1}\" 'lit '\"${2}\"'' x\"${3}\"");
        assert_eq!(args, ["$(touch pwned) `id` 'q' \"d\" \\ ; & | * ?", "a$(id)b", "T"]);
        // Braces that are not placeholders, and `${...}`, stay as written.
        let (script, args) = shell_script("awk '{print}' ${thread} {nope} \\{thread}", values).unwrap();
        assert_eq!(script, "awk '{print}' ${thread} {nope} \\{thread}");
        assert!(args.is_empty());
    }

    /// The real /bin/sh gets every value back byte for byte, and runs none of it.
    #[test]
    fn the_shell_never_runs_a_value() {
        let dir = tempfile::tempdir().unwrap();
        let template = "printf '%s|' {title} \"{title}\" '{title}' {branch} {worktree}; printf '%s' '{thread}'";
        let (script, args) = shell_script(template, values).unwrap();
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .arg("sh")
            .args(&args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let title = "$(touch pwned) `id` 'q' \"d\" \\ ; & | * ?";
        assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{title}|{title}|{title}|a$(id)b|/w w|T"));
        assert!(!dir.path().join("pwned").exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn an_unknown_value_or_a_nul_is_an_error() {
        assert!(shell_script("echo {codex_thread}", values).is_err());
        let nul = |_: &str| Ok("a\0b".to_owned());
        assert_eq!(shell_script("echo {title}", nul).unwrap_err().code, "bad_value");
    }

    #[test]
    fn a_subdirectory_stays_inside_the_worktree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("wt/sub")).unwrap();
        let wt = dir.path().join("wt");
        assert_eq!(thread_dir(&wt, "sub").unwrap(), wt.canonicalize().unwrap().join("sub"));
        assert_eq!(thread_dir(&wt, "").unwrap(), wt.canonicalize().unwrap());
        for bad in ["..", "../wt/../..", "/etc", "missing"] {
            assert!(thread_dir(&wt, bad).is_err(), "{bad}");
        }
    }
}
