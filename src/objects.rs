//! Git objects and refs written in this process: commits, compare-and-swap
//! ref updates through gix transactions, and object ids read from text.

use gix::bstr::ByteSlice;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::Target;
use gix::ObjectId;

use crate::error::{Context, Error, Result};
use crate::repo::Repo;

/// The object a ref points at, if the ref exists.
pub fn ref_target(repo: &Repo, name: &str) -> Result<Option<ObjectId>> {
    Ok(repo.gix.try_find_reference(name)?.and_then(|r| r.target().try_id().map(ToOwned::to_owned)))
}

/// Set (or with `new: None`, delete) a ref, compare-and-swap on `expected`
/// (`None`: must not exist). Deletion of a missing ref is not an error.
pub fn set_ref(
    repo: &Repo,
    name: &str,
    expected: Option<ObjectId>,
    new: Option<ObjectId>,
    message: &str,
) -> Result<()> {
    let full: gix::refs::FullName =
        name.try_into().map_err(|e| Error::failed("bad_ref", format!("bad ref name {name}")).with_source(e))?;
    let change = match new {
        Some(new) => Change::Update {
            log: LogChange { mode: RefLog::AndReference, force_create_reflog: false, message: message.into() },
            expected: match expected {
                Some(old) => PreviousValue::MustExistAndMatch(Target::Object(old)),
                None => PreviousValue::MustNotExist,
            },
            new: Target::Object(new),
        },
        None => {
            if ref_target(repo, name)?.is_none() {
                return Ok(());
            }
            Change::Delete {
                expected: match expected {
                    Some(old) => PreviousValue::MustExistAndMatch(Target::Object(old)),
                    None => PreviousValue::Any,
                },
                log: RefLog::AndReference,
            }
        }
    };
    repo.gix.edit_reference(RefEdit { change, name: full, deref: false }).map_err(|e| {
        Error::failed("ref_update", format!("could not update {name}: it was changed by another process"))
            .with_help("run the command again")
            .with_source(e)
    })?;
    Ok(())
}

/// Delete every ref under `prefix` (leftovers of an interrupted handoff).
pub fn delete_refs_under(repo: &Repo, prefix: &str) -> Result<()> {
    let mut names = Vec::new();
    for reference in repo.gix.references()?.prefixed(prefix.trim_end_matches('/'))? {
        let reference = reference.map_err(|e| Error::failed("refs", "could not read refs").with_source(e))?;
        names.push(reference.name().as_bstr().to_str_lossy().into_owned());
    }
    for name in names {
        set_ref(repo, &name, None, None, "codex-handoff: clean up")?;
    }
    Ok(())
}

pub fn parse_hex(text: &str) -> Result<ObjectId> {
    ObjectId::from_hex(text.as_bytes()).context("bad_object_id", || format!("{text:?} is not an object id"))
}

/// The identity snapshot commits are made with: the user's, or a fixed one.
pub fn signature(repo: &Repo) -> gix::actor::Signature {
    let (name, email) = match repo.gix.committer() {
        Some(Ok(sig)) => (sig.name.to_owned(), sig.email.to_owned()),
        _ => ("git-codex-handoff".into(), "git-codex-handoff@localhost".into()),
    };
    gix::actor::Signature { name, email, time: gix::date::Time::now_utc() }
}

pub fn write_commit(
    repo: &Repo,
    signature: &gix::actor::Signature,
    message: String,
    tree: ObjectId,
    parents: Vec<ObjectId>,
) -> Result<ObjectId> {
    let commit = gix::objs::Commit {
        tree,
        parents: parents.into_iter().collect(),
        author: signature.clone(),
        committer: signature.clone(),
        encoding: None,
        message: message.into(),
        extra_headers: Vec::new(),
    };
    Ok(repo.gix.write_object(&commit)?.detach())
}

pub fn parse_id(text: &str) -> Result<ObjectId> {
    ObjectId::from_hex(text.trim().as_bytes()).map_err(|e| {
        Error::failed("bad_object_id", format!("git printed an unexpected object id {text:?}")).with_source(e)
    })
}
