//! Files of a thread whose names differ only in case. A case-insensitive
//! file system (macOS's by default) would make each such group one file,
//! so a thread that has one is refused for such a destination, before
//! anything moves, rather than restored with one file silently in place
//! of two.

use std::collections::BTreeMap;

use gix::bstr::{BString, ByteSlice};

use crate::error::{Error, Result};
use crate::repo::Repo;

/// Are names that differ only in case one file in the directory at `path`
/// (or where it would be made)? Also true where the tests make this
/// machine behave as a Mac would (`case-insensitive`).
pub fn case_insensitive(path: &std::path::Path) -> bool {
    crate::fault::active(crate::fault::Step::CaseInsensitive) || crate::os::case_insensitive(path)
}
/// Groups of paths (each sorted, at least two) that a case-insensitive file
/// system would make one: files whose paths differ only in case, and a file
/// whose path is, up to case, a directory of another path.
pub fn collisions<'a>(paths: impl IntoIterator<Item = &'a [u8]>) -> Vec<Vec<String>> {
    // Folded name -> the files and the directories spelled that way.
    let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut dirs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for path in paths {
        let path = path.to_str_lossy().into_owned();
        let insert = |map: &mut BTreeMap<String, Vec<String>>, key: String, name: &str| {
            let names = map.entry(key).or_default();
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        };
        for (at, _) in path.match_indices('/') {
            let dir = &path[..at];
            insert(&mut dirs, fold(dir), dir);
        }
        insert(&mut files, fold(&path), &path);
    }
    let mut groups: Vec<Vec<String>> = files
        .into_iter()
        .filter_map(|(key, mut names)| {
            names.extend(
                dirs.get(&key).into_iter().flatten().filter(|d| !names.contains(d)).cloned().collect::<Vec<_>>(),
            );
            names.sort();
            (names.len() > 1).then_some(names)
        })
        .collect();
    groups.sort();
    groups
}

/// A name as a case-insensitive file system compares it.
fn fold(name: &str) -> String {
    name.to_lowercase()
}

/// The paths a snapshot of the worktree `repo` would hold: the index's
/// entries and the untracked files git does not ignore.
pub fn worktree_paths(repo: &Repo) -> Result<Vec<BString>> {
    let out = repo.git().run(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])?;
    Ok(out.split(|b| *b == 0).filter(|p| !p.is_empty()).map(BString::from).collect())
}

/// The groups of the worktree `repo`'s files that differ only in case.
pub fn in_worktree(repo: &Repo) -> Result<Vec<Vec<String>>> {
    let paths = worktree_paths(repo)?;
    Ok(collisions(paths.iter().map(|p| p.as_slice())))
}

/// The groups in the trees of these commits (a snapshot and its index commit).
pub fn in_commits(repo: &Repo, commits: &[gix::ObjectId]) -> Result<Vec<Vec<String>>> {
    let mut paths = Vec::new();
    for commit in commits {
        let out = repo.git().run(["ls-tree", "-r", "-z", "--name-only", &commit.to_string()])?;
        paths.extend(out.split(|b| *b == 0).filter(|p| !p.is_empty()).map(BString::from));
    }
    Ok(collisions(paths.iter().map(|p| p.as_slice())))
}

/// Refuse a handoff to `there`, a case-insensitive destination, of a thread
/// (`label`) with these `groups` of files.
pub fn refuse(groups: &[Vec<String>], label: &str, there: &str) -> Result<()> {
    let Some(first) = groups.first() else { return Ok(()) };
    // Names may come from the other machine: escaped for the terminal.
    let named = |group: &Vec<String>| {
        group.iter().map(|p| format!("`{}`", crate::text::printable(p))).collect::<Vec<_>>().join(" and ")
    };
    let more = match groups.get(1) {
        None => String::new(),
        Some(second) => {
            let n = groups.len() - 1;
            format!(" ({n} more such group{}, first {})", if n == 1 { "" } else { "s" }, named(second))
        }
    };
    Err(Error::refused(
        "case_collision",
        format!(
            "{there} does not tell file names apart by case, and {label} has files whose names differ only in case: \
             {}{more}; there they would become one file",
            named(first)
        ),
    )
    .with_help(
        "rename all but one of each group in the thread's worktree (`git mv`), then hand it off again; \
         or keep the thread on a machine whose file system tells case apart",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(paths: &[&str]) -> Vec<Vec<String>> {
        collisions(paths.iter().map(|p| p.as_bytes()))
    }

    #[test]
    fn files_that_differ_only_in_case_are_found() {
        assert_eq!(groups(&["Readme", "README", "src/a.rs"]), vec![vec!["README", "Readme"]]);
        assert_eq!(groups(&["docs/Guide.md", "docs/guide.md", "docs/GUIDE.md"]).len(), 1);
        assert_eq!(groups(&["Ä.txt", "ä.txt"]), vec![vec!["Ä.txt", "ä.txt"]]);
    }

    #[test]
    fn a_file_and_a_directory_that_differ_only_in_case_are_found() {
        assert_eq!(groups(&["lib", "Lib/x.rs"]), vec![vec!["Lib", "lib"]]);
        assert_eq!(groups(&["a/B", "a/b/c"]), vec![vec!["a/B", "a/b"]]);
    }

    #[test]
    fn distinct_names_and_directories_spelled_two_ways_are_not() {
        assert!(groups(&["Readme", "Readme.md", "src/readme", "a/b", "a/c"]).is_empty());
        // Two spellings of one directory, with different files in it: git keeps both paths apart.
        assert!(groups(&["Docs/a", "docs/b"]).is_empty());
        // The same path twice (index and worktree) is one file.
        assert!(groups(&["x", "x"]).is_empty());
    }

    #[test]
    fn the_refusal_names_the_files_and_the_destination() {
        let found = groups(&["Readme", "README", "x/A", "x/a"]);
        let e = refuse(&found, "thread 1", "devbox").unwrap_err();
        assert_eq!(e.code, "case_collision");
        assert!(e.message.contains("devbox") && e.message.contains("`README` and `Readme`"), "{}", e.message);
        assert!(e.message.contains("1 more such group, first `x/A` and `x/a`"), "{}", e.message);
        assert!(refuse(&[], "thread 1", "devbox").is_ok());
        let hostile = vec![vec!["a\u{1b}[2J".to_owned(), "A\u{1b}[2J".to_owned()]];
        let e = refuse(&hostile, "thread 1", "devbox").unwrap_err();
        assert!(!e.message.contains('\u{1b}'), "{:?}", e.message);
    }
}
