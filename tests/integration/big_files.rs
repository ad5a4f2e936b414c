//! Big files (a MiB or more): they arrive byte for byte; what the host has
//! already does not cross again; the record of what a file holds never
//! hides a change.

use std::path::{Path, PathBuf};

use crate::handoff::{Via, World};
use crate::harness::{write, Rng};

const BIG: [(&str, usize); 3] = [("assets/model.bin", 2 << 20), ("assets/weights.bin", 1 << 20), ("data.bin", 3 << 20)];

fn big_files(dir: &Path, seed: u64) -> u64 {
    let mut rng = Rng::new(seed);
    BIG.iter()
        .map(|(name, len)| {
            write(dir, name.as_bytes(), &rng.bytes(*len, true));
            *len as u64
        })
        .sum()
}

fn hand_off(w: &World, thread: &str) -> (u64, PathBuf) {
    let out = w.run(&["--json", thread, "devbox"]).success().json();
    (out["sent_bytes"].as_u64().unwrap(), PathBuf::from(out["owner_worktree"].as_str().unwrap()))
}

#[test]
fn big_files_arrive_exactly_and_what_the_host_has_does_not_cross_again() {
    for via in [Via::Openssh, Via::Ssh2] {
        let w = World::new(via);
        w.run(&["thread", "new", "--branch", "feat/big-one"]).success();
        let total = big_files(&w.laptop, 3);
        let before = w.env.carried_facts(&w.laptop);
        let (sent, there) = hand_off(&w, "1");
        assert!(sent >= total, "{sent} bytes sent for {total} bytes of random files");
        assert_eq!(w.env.carried_facts(&there), before, "{via:?}: the host has exactly the thread's state");

        // A second thread with copies of the same files: only its commits and trees cross.
        w.run(&["thread", "new", "--branch", "feat/big-two"]).success();
        for (name, _) in BIG {
            let bytes = std::fs::read(there.join(name)).unwrap();
            std::fs::remove_file(w.laptop.join(name)).ok();
            write(&w.laptop, name.as_bytes(), &bytes);
        }
        let before = w.env.carried_facts(&w.laptop);
        let (sent, there) = hand_off(&w, "2");
        assert!(sent < 64 << 10, "{via:?}: {sent} bytes sent for files the host has");
        assert_eq!(w.env.carried_facts(&there), before, "{via:?}: the second thread arrived exactly");

        // A big file made there comes back in the helper's one pack; the ones this computer has do not.
        let made = Rng::new(11).bytes(3 << 20, true);
        write(&there, b"assets/made-there.bin", &made);
        let before = w.env.carried_facts(&there);
        let out = w.run(&["--json", "2", "local"]).success().json();
        let received = out["received_bytes"].as_u64().unwrap();
        assert!(received >= made.len() as u64 && received < made.len() as u64 + (64 << 10), "{via:?}: {received}");
        assert_eq!(w.env.carried_facts(&w.laptop), before, "{via:?}: the thread came back exactly");
    }
}

#[test]
fn a_big_file_changed_in_place_with_its_old_times_is_seen() {
    use std::os::unix::fs::MetadataExt;
    let w = World::new(Via::Openssh);
    w.run(&["thread", "new", "--branch", "feat/in-place"]).success();
    big_files(&w.laptop, 5);
    hand_off(&w, "1");
    w.run(&["1", "local"]).success();

    // Same size, other bytes, the old modification time put back: only the
    // change time (and the bytes) tell.
    let file = w.laptop.join("data.bin");
    let meta = std::fs::metadata(&file).unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[12345] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let mtime = std::time::UNIX_EPOCH + std::time::Duration::new(meta.mtime() as u64, meta.mtime_nsec() as u32);
    std::fs::File::options().write(true).open(&file).unwrap().set_modified(mtime).unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().mtime_nsec(), meta.mtime_nsec());

    let before = w.env.carried_facts(&w.laptop);
    let (_, there) = hand_off(&w, "1");
    assert!(std::fs::read(there.join("data.bin")).unwrap() == bytes, "the changed bytes did not arrive");
    assert_eq!(w.env.carried_facts(&there), before);
}
