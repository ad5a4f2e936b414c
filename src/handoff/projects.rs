//! The projects saved on this machine, as the helper sees them: which one a
//! thread's repository matches, and, when none does, why each did not.

use std::path::{Path, PathBuf};

use gix::ObjectId;
use serde::Deserialize;
use serde_json::{json, Value};

use super::wire::ProjectMatch;
use crate::config;
use crate::error::{Error, Result};
use crate::fingerprint::{self, Identity};
use crate::repo::Repo;

pub(super) struct SavedProject {
    pub dir: PathBuf,
    pub repo: Option<Repo>,
}

pub(super) fn saved_projects() -> Result<Vec<SavedProject>> {
    Ok(config::projects()?
        .into_iter()
        .map(|dir| {
            let repo = Repo::discover_at(&dir).ok().filter(|r| r.gix.workdir().is_some());
            SavedProject { dir, repo }
        })
        .collect())
}

/// The common git dirs of the saved projects' repositories.
pub fn saved_repositories() -> Result<Vec<PathBuf>> {
    Ok(saved_projects()?.into_iter().filter_map(|p| p.repo.map(|r| r.common_dir())).collect())
}

/// The repository of a saved project whose common git dir is `path`; nothing else may be written.
pub(super) fn project_repo(path: &str) -> Result<Repo> {
    for project in saved_projects()? {
        if let Some(repo) = project.repo {
            if repo.common_dir() == Path::new(path) {
                return Ok(repo);
            }
        }
    }
    Err(Error::refused("not_a_project", format!("{path} is not the repository of a saved project here"))
        .with_help("save it first with `git codex-handoff project save <DIR>`"))
}

fn subdirectory_of(repo: &Repo, dir: &Path) -> String {
    let root = repo.workdir().ok().and_then(|r| r.canonicalize().ok());
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    root.and_then(|r| dir.strip_prefix(r).ok().map(|p| p.to_string_lossy().into_owned())).unwrap_or_default()
}

/// Every saved project with what it is recognised by.
pub fn projects() -> Result<Value> {
    let list: Vec<Value> = saved_projects()?
        .into_iter()
        .map(|p| {
            let identity = p.repo.as_ref().and_then(|repo| Identity::of(repo).ok());
            let subdirectory = p.repo.as_ref().map(|repo| subdirectory_of(repo, &p.dir));
            json!({
                "path": p.dir.to_string_lossy(),
                "exists": p.repo.is_some(),
                "fingerprint": identity.as_ref().and_then(Identity::value),
                "fingerprint_kind": identity.as_ref().filter(|i| i.value().is_some()).map(Identity::kind),
                "remotes": identity.as_ref().map(|i| i.urls.clone()),
                "shallow": identity.as_ref().map(Identity::is_shallow),
                "subdirectory": subdirectory,
            })
        })
        .collect();
    Ok(json!({ "projects": list }))
}

/// Requests that would change this machine's configuration.
pub(super) fn changes_configuration(op: &str) -> bool {
    matches!(op, "project_save" | "project_forget")
}

/// Over a restricted key only projects this machine's own user saved are reachable.
pub(super) fn refused_over_restricted_key(op: &str) -> Error {
    Error::refused(
        "restricted",
        format!("{op} is not allowed with a restricted key: it would change this machine's configuration"),
    )
    .with_help("save or forget projects on that machine itself, without the restricted key")
}

pub(super) fn project_save(path: &Path) -> Result<Value> {
    let dir = validate_project_dir(path)?;
    let added = config::save_project(&dir)?;
    Ok(json!({ "path": dir.to_string_lossy(), "added": added }))
}

pub(super) fn project_forget(path: &Path) -> Result<Value> {
    let dir = crate::repo::absolute(path);
    let removed = config::forget_project(&dir)?;
    if !removed {
        return Err(Error::not_found("project_not_found", format!("{} is not a saved project", dir.display())));
    }
    Ok(json!({ "path": dir.to_string_lossy(), "removed": true }))
}

/// A project must be a directory inside a git worktree, with a UTF-8 path
/// (saved in git's config and sent over the wire as text).
pub fn validate_project_dir(dir: &Path) -> Result<PathBuf> {
    let dir = dir.canonicalize().map_err(|e| {
        Error::not_found("project_not_found", format!("{} does not exist", dir.display())).with_source(e)
    })?;
    if dir.to_str().is_none() {
        return Err(Error::refused("non_utf8_path", format!("{} is not a UTF-8 path", dir.display()))
            .with_help("projects are saved as text: rename the directory (or a parent) to a UTF-8 name"));
    }
    let repo = Repo::discover_at(&dir)?;
    repo.workdir()?;
    Ok(dir)
}

