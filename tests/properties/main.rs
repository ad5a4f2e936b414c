//! Property tests of everything that reads input from the other machine,
//! and a replay of the fuzzing corpus (`tests/fuzz-corpus/<target>/`, kept
//! from cargo-fuzz runs of the same cases, crashes included once fixed).
//!
//! The suite runs few cases per property; `PROPTEST_CASES=100000 cargo test
//! --test properties` runs a long search.

mod cases;

use std::path::Path;

use proptest::prelude::*;
use serde_json::{json, Value};

use cases::{REPO_MARK, SESSION, THREAD};

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default_cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Strings an attacker would try, and arbitrary ones.
fn hostile_text() -> impl Strategy<Value = String> {
    let repo = String::from_utf8(REPO_MARK.to_vec()).unwrap();
    prop_oneof![
        Just(repo.clone()),
        Just(format!("{repo}/../..")),
        Just(THREAD.to_owned()),
        Just(SESSION.to_owned()),
        Just("aaaaaaa\u{e9}-0000-4000-8000-000000000000".to_owned()),
        Just("../../.ssh/authorized_keys".to_owned()),
        Just(format!("2026/11/24/rollout-2026-11-24T08-00-00-{SESSION}.jsonl")),
        Just("/etc/passwd".to_owned()),
        Just(".".to_owned()),
        Just(String::new()),
        Just("-oProxyCommand=x".to_owned()),
        Just("feat/x".to_owned()),
        Just("0".repeat(40)),
        Just("HEAD".to_owned()),
        Just("\u{1b}]0;t\u{7}".to_owned()),
        ".{0,24}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        4 => hostile_text().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| prop::collection::vec(inner, 0..4).prop_map(Value::from))
}

const OPS: &[&str] = &[
    "hello",
    "projects",
    "project_save",
    "project_forget",
    "find_project",
    "plan",
    "begin",
    "status",
    "receive",
    "depart",
    "release",
    "expose",
    "bye",
    "shell",
    "pack_in",
    "pack_out",
    "transcript_in",
    "transcript_out",
    "lfs_missing",
    "lfs_expose",
    "descends",
    "attach",
];
const PARAMS: &[&str] = &[
    "protocol",
    "path",
    "fingerprint",
    "subdirectory",
    "repo",
    "uuid",
    "number",
    "branch",
    "snapshot",
    "epoch",
    "to_machine",
    "from",
    "to",
    "initiator",
    "no_interrupt",
    "interrupt_timeout_ms",
    "size",
    "blob",
    "refs",
    "haves",
    "oids",
    "done",
    "keep",
    "recover",
];

fn request_line() -> impl Strategy<Value = Vec<u8>> {
    let params = prop::collection::btree_map(prop::sample::select(PARAMS), value(), 0..6);
    let request = (prop::sample::select(OPS), params).prop_map(|(op, params)| {
        let mut params: serde_json::Map<String, Value> = params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        // Mostly the fields a real request has, so requests get past parameter parsing.
        params.entry("repo").or_insert_with(|| Value::from("@R"));
        params.entry("uuid").or_insert_with(|| Value::from(THREAD));
        json!({ "op": op, "params": params }).to_string().into_bytes()
    });
    prop_oneof![
        6 => request,
        1 => prop::collection::vec(any::<u8>().prop_filter("one line", |b| *b != b'\n'), 0..64),
    ]
}

fn helper_input() -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), prop::collection::vec(request_line(), 0..6)).prop_map(|(hello, lines)| {
        let mut input = Vec::new();
        if hello {
            input.extend_from_slice(b"{\"op\":\"hello\",\"params\":{\"protocol\":2}}\n");
        }
        for line in lines {
            input.extend_from_slice(&line);
            input.push(b'\n');
        }
        input
    })
}

