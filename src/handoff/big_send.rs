//! A snapshot's big files sent as the pack entries they already are here
//! (`pack_reuse`): to a host, in a pack of their own beside a `pack_in`
//! request that sets no ref, the snapshot's pack, sent next, leaving them
//! out and naming them; from the helper, ahead of the snapshot's pack in
//! the one pack `pack_out` sends. The host checks this pack as any other (`intake`), and
//! objects that never get named by a ref are only garbage to its `git gc`.

use gix::ObjectId;
use serde_json::json;

use crate::error::{Error, Result};
use crate::pack_reuse;
use crate::remote::transport::Connection;
use crate::repo::Repo;

/// Those of the blobs `big` (`None`: any big blob) that `revs` (what the
/// snapshot's pack would carry) include and that sit whole in a pack here.
pub(super) fn plan(repo: &Repo, revs: &str, big: Option<&[ObjectId]>) -> Result<Vec<pack_reuse::Entry>> {
    if big.is_some_and(|big| big.is_empty()) || repo.gix.object_hash() != gix::hash::Kind::Sha1 {
        return Ok(Vec::new());
    }
    // What pack-objects would send (its thin-pack edges left out as it leaves them).
    let mut cmd = repo.git().command(["rev-list", "--objects-edge", "--no-object-names", "--stdin"]);
    let listed = crate::git::run_command(&mut cmd, Some(revs.as_bytes()))?;
    let listed: std::collections::HashSet<&[u8]> =
        listed.split(|b| *b == b'\n').filter(|line| !line.is_empty() && !line.starts_with(b"-")).collect();
    let wanted: Vec<ObjectId> = match big {
        Some(big) => big.iter().filter(|id| listed.contains(id.to_string().as_bytes())).copied().collect(),
        None => listed.iter().filter_map(|line| ObjectId::from_hex(line).ok()).collect(),
    };
    Ok(pack_reuse::big_blobs(&repo.common_dir().join("objects"), &wanted))
}

/// Send `entries` as one pack beside a `pack_in` request that sets no ref.
pub(super) fn send(conn: &mut Connection, remote_repo: &str, uuid: &str, entries: &[pack_reuse::Entry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let size = pack_reuse::pack_size(entries);
    let (mut reader, mut writer) = std::io::pipe()?;
    let sending = entries.to_vec();
    let writing = std::thread::spawn(move || pack_reuse::write_pack(&sending, &mut writer));
    let params = json!({ "repo": remote_repo, "uuid": uuid, "refs": {}, "size": size });
    let answer = conn.call_sending::<serde_json::Value>("pack_in", params, &mut reader, size);
    drop(reader);
    let written = writing.join().map_err(|_| Error::failed("pack", "writing the pack of big files stopped"))?;
    answer.map_err(|e| {
        if e.kind == crate::error::Kind::Refused {
            Error { message: format!("could not send the big files to {}: {}", conn.host.name, e.message), ..e }
        } else {
            Error::failed("push_failed", format!("could not send the big files to {}: {}", conn.host.name, e.message))
        }
    })?;
    written
}