/// What the client says about its clone. Everything but `fingerprint` and
/// `subdirectory` is absent from clients of the first protocol.
#[derive(Deserialize)]
pub(super) struct FindParams {
    /// The first protocol's single value: the roots, or `url:` and a URL digest.
    #[serde(default)]
    fingerprint: Option<String>,
    #[serde(default)]
    subdirectory: String,
    #[serde(default)]
    roots: Option<String>,
    /// The client's normalised remote URLs.
    #[serde(default)]
    urls: Option<Vec<String>>,
    /// Where the client's shallow history under `heads` is cut off.
    #[serde(default)]
    shallow: Vec<String>,
    /// The thread's HEAD commit.
    #[serde(default)]
    head: Option<String>,
    /// The HEAD commits of the thread's snapshots (the history a push carries).
    #[serde(default)]
    heads: Vec<String>,
    /// What the user calls this machine (`devbox`), for the messages.
    #[serde(default)]
    host: Option<String>,
}

/// Why a saved project is not the thread's.
enum Mismatch {
    Gone,
    NotAWorktree,
    Empty,
    DifferentRoots,
    DifferentRemotes(Vec<String>),
    Subdirectory { root: PathBuf, saved: String },
}

pub(super) fn find_project(p: FindParams, machine: &str) -> Result<Value> {
    let head = p.head.as_deref().map(parse_commit).transpose()?;
    let heads = p.heads.iter().map(|h| parse_commit(h)).collect::<Result<Vec<_>>>()?;
    let boundary = p.shallow.iter().map(|b| parse_commit(b)).collect::<Result<Vec<_>>>()?;
    let mut found: Vec<(u8, ProjectMatch)> = Vec::new();
    let mut mismatches: Vec<(PathBuf, Mismatch)> = Vec::new();
    for project in saved_projects()? {
        let Some(repo) = &project.repo else {
            let why = if project.dir.exists() { Mismatch::NotAWorktree } else { Mismatch::Gone };
            mismatches.push((project.dir, why));
            continue;
        };
        let identity = match Identity::of(repo) {
            Ok(identity) if identity.value().is_some() => identity,
            _ => {
                mismatches.push((project.dir, Mismatch::Empty));
                continue;
            }
        };
        let matched_by = match same_repository(&p, &identity) {
            Ok(by) => by,
            Err(why) => {
                mismatches.push((project.dir, why));
                continue;
            }
        };
        let saved = subdirectory_of(repo, &project.dir);
        if saved != p.subdirectory {
            let root = repo.workdir().unwrap_or_default();
            mismatches.push((project.dir, Mismatch::Subdirectory { root, saved }));
            continue;
        }
        let head_known = head.is_some_and(|h| repo.gix.has_object(h));
        let unknown_heads: Vec<String> =
            heads.iter().filter(|h| !repo.gix.has_object(**h)).map(ObjectId::to_string).collect();
        let boundary_known = boundary.iter().all(|b| repo.gix.has_object(b));
        // Roots say most; among URL matches, one that shares the thread's history.
        let rank = match (matched_by, head_known || (boundary_known && !boundary.is_empty())) {
            ("roots", _) => 0,
            (_, true) => 1,
            _ => 2,
        };
        let answer = ProjectMatch {
            repo: repo.common_dir().to_string_lossy().into_owned(),
            project: project.dir.to_string_lossy().into_owned(),
            matched_by: Some(matched_by.to_owned()),
            shallow: identity.shallow.iter().map(ObjectId::to_string).collect(),
            head_known,
            unknown_heads,
            boundary_known,
        };
        found.push((rank, answer));
    }
    if let Some((_, best)) = found.into_iter().min_by_key(|(rank, _)| *rank) {
        return serde_json::to_value(best)
            .map_err(|e| Error::failed("json", "could not encode the answer").with_source(e));
    }
    Err(no_match(&p, p.host.as_deref().unwrap_or(machine), &mismatches))
}

fn parse_commit(hex: &str) -> Result<ObjectId> {
    ObjectId::from_hex(hex.as_bytes()).map_err(|_| Error::usage("bad_request", format!("{hex:?} is not a commit id")))
}

