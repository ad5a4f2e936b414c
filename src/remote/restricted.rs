//! `remote serve --restricted`: for an authorized_keys forced command
//! (`command="git-codex-handoff remote serve --restricted"`). sshd hands the
//! client's command over in SSH_ORIGINAL_COMMAND; only the helper and git's
//! receive-pack/upload-pack on saved projects are allowed.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What the restricted helper may do for one connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Allowed {
    /// Run the helper protocol.
    Serve,
    /// Run `git <service> <repository>` for a saved project's repository.
    Git { service: &'static str, repository: PathBuf },
}

/// Decide on the client's command (`None`: an interactive login).
pub fn decide(original: Option<&str>, saved_repositories: &[PathBuf]) -> Result<Allowed> {
    let refused = |what: String| {
        Error::refused(
            "restricted",
            format!("this key may only run git-codex-handoff and git on saved projects; refused: {what}"),
        )
        .with_help("use `git codex-handoff` from the other machine, or a different key for a shell")
    };
    let Some(original) = original.filter(|c| !c.trim().is_empty()) else {
        return Err(refused("an interactive login".into()));
    };
    let words = split_words(original).ok_or_else(|| refused(original.to_owned()))?;
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        [program, "remote", "serve"] if is_helper(program) => Ok(Allowed::Serve),
        [program, path] | ["git", program, path] => {
            let service = service(program).ok_or_else(|| refused(original.to_owned()))?;
            let repository = saved_repository(path, saved_repositories)
                .ok_or_else(|| refused(format!("{service} of {path}, which is not a saved project")))?;
            Ok(Allowed::Git { service, repository })
        }
        _ => Err(refused(original.to_owned())),
    }
}

fn is_helper(program: &str) -> bool {
    Path::new(program).file_name().is_some_and(|name| name == "git-codex-handoff")
}

/// `git-receive-pack` or `receive-pack` (after `git`), and upload-pack.
fn service(program: &str) -> Option<&'static str> {
    match program.trim_start_matches("git-") {
        "receive-pack" => Some("receive-pack"),
        "upload-pack" => Some("upload-pack"),
        _ => None,
    }
}

/// The saved repository `path` names (its git dir or its worktree), or one
/// of its submodules' repositories (under its `modules/`), canonical.
fn saved_repository(path: &str, saved: &[PathBuf]) -> Option<PathBuf> {
    let path = Path::new(path).canonicalize().ok()?;
    saved.iter().find_map(|git_dir| {
        let git_dir = git_dir.canonicalize().ok()?;
        let worktree = git_dir.parent().filter(|_| git_dir.file_name().is_some_and(|n| n == ".git"));
        if path == git_dir || worktree == Some(path.as_path()) {
            return Some(git_dir);
        }
        let module = path.starts_with(git_dir.join("modules")) && path.join("HEAD").is_file();
        module.then_some(path.clone())
    })
}

/// Split a command line as a POSIX shell would (quotes and backslashes; no
/// expansions). `None` for unbalanced quotes or shell syntax we never send.
pub fn split_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        other => word.push(other),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            escaped @ ('"' | '\\' | '$' | '`') => word.push(escaped),
                            other => {
                                word.push('\\');
                                word.push(other);
                            }
                        },
                        '$' | '`' => return None,
                        other => word.push(other),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next()?);
            }
            ';' | '&' | '|' | '<' | '>' | '(' | ')' | '$' | '`' => return None,
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(split_words("git-receive-pack '/a b/it'\\''s.git'").unwrap(), ["git-receive-pack", "/a b/it's.git"]);
        assert_eq!(split_words("x \"a\\\"b\" c\\ d").unwrap(), ["x", "a\"b", "c d"]);
        assert!(split_words("git-upload-pack '/x'; rm -rf /").is_none());
        assert!(split_words("echo $(id)").is_none());
        assert!(split_words("'unbalanced").is_none());
    }

    #[test]
    fn only_the_helper_and_git_on_saved_projects() {
        let dir = tempfile::tempdir().unwrap();
        let git_dir = dir.path().join("project/.git");
        std::fs::create_dir_all(&git_dir).unwrap();
        std::fs::create_dir_all(dir.path().join("other")).unwrap();
        let saved = vec![git_dir.clone()];
        let canonical = git_dir.canonicalize().unwrap();
        assert_eq!(decide(Some("/opt/bin/git-codex-handoff remote serve"), &saved).unwrap(), Allowed::Serve);
        for command in [
            format!("git-receive-pack '{}'", git_dir.display()),
            format!("git upload-pack '{}'", dir.path().join("project").display()),
        ] {
            assert!(
                matches!(decide(Some(&command), &saved).unwrap(), Allowed::Git { repository, .. } if repository == canonical)
            );
        }
        for command in [
            "id".to_owned(),
            "git-codex-handoff remote serve --restricted; id".to_owned(),
            format!("git-receive-pack '{}'", dir.path().join("other").display()),
            "sh -c 'git-codex-handoff remote serve'".to_owned(),
        ] {
            assert_eq!(decide(Some(&command), &saved).unwrap_err().exit_code(), 4, "{command}");
        }
        assert!(decide(None, &saved).is_err());
    }

    #[test]
    fn a_saved_project_s_module_repositories_and_nothing_beside_them() {
        let dir = tempfile::tempdir().unwrap();
        let git_dir = dir.path().join("project/.git");
        let module = git_dir.join("modules/vendor/lib");
        std::fs::create_dir_all(&module).unwrap();
        std::fs::write(module.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::create_dir_all(git_dir.join("modules/not-a-repository")).unwrap();
        let saved = vec![git_dir];
        let command = format!("git-receive-pack '{}'", module.display());
        assert!(
            matches!(decide(Some(&command), &saved).unwrap(), Allowed::Git { repository, .. } if repository == module.canonicalize().unwrap())
        );
        for path in [
            dir.path().join("project/.git/modules/not-a-repository"),
            dir.path().join("project/.git/modules/vendor/lib/../../../../project-elsewhere"),
        ] {
            let command = format!("git-receive-pack '{}'", path.display());
            assert!(decide(Some(&command), &saved).is_err(), "{command}");
        }
    }
}
