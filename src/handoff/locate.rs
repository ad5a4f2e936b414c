//! Finding the thread's project on a host, and, when either clone is
//! shallow, checking that the two histories meet before anything moves:
//! git would otherwise stop half-way ("shallow update not allowed",
//! "unresolved deltas") or send the whole history.

use gix::ObjectId;
use serde_json::json;

use super::projects::shell_word;
use super::wire::ProjectMatch;
use crate::error::{Error, Result};
use crate::fingerprint::{self, Identity};
use crate::git::Git;
use crate::remote::transport::Connection;
use crate::repo::Repo;

/// The host's project for this repository (and `subdirectory`), whose
/// history meets this clone's at `head` (the thread's HEAD commit).
/// `identity` is this clone's (`Identity::of_this_clone`).
pub fn find_project(
    conn: &mut Connection,
    repo: &Repo,
    identity: &Identity,
    subdirectory: &str,
    head: Option<ObjectId>,
) -> Result<ProjectMatch> {
    let boundaries = fingerprint::boundaries_under(repo, head, &identity.shallow)?;
    let found: ProjectMatch = conn.call(
        "find_project",
        json!({
            "fingerprint": identity.legacy(),
            "subdirectory": subdirectory,
            "roots": identity.roots,
            "urls": identity.urls,
            "shallow": boundaries.iter().map(ObjectId::to_string).collect::<Vec<_>>(),
            "head": head.map(|h| h.to_string()),
            "host": conn.host.name,
        }),
    )?;
    histories_meet(repo, &conn.host.name, &boundaries, head, &found)?;
    Ok(found)
}

/// Refuse when what one side would send cannot connect to what the other has.
fn histories_meet(
    repo: &Repo,
    host: &str,
    boundaries: &[ObjectId],
    head: Option<ObjectId>,
    found: &ProjectMatch,
) -> Result<()> {
    // Without a HEAD commit no history moves; an older helper says nothing to check with.
    let (Some(head), Some(matched_by)) = (head, found.matched_by.as_deref()) else { return Ok(()) };
    if found.head_known {
        return Ok(());
    }
    let short_head = short(&head);
    if !boundaries.is_empty() && !found.boundary_known {
        let cut = list(boundaries);
        return Err(refused(
            format!(
                "this clone is shallow, and {host}'s clone has neither the thread's commit {short_head} nor the \
                 history where this clone is cut off ({cut})"
            ),
            format!(
                "fetch more history here (`git fetch --unshallow`), or fetch in {host}'s clone ({}) so it has {cut}",
                shell_word(&found.project)
            ),
        ));
    }
    if found.shallow.is_empty() {
        return Ok(());
    }
    let mut cut = Vec::new();
    for hex in &found.shallow {
        let id = ObjectId::from_hex(hex.as_bytes()).map_err(|_| {
            Error::failed("helper_garbled", format!("{host} named {hex:?} as a commit where its clone is cut off"))
        })?;
        cut.push(id);
    }
    let deepen = format!("deepen the clone on {host} (`git -C {} fetch --unshallow`)", shell_word(&found.project));
    let mut builds_on = false;
    for boundary in cut.iter().filter(|c| repo.gix.has_object(**c)) {
        match merge_base(repo, head, *boundary)? {
            Some(base) if base == *boundary => builds_on = true,
            Some(_) => {
                return Err(refused(
                    format!(
                        "{host}'s clone is shallow, cut off at {}, and the thread's commit {short_head} branches off \
                         below that: {host} does not have the history it needs",
                        short(boundary)
                    ),
                    deepen,
                ))
            }
            None => {}
        }
    }
    // Matched by roots, the host's full history of the default branch is there; by URL only, it must be shown.
    if !builds_on && matched_by != "roots" {
        return Err(refused(
            format!(
                "{host}'s clone of this repository is shallow, cut off at {}; it does not have the thread's commit \
                 {short_head}, and that commit is not built on the history {host} has: the two histories do not meet",
                list(&cut)
            ),
            format!("fetch here (`git fetch`) so this computer has {host}'s history, or {deepen}"),
        ));
    }
    Ok(())
}

/// The best common ancestor of two commits as git sees it (shallow boundaries included).
fn merge_base(repo: &Repo, a: ObjectId, b: ObjectId) -> Result<Option<ObjectId>> {
    let mut cmd = Git::new(repo.common_dir(), None).command(["merge-base", &a.to_string(), &b.to_string()]);
    let out = cmd.output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(0) => Ok(ObjectId::from_hex(text.trim().as_bytes()).ok()),
        // Exit 1 with nothing printed: no common ancestor.
        Some(1) if text.trim().is_empty() => Ok(None),
        _ => Err(Error::failed(
            "git_failed",
            format!("`git merge-base` failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        )),
    }
}

fn refused(message: String, help: String) -> Error {
    Error::refused("histories_do_not_meet", message).with_help(help)
}

fn short(id: &ObjectId) -> String {
    id.to_hex_with_len(12).to_string()
}

fn list(ids: &[ObjectId]) -> String {
    let mut shown: Vec<String> = ids.iter().take(3).map(short).collect();
    if ids.len() > 3 {
        shown.push(format!("and {} more", ids.len() - 3));
    }
    shown.join(", ")
}