/// Roots decide when both clones know theirs; otherwise a remote URL in common does.
fn same_repository(p: &FindParams, project: &Identity) -> std::result::Result<&'static str, Mismatch> {
    let Some(urls) = &p.urls else {
        // The first protocol: one value, the roots or a URL digest.
        let wanted = p.fingerprint.as_deref().unwrap_or_default();
        return if wanted.starts_with("url:") {
            project
                .urls
                .iter()
                .any(|u| fingerprint::url_digest(u) == wanted)
                .then_some("url")
                .ok_or_else(|| Mismatch::DifferentRemotes(project.urls.clone()))
        } else {
            (project.roots.as_deref() == Some(wanted)).then_some("roots").ok_or(Mismatch::DifferentRoots)
        };
    };
    if let (Some(theirs), Some(mine)) = (&p.roots, &project.roots) {
        return if theirs == mine { Ok("roots") } else { Err(Mismatch::DifferentRoots) };
    }
    if project.urls.iter().any(|u| urls.contains(u)) {
        Ok("url")
    } else {
        Err(Mismatch::DifferentRemotes(project.urls.clone()))
    }
}

/// "No matching project", with each saved project's reason and a way forward
/// that never suggests saving what is saved already.
fn no_match(p: &FindParams, host: &str, mismatches: &[(PathBuf, Mismatch)]) -> Error {
    let at = if p.subdirectory.is_empty() { String::new() } else { format!(" (subdirectory {})", p.subdirectory) };
    let mut message = format!("no saved project for this repository{at}");
    if mismatches.is_empty() {
        message.push_str("; no project is saved there");
    } else {
        message.push_str("; saved there:");
    }
    let ours = p.urls.as_ref().filter(|u| !u.is_empty()).map(|u| u.join(", "));
    for (dir, why) in mismatches {
        let text = match why {
            Mismatch::Gone => "the directory is gone".to_owned(),
            Mismatch::NotAWorktree => "no longer inside a git worktree".to_owned(),
            Mismatch::Empty => "a repository without commits or remotes".to_owned(),
            Mismatch::DifferentRoots => "a different repository (its root commits differ from this clone's)".to_owned(),
            Mismatch::DifferentRemotes(theirs) => {
                let theirs = if theirs.is_empty() { "none".to_owned() } else { theirs.join(", ") };
                match &ours {
                    Some(ours) => format!(
                        "different remotes ({theirs} there, {ours} here), and a shallow clone is known only by its remotes"
                    ),
                    None => format!("different remotes ({theirs})"),
                }
            }
            Mismatch::Subdirectory { saved, .. } => format!(
                "the same repository, but saved at {} while the thread works in {}",
                describe_subdirectory(saved),
                describe_subdirectory(&p.subdirectory)
            ),
        };
        message.push_str(&format!("\n  {}: {text}", home_relative(dir)));
    }
    let mut hints = Vec::new();
    for (_, why) in mismatches {
        if let Mismatch::Subdirectory { root, .. } = why {
            let wanted = if p.subdirectory.is_empty() { root.clone() } else { root.join(&p.subdirectory) };
            let hint = format!(
                "save the thread's directory: `git codex-handoff project save --host {host} {}`",
                shell_word(&wanted.to_string_lossy())
            );
            if !hints.contains(&hint) {
                hints.push(hint);
            }
        }
    }
    if mismatches.iter().any(|(_, why)| matches!(why, Mismatch::DifferentRemotes(_))) {
        hints.push(match &ours {
            Some(ours) => format!(
                "if a clone there is one of this repository, give it the remote this clone has ({}) or fetch its \
                 full history (`git fetch --unshallow`)",
                ours.split(", ").next().unwrap_or_default()
            ),
            None => {
                "if a clone there is one of this repository, fetch its full history (`git fetch --unshallow`)".into()
            }
        });
    }
    if hints.is_empty() {
        hints.push(format!(
            "clone the repository on {host} and save the clone: `git codex-handoff project save` in it there, \
             or `git codex-handoff project save --host {host} <DIR>` from here"
        ));
    }
    let mut help = hints.join("; or ");
    if mismatches.iter().any(|(_, why)| matches!(why, Mismatch::Gone | Mismatch::NotAWorktree)) {
        help.push_str(&format!(
            ". Forget a project that is gone with `git codex-handoff project forget <DIR>` on {host}"
        ));
    }
    Error::not_found("no_matching_project", message).with_help(help)
}

fn describe_subdirectory(subdirectory: &str) -> String {
    if subdirectory.is_empty() {
        "the repository's root".to_owned()
    } else {
        format!("subdirectory {subdirectory}")
    }
}

/// A path as one word of a POSIX shell command line.
pub(super) fn shell_word(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:@%,".contains(c)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// `~/work/app` rather than `/home/me/work/app` (for reading, not for a command line).
fn home_relative(path: &Path) -> String {
    match std::env::var_os("HOME").map(PathBuf::from) {
        Some(home) if !home.as_os_str().is_empty() => match path.strip_prefix(&home) {
            Ok(rest) => format!("~/{}", rest.display()),
            Err(_) => path.display().to_string(),
        },
        _ => path.display().to_string(),
    }
}
