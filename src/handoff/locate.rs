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
use crate::thread;

/// How many of a thread's history heads are offered to the host.
pub const HISTORY_HEADS: usize = 1000;

/// The project commits a push of a new snapshot at `head` carries: `head`
/// and the HEAD commits of the thread's earlier snapshots (from `snapshot`).
pub fn thread_heads(repo: &Repo, head: Option<ObjectId>, snapshot: ObjectId) -> Vec<ObjectId> {
    let mut heads: Vec<ObjectId> = head.into_iter().collect();
    for earlier in thread::history_heads(repo, snapshot, HISTORY_HEADS) {
        if !heads.contains(&earlier) {
            heads.push(earlier);
        }
    }
    heads
}

/// The host's project for this repository (and `subdirectory`), whose
/// history meets this clone's. `identity` is this clone's
/// (`Identity::of_this_clone`); `heads` are the project commits the thread's
/// history holds, its HEAD first (`thread::history_heads`).
pub fn find_project(
    conn: &mut Connection,
    repo: &Repo,
    identity: &Identity,
    subdirectory: &str,
    heads: &[ObjectId],
) -> Result<ProjectMatch> {
    let boundaries = fingerprint::boundaries_under(repo, heads, &identity.shallow)?;
    let hex = |ids: &[ObjectId]| ids.iter().map(ObjectId::to_string).collect::<Vec<_>>();
    let found: ProjectMatch = conn.call(
        "find_project",
        json!({
            "fingerprint": identity.legacy(),
            "subdirectory": subdirectory,
            "roots": identity.roots,
            "urls": identity.urls,
            "shallow": hex(&boundaries),
            "head": heads.first().map(ObjectId::to_string),
            "heads": hex(heads),
            "host": conn.host.name,
        }),
    )?;
    histories_meet(repo, &conn.host.name, &boundaries, heads, &found)?;
    Ok(found)
}

/// Refuse when what one side would send cannot connect to what the other has.
fn histories_meet(
    repo: &Repo,
    host: &str,
    boundaries: &[ObjectId],
    heads: &[ObjectId],
    found: &ProjectMatch,
) -> Result<()> {
    // An older helper says nothing to check with; git itself refuses what does not connect.
    let Some(matched_by) = found.matched_by.as_deref() else { return Ok(()) };
    let unknown = parse_all(host, &found.unknown_heads, "as a commit it lacks")?;
    let unknown: Vec<ObjectId> = unknown.into_iter().filter(|id| heads.contains(id)).collect();
    // The host has every project commit the thread's history holds: only the thread's own commits move.
    if unknown.is_empty() {
        return Ok(());
    }
    let describe = |id: &ObjectId| {
        if heads.first() == Some(id) {
            format!("the thread's commit {}", short(id))
        } else {
            format!("commit {} (where an earlier snapshot of the thread was taken)", short(id))
        }
    };
    if !boundaries.is_empty() && !found.boundary_known {
        let cut = list(boundaries);
        return Err(refused(
            format!(
                "this clone is shallow, and {host}'s clone has neither {} nor the history where this clone is cut \
                 off ({cut})",
                describe(&unknown[0])
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
    let cut = parse_all(host, &found.shallow, "as a commit where its clone is cut off")?;
    let deepen = format!("deepen the clone on {host} (`git -C {} fetch --unshallow`)", shell_word(&found.project));
    let known_cut: Vec<ObjectId> = cut.iter().copied().filter(|c| repo.gix.has_object(*c)).collect();
    for head in &unknown {
        let mut builds_on = false;
        for boundary in &known_cut {
            match merge_base(repo, *head, *boundary)? {
                Some(base) if base == *boundary => builds_on = true,
                Some(base) => {
                    let how = if base == *head { "is older than that" } else { "branches off below that" };
                    return Err(refused(
                        format!(
                            "{host}'s clone is shallow, cut off at {}, and {} {how}: {host} does not have the \
                             history it needs",
                            short(boundary),
                            describe(head)
                        ),
                        deepen,
                    ));
                }
                None => {}
            }
        }
        // Matched by roots, the host has the default branch's whole history; by URL only, the commit must build on what it has.
        if !builds_on && matched_by != "roots" {
            return Err(refused(
                format!(
                    "{host}'s clone of this repository is shallow, cut off at {}; it does not have {}, and that \
                     commit is not built on the history {host} has: the two histories do not meet",
                    list(&cut),
                    describe(head)
                ),
                format!("fetch here (`git fetch`) so this computer has {host}'s history, or {deepen}"),
            ));
        }
    }
    Ok(())
}

fn parse_all(host: &str, hex: &[String], role: &str) -> Result<Vec<ObjectId>> {
    hex.iter()
        .map(|h| {
            ObjectId::from_hex(h.as_bytes())
                .map_err(|_| Error::failed("helper_garbled", format!("{host} named {h:?} {role}")))
        })
        .collect()
}

/// The best common ancestor of two commits as git sees it (shallow boundaries included).
fn merge_base(repo: &Repo, a: ObjectId, b: ObjectId) -> Result<Option<ObjectId>> {
    let out = Git::new(repo.common_dir(), None).command(["merge-base", &a.to_string(), &b.to_string()]).output()?;
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
