//! What travels beside a snapshot's own commits, on the arriving machine:
//! the submodules' snapshots (in the module repositories, under the
//! thread's incoming refs) and the Git LFS objects (in one carrier commit).
//! They are taken in and checked before anything is restored, and their
//! incoming refs are removed afterwards, whatever the outcome.

use crate::error::{Error, Result};
use crate::repo::Repo;
use crate::thread::store;
use crate::worktree::lfs;
use crate::worktree::submodules::{self, ModuleSource};
use crate::worktree::verify::Expected;

/// The incoming ref of the commit that carries a thread's LFS objects.
pub fn lfs_ref(uuid: &str) -> String {
    store::incoming_ref(uuid, "lfs")
}

/// The ref under which a departing machine exposes a thread's LFS objects.
pub fn outgoing_lfs_ref(uuid: &str) -> String {
    format!("refs/codex-handoff/outgoing-lfs/{uuid}")
}

/// Where an incoming snapshot's submodule snapshots are: the module
/// repositories of this clone (under the thread's incoming ref).
pub fn incoming_modules(repo: &Repo) -> ModuleSource {
    ModuleSource::Modules(repo.common_dir())
}

/// Put the LFS objects that arrived into this clone's LFS storage, and
/// check that every object the snapshot needs is here and that git-lfs
/// can write them (it is the checkout's filter).
pub fn take_in(repo: &Repo, uuid: &str, expected: &Expected) -> Result<()> {
    let state = &expected.state;
    if state.lfs_objects.is_empty() && state.lfs_pointers.is_empty() {
        return Ok(());
    }
    lfs::check_available(repo, &crate::repo::machine_name(Some(repo)))?;
    if let Some(carrier) = store::ref_target(repo, &lfs_ref(uuid))? {
        lfs::unpack(repo, carrier, &state.lfs_objects)?;
    }
    let missing: Vec<&str> =
        state.lfs_objects.iter().filter(|p| !lfs::has_object(repo, p)).map(|p| p.oid.as_str()).collect();
    if let Some(first) = missing.first() {
        return Err(Error::failed(
            "lfs_object_missing",
            format!("{} Git LFS object(s) the thread needs did not arrive (first: {first})", missing.len()),
        )
        .with_help("run the handoff again"));
    }
    Ok(())
}

/// Remove the incoming refs of a thread, here and in this clone's module repositories.
pub fn clean_incoming(repo: &Repo, uuid: &str) {
    let prefix = format!("refs/codex-handoff/incoming/{uuid}/");
    let _ = store::delete_refs_under(repo, &prefix);
    for dir in submodules::module_repositories(&repo.common_dir()) {
        if let Ok(module) = Repo::open(&dir) {
            let _ = store::delete_refs_under(&module, &prefix);
        }
    }
}

/// What the destination must have for a worktree's snapshot to arrive
/// exactly: the module repositories its submodules need, and git-lfs.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Needs {
    /// Populated submodules, parents first.
    #[serde(default)]
    pub modules: Vec<NeededModule>,
    #[serde(default)]
    pub lfs: bool,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NeededModule {
    /// Its path from the top worktree.
    pub path: String,
    /// Its module repository, relative to a clone's common git dir.
    pub module: String,
}

/// What a snapshot of the worktree `worktree` will need at the destination
/// (cheap: no snapshot is taken). Refuses what cannot be carried.
pub fn needs(worktree: &Repo) -> Result<Needs> {
    let mut needs = Needs { modules: Vec::new(), lfs: lfs::in_use(worktree) };
    collect_modules(worktree, "", "", &mut needs.modules)?;
    Ok(needs)
}

fn collect_modules(repo: &Repo, path_prefix: &str, module_prefix: &str, out: &mut Vec<NeededModule>) -> Result<()> {
    let index = repo.gix.index_or_empty()?;
    for sub in submodules::populated(repo, &index)? {
        let path = format!("{path_prefix}{}", sub.path);
        let module = format!("{module_prefix}modules/{}", sub.name);
        if lfs::in_use(&sub.repo) {
            return Err(Error::refused("submodule_lfs", format!("submodule {path} uses Git LFS, which is carried only for the top repository"))
                .with_help("hand the thread off without that submodule checked out (`git submodule deinit`), or move its large files out of LFS"));
        }
        out.push(NeededModule { path: path.clone(), module: module.clone() });
        collect_modules(&sub.repo, &format!("{path}/"), &format!("{module}/"), out)?;
    }
    Ok(())
}

/// Refuse, before anything moves, unless this clone (the destination) has
/// what `needs` lists. `machine` names this machine in the message.
pub fn check_needs(repo: &Repo, needs: &Needs, machine: &str) -> Result<()> {
    let common = repo.common_dir();
    let project = repo.workdir().unwrap_or_else(|_| common.clone());
    for needed in &needs.modules {
        submodules::check_module(&needed.module)?;
        let dir = common.join(&needed.module);
        if Repo::open(&dir).is_err() || !dir.join("HEAD").is_file() {
            return Err(Error::refused(
                "submodule_missing",
                format!("submodule {} is not initialised in {} on {machine}", needed.path, project.display()),
            )
            .with_help(format!(
                "initialise it there with `git -C {} submodule update --init --recursive`, then try again",
                project.display()
            )));
        }
    }
    if needs.lfs {
        lfs::check_available(repo, machine)?;
    }
    Ok(())
}