/// A note as this version writes it, then fields set to what an attacker might send.
fn note_input() -> impl Strategy<Value = Vec<u8>> {
    const FIELDS: &[&str] = &[
        "uuid",
        "branch",
        "subdirectory",
        "epoch",
        "worktree",
        "head",
        "owner_machine",
        "title",
        "extra",
        "transcript.codex_session",
        "transcript.codex_rollout",
        "transcript.size",
        "transcript",
    ];
    let edits = prop::collection::vec((prop::sample::select(FIELDS), value()), 0..5);
    prop_oneof![
        8 => edits.prop_map(|edits| {
            let mut note = json!({
                "schema": 1, "uuid": THREAD, "number": 1, "title": "t", "branch": "feat/x", "head": null,
                "epoch": 1, "owner_machine": "fuzzbox", "status": "idle", "worktree": "/w", "subdirectory": "",
                "index_commit": "0".repeat(40), "data_commit": "0".repeat(40),
                "transcript": { "sha256": "", "size": 0, "codex_session": SESSION,
                                "codex_rollout": format!("2026/01/01/rollout-2026-01-01T00-00-00-{SESSION}.jsonl") },
                "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            });
            for (field, value) in edits {
                match field.split_once('.') {
                    Some((outer, inner)) => {
                        if let Some(object) = note.get_mut(outer).and_then(Value::as_object_mut) {
                            object.insert(inner.to_owned(), value);
                        }
                    }
                    None => note[field] = value,
                }
            }
            serde_json::to_vec(&note).unwrap()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..128),
    ]
}

fn command_input() -> impl Strategy<Value = Vec<u8>> {
    let saved = cases::saved_repository().to_string_lossy().into_owned();
    let project = cases::saved_repository().parent().unwrap().to_string_lossy().into_owned();
    let word = prop_oneof![
        Just("git-codex-handoff".to_owned()),
        Just("/opt/bin/git-codex-handoff".to_owned()),
        Just("remote".to_owned()),
        Just("serve".to_owned()),
        Just("git".to_owned()),
        Just("git-receive-pack".to_owned()),
        Just("git-upload-pack".to_owned()),
        Just("upload-pack".to_owned()),
        Just(saved.clone()),
        Just(format!("'{saved}'")),
        Just(format!("{project}/../project")),
        Just(project),
        Just("$(id)".to_owned()),
        Just("`id`".to_owned()),
        Just(";".to_owned()),
        Just("'".to_owned()),
        Just("\"".to_owned()),
        Just("\\".to_owned()),
        ".{0,12}",
    ];
    let separator = prop::sample::select(&[" ", "  ", "\t", "\n", "'", "\"", "\\ "][..]);
    prop_oneof![
        6 => prop::collection::vec((word, separator), 0..5).prop_map(|parts| {
            parts.into_iter().flat_map(|(w, s)| [w, s.to_owned()]).collect::<String>().into_bytes()
        }),
        1 => ".{0,48}".prop_map(String::into_bytes),
    ]
}

fn rollout_input() -> impl Strategy<Value = Vec<u8>> {
    let part = prop_oneof![
        Just("2026".to_owned()),
        Just("2025".to_owned()),
        Just("01".to_owned()),
        Just("11".to_owned()),
        Just("24".to_owned()),
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just(String::new()),
        Just(format!("rollout-2026-11-24T08-00-00-{SESSION}.jsonl")),
        Just(format!("rollout-x-{SESSION}.jsonl.zst")),
        Just(format!("rollout-{SESSION}.jsonl")),
        Just(format!("rollout-a/b-{SESSION}.jsonl")),
        "[ -~]{0,12}",
    ];
    let id = prop_oneof![
        Just(SESSION.to_owned()),
        Just(THREAD.to_owned()),
        Just(SESSION.to_uppercase()),
        Just("../x".to_owned()),
        ".{0,36}",
    ];
    (prop::collection::vec(part, 0..6), id).prop_map(|(parts, id)| format!("{}\n{id}", parts.join("/")).into_bytes())
}

proptest! {
    #![proptest_config(config(24))]
    #[test]
    fn the_helper_answers_any_input_without_panicking(input in helper_input()) {
        cases::helper_session(&input);
    }
}

proptest! {
    #![proptest_config(config(512))]
    #[test]
    fn notes_that_pass_name_only_safe_places(input in note_input()) {
        cases::note(&input);
    }

    #[test]
    fn forced_commands_allow_only_the_helper_and_saved_repositories(input in command_input()) {
        cases::restricted_command(&input);
    }

    #[test]
    fn rollout_names_that_pass_stay_in_sessions(input in rollout_input()) {
        cases::rollout_name(&input);
    }

    #[test]
    fn restricted_pushes_are_read_exactly(input in push_input()) {
        cases::restricted_push(&input);
    }

    #[test]
    fn ssh_configs_never_lose_a_trust_option(input in ssh_config_input()) {
        cases::ssh_config(&input);
    }
}

proptest! {
    #![proptest_config(config(24))]
    #[test]
    fn packs_are_taken_in_whole_or_not_at_all(input in pack_input()) {
        cases::pack_intake(&input);
    }

    /// Bytes beside a request: any size announced, any bytes (lines that
    /// follow included) taken as them; refused streams leave nothing.
    #[test]
    fn the_helper_takes_raw_bytes_only_as_announced(input in bytes_session()) {
        cases::helper_session(&input);
    }
}

/// A session whose requests carry bytes: sizes around and over the ceiling.
fn bytes_session() -> impl Strategy<Value = Vec<u8>> {
    let size = prop_oneof![Just(0u64), Just(12), Just(1 << 40), Just(u64::MAX), 0u64..200];
    let op = prop::sample::select(&["pack_in", "transcript_in"][..]);
    let request =
        (op, size, prop::collection::vec(any::<u8>(), 0..64), any::<bool>()).prop_map(|(op, size, bytes, begun)| {
            let mut out = Vec::new();
            if begun {
                out.extend(
                    format!("{{\"op\":\"begin\",\"params\":{{\"repo\":\"@R\",\"uuid\":\"{THREAD}\"}}}}\n").bytes(),
                );
            }
            let params = json!({ "repo": "@R", "uuid": THREAD, "size": size, "blob": "0".repeat(40),
                                 "refs": { "head": "0".repeat(40) } });
            out.extend(format!("{}\n", json!({ "op": op, "params": params })).bytes());
            out.extend(bytes);
            out
        });
    prop::collection::vec(request, 0..4).prop_map(|parts| {
        let mut input = b"{\"op\":\"hello\",\"params\":{\"protocol\":4}}\n".to_vec();
        input.extend(parts.concat());
        input
    })
}

/// A pack as git writes it (a real one, a PACK header with any count, or
/// bytes), cut or damaged at random.
fn pack_input() -> impl Strategy<Value = Vec<u8>> {
    let valid = cases::sample_pack();
    let header = (any::<u32>(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(count, rest)| {
        let mut pack = b"PACK\0\0\0\x02".to_vec();
        pack.extend(count.to_be_bytes());
        pack.extend(rest);
        pack
    });
    let damaged = (Just(valid.clone()), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(mut p, at, b)| {
        let i = at.index(p.len());
        p[i] ^= b.max(1);
        p
    });
    let cut = (Just(valid.clone()), any::<prop::sample::Index>()).prop_map(|(p, at)| p[..at.index(p.len())].to_vec());
    let body = prop_oneof![2 => Just(valid), 2 => header, 3 => damaged, 2 => cut, 1 => prop::collection::vec(any::<u8>(), 0..64)];
    (any::<u8>(), body).prop_map(|(who, body)| [vec![who], body].concat())
}

/// `~/.ssh/config` text: keywords that bear on trust (and others), values
/// that switch them on and off, blocks.
fn ssh_config_input() -> impl Strategy<Value = Vec<u8>> {
    let keyword = prop::sample::select(
        &[
            "RevokedHostKeys",
            "HostKeyAlgorithms",
            "CASignatureAlgorithms",
            "KnownHostsCommand",
            "VerifyHostKeyDNS",
            "UpdateHostKeys",
            "CertificateFile",
            "ProxyJump",
            "ProxyCommand",
            "StrictHostKeyChecking",
            "HostName",
            "User",
            "Host",
            "Match",
            "#",
        ][..],
    );
    let value = prop_oneof![
        Just("yes".to_owned()),
        Just("ask".to_owned()),
        Just("no".to_owned()),
        Just("none".to_owned()),
        Just("*".to_owned()),
        Just("devbox".to_owned()),
        Just("exec true".to_owned()),
        Just("+ssh-rsa".to_owned()),
        Just("-ssh-ed25519,ecdsa-*".to_owned()),
        Just("^rsa-sha2-512".to_owned()),
        Just("~/.ssh/revoked".to_owned()),
        "[ -~]{0,16}",
    ];
    let separator = prop::sample::select(&[" ", "=", " = ", "\t"][..]);
    let line = (keyword, separator, value).prop_map(|(k, s, v)| format!("{k}{s}{v}\n"));
    prop::collection::vec(line, 0..8).prop_map(|lines| lines.concat().into_bytes())
}

/// pkt-lines as git push sends them, with hostile lengths and ref names.
fn push_input() -> impl Strategy<Value = Vec<u8>> {
    let id = prop_oneof![Just("0".repeat(40)), Just("a".repeat(40)), Just("f".repeat(64)), "[0-9a-z]{0,41}"];
    let name = prop_oneof![
        Just("refs/codex-handoff/incoming/u/snapshot".to_owned()),
        Just("refs/heads/main".to_owned()),
        Just("refs/codex-handoff/incoming/../../heads/main".to_owned()),
        ".{0,20}",
    ];
    let line = (id.clone(), id, name, prop::bool::ANY).prop_map(|(old, new, name, caps)| {
        let mut text = format!("{old} {new} {name}").into_bytes();
        if caps {
            text.extend_from_slice(b"\0report-status atomic");
        }
        text.push(b'\n');
        let mut packet = format!("{:04x}", text.len() + 4).into_bytes();
        packet.extend(text);
        packet
    });
    let packet = prop_oneof![
        6 => line,
        1 => Just(b"0000".to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..12),
        1 => "[0-9a-f]{4}".prop_map(String::into_bytes),
    ];
    prop::collection::vec(packet, 0..6).prop_map(|parts| parts.concat())
}

/// Every file of `tests/fuzz-corpus/<target>/` through `case`.
fn replay(target: &str, case: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus").join(target);
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| case(&data));
        assert!(outcome.is_ok(), "{} fails", path.display());
        replayed += 1;
    }
    assert!(replayed > 0, "no corpus in {}", dir.display());
}

#[test]
fn the_fuzz_corpus_replays_cleanly() {
    replay("helper_requests", cases::helper_session);
    replay("note", cases::note);
    replay("restricted_command", cases::restricted_command);
    replay("rollout_name", cases::rollout_name);
    replay("restricted_push", cases::restricted_push);
    replay("pack_intake", cases::pack_intake);
    replay("ssh_config", cases::ssh_config);
}

/// The helper's machine is set up so that requests get past the project
/// check: generated input reaches the dispatcher's real work.
#[test]
fn generated_requests_reach_the_saved_project() {
    let input = format!(
        "{{\"op\":\"hello\",\"params\":{{\"protocol\":2}}}}\n{{\"op\":\"begin\",\"params\":{{\"repo\":\"@R\",\"uuid\":\"{THREAD}\"}}}}\n\
         {{\"op\":\"status\",\"params\":{{\"repo\":\"@R\",\"uuid\":\"{THREAD}\"}}}}\n{{\"op\":\"projects\",\"params\":{{}}}}\n"
    );
    let answers = cases::helper_answers(input.as_bytes());
    let oks: Vec<bool> = answers.iter().map(|a| a["ok"] == true).collect();
    assert_eq!(oks, [true, true, true, true], "{answers:?}");
    assert_eq!(answers[3]["result"]["projects"].as_array().map(Vec::len), Some(1));
}
