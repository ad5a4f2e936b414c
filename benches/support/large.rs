//! A large change: a new thread on a new branch whose worktree holds 100
//! MiB of fresh random bytes (4 files in `assets/`) and 50 MiB of fresh
//! text (2 files in `data/`), untracked (`BENCH_QUICK=1`: a tenth). Handed
//! to the dev box over openssh; there the work replaces the files with as
//! many new bytes, and the thread comes back with them (a departure leaves
//! the files here, so an unchanged thread would bring nothing back). Against
//! plain git moving the same work: a stash-like commit with the untracked
//! files, `git push`, one `ssh` that adds a worktree and checks the files
//! out; back the same with the roles reversed. Then the same files in a
//! second thread, to see that what the host already has is not sent again.
//! Built into the handoff benchmark only (it uses its `World`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::harness::{Rng, BIN};
use crate::rss::{self, Watched};
use crate::sshd::{shell_quote, HOST};
use crate::support::{median, ms, record};
use crate::World;

/// Files of the change: directory, name, random (else text).
const FILES: &[(&str, &str, bool)] = &[
    ("assets", "weights-0.bin", true),
    ("assets", "weights-1.bin", true),
    ("assets", "weights-2.bin", true),
    ("assets", "weights-3.bin", true),
    ("data", "corpus-0.txt", false),
    ("data", "corpus-1.txt", false),
];

/// The change's files and their bytes.
type Change = Vec<(String, Vec<u8>)>;

/// One trip of ours: time, the client's peaks and the helpers' (own, tree; KiB).
struct Trip {
    took: Duration,
    client: (u64, u64),
    helper: (u64, u64),
}

pub fn large_change(w: &World, quick: bool) {
    let file_bytes = if quick { (25 << 20) / 10 } else { 25 << 20 };
    let total = FILES.len() * file_bytes;
    let mib = total as f64 / 1_048_576.0;
    let runs = if quick { 1 } else { 3 };
    let log = w.env.path("helper-rss.log");
    let script = w.remote_home.join("bin/helper-under-watch");
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    rss::write_wrapper_script(&script, &log, BIN);
    w.git(&w.laptop, &["config", "--global", "codex-handoff.devbox.helper", script.to_str().unwrap()]);
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;

    println!();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average before the large change: {}", load.split(' ').take(3).collect::<Vec<_>>().join(" "));
    println!(
        "large change: {mib:.0} MiB untracked ({} MiB random in assets/, {} MiB text in data/), fresh each run; \
         on the host replaced by as many fresh bytes, which come back; {runs} run(s)",
        (4 * file_bytes) >> 20,
        (2 * file_bytes) >> 20
    );
    let (mut outs, mut backs, mut plain_outs, mut plain_backs) = (vec![], vec![], vec![], vec![]);
    let (mut client, mut helper) = ((0, 0), (0, 0));
    for run in 0..runs {
        seed += 1;
        let change = fresh_change(seed, file_bytes);
        let reply = fresh_change(seed + 1_000_000, file_bytes);
        let (out, back) = ours(w, &log, &change, &reply, &format!("bench/large-{run}"));
        for trip in [&out, &back] {
            client = (client.0.max(trip.client.0), client.1.max(trip.client.1));
            helper = (helper.0.max(trip.helper.0), helper.1.max(trip.helper.1));
        }
        println!(
            "  run {run}: ours out {:.2} s (client {:.0} MiB, helper {:.0} MiB), back {:.2} s (client {:.0} MiB, helper {:.0} MiB)",
            out.took.as_secs_f64(),
            kib_mib(out.client.0),
            kib_mib(out.helper.0),
            back.took.as_secs_f64(),
            kib_mib(back.client.0),
            kib_mib(back.helper.0)
        );
        outs.push(out.took);
        backs.push(back.took);

        seed += 1;
        let change = fresh_change(seed, file_bytes);
        let reply = fresh_change(seed + 1_000_000, file_bytes);
        let (out, back) = plain(w, &change, &reply, run);
        println!("  run {run}: plain git out {:.2} s, back {:.2} s", out.as_secs_f64(), back.as_secs_f64());
        plain_outs.push(out);
        plain_backs.push(back);
    }
    let (out, back) = (median(outs), median(backs));
    let (plain_out, plain_back) = (median(plain_outs), median(plain_backs));
    let ratio = |a: Duration, b: Duration| ms(a) / ms(b);
    let rate = |d: Duration| mib / d.as_secs_f64();
    println!("{:<34} {:>10} {:>10} {:>9} {:>9}", "way (medians)", "out s", "back s", "out MiB/s", "back MiB/s");
    println!(
        "{:<34} {:>10.2} {:>10.2} {:>9.0} {:>9.0}",
        "ours (devbox, then local)",
        out.as_secs_f64(),
        back.as_secs_f64(),
        rate(out),
        rate(back)
    );
    println!(
        "{:<34} {:>10.2} {:>10.2} {:>9.0} {:>9.0}",
        "plain git (commit+push+ssh)",
        plain_out.as_secs_f64(),
        plain_back.as_secs_f64(),
        rate(plain_out),
        rate(plain_back)
    );
    println!(
        "ratio ours / plain git: out {:.2}x, back {:.2}x (goal <= 0.25x; >= 100 MiB/s)",
        ratio(out, plain_out),
        ratio(back, plain_back)
    );
    println!(
        "peak RSS, max over runs: client {:.1} MiB own ({:.1} MiB with its waited-for children: git, ssh), \
         helper {:.1} MiB own ({:.1} MiB with its git children) (goal < 64 MiB own)",
        kib_mib(client.0),
        kib_mib(client.1),
        kib_mib(helper.0),
        kib_mib(helper.1)
    );

    let (r_out, r_back) = (ratio(out, plain_out), ratio(back, plain_back));
    record(
        BIN,
        &format!("{mib:.0} MiB change out / back vs plain git"),
        &format!(
            "{r_out:.2}x / {r_back:.2}x ({:.1} s / {:.1} s vs {:.1} s / {:.1} s)",
            out.as_secs_f64(),
            back.as_secs_f64(),
            plain_out.as_secs_f64(),
            plain_back.as_secs_f64()
        ),
        "<= 0.25x",
        r_out <= 0.25 && r_back <= 0.25,
    );
    record(
        BIN,
        &format!("{mib:.0} MiB change out / back, new data end to end"),
        &format!("{:.0} / {:.0} MiB/s", rate(out), rate(back)),
        ">= 100 MiB/s",
        rate(out) >= 100.0 && rate(back) >= 100.0,
    );
    record(
        BIN,
        &format!("{mib:.0} MiB change: peak RSS client / helper"),
        &format!(
            "{:.0} / {:.0} MiB (with git children: {:.0} / {:.0})",
            kib_mib(client.0),
            kib_mib(helper.0),
            kib_mib(client.1),
            kib_mib(helper.1)
        ),
        "< 64 MiB",
        client.0 < 64 << 10 && helper.0 < 64 << 10,
    );

    seed += 1;
    dedup(w, &log, fresh_change(seed, file_bytes), mib);
}

/// Ours: a new thread holding `change` handed to the dev box; there the
/// work replaces it with `reply`, which comes back with the thread.
fn ours(w: &World, log: &Path, change: &Change, reply: &Change, branch: &str) -> (Trip, Trip) {
    put(&w.laptop, change);
    let thread = w.new_thread(branch);
    rss::take_helper_peaks(log);
    let (out, there) = trip(w, log, thread, HOST);
    check_same(&there, change, "ours, out");
    put(&there, reply);
    let (back, here) = trip(w, log, thread, "local");
    check_same(&here, reply, "ours, back");
    for dir in [&there, &here, &w.laptop] {
        remove(dir);
    }
    (out, back)
}

/// `git codex-handoff <thread> <to>`, run directly so its memory can be
/// watched; returns the trip and the destination's worktree.
fn trip(w: &World, log: &Path, thread: u64, to: &str) -> (Trip, PathBuf) {
    let (watched, json) = run_client(w, &[&thread.to_string(), to, "--yes", "--json"], &[]);
    let helper = rss::take_helper_peaks(log);
    let worktree = PathBuf::from(json["owner_worktree"].as_str().expect("owner_worktree in the handoff's JSON"));
    (Trip { took: watched.took, client: (watched.own_kib, watched.tree_kib), helper }, worktree)
}

/// Run the binary with `args` in the laptop's clone; panics unless it succeeds.
fn run_client(w: &World, args: &[&str], vars: &[(&str, &str)]) -> (Watched, serde_json::Value) {
    let (out, err) = (w.env.path("client.out"), w.env.path("client.err"));
    let mut cmd = w.env.command(BIN, &w.laptop);
    cmd.args(args).stdout(std::fs::File::create(&out).unwrap()).stderr(std::fs::File::create(&err).unwrap());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let watched = rss::watch(&mut cmd);
    let stdout = std::fs::read_to_string(&out).unwrap();
    assert!(
        watched.code == 0,
        "{args:?} exited {}: {}{stdout}",
        watched.code,
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    (watched, serde_json::from_str(&stdout).expect("one JSON document"))
}

/// The same work with plain git: a commit of the worktree with its
/// untracked files (made in a temporary index, as `git stash -u` would),
/// pushed with the branch to the dev box's clone, then one `ssh` that adds
/// a worktree on the branch, checks the commit's files out into it and
/// resets the index, leaving the new files untracked as they were. Back:
/// the same commit of `reply` made there, fetched here over ssh, checked
/// out here (where `change` still is, as ours leaves it).
fn plain(w: &World, change: &Change, reply: &Change, run: usize) -> (Duration, Duration) {
    put(&w.laptop, change);
    let branch = format!("plain-large/{run}");
    let there = w.remote_home.join(format!("plain-large/{run}"));
    let clone = w.remote_clone.display().to_string();
    let url = format!("{HOST}:{clone}");
    let out = w.measure(|| {
        let commit = wip_commit(w, &w.laptop);
        let refspecs = [format!("HEAD:refs/heads/{branch}"), format!("{commit}:refs/bench/plain-large-{run}")];
        w.git(&w.laptop, &["push", "-q", &url, &refspecs[0], &refspecs[1]]);
        let path = shell_quote(&there.display().to_string());
        w.ssh(&format!(
            "git -C {clone} worktree add -q {path} {branch} && git -C {path} checkout -q {commit} -- . && git -C {path} reset -q",
            clone = shell_quote(&clone),
            branch = shell_quote(&branch)
        ));
    });
    check_same(&there, change, "plain git, out");
    put(&there, reply);

    let back = w.measure(|| {
        let path = shell_quote(&there.display().to_string());
        // The host's side of `wip_commit`, then a ref to fetch it by.
        let index = w.remote_home.join(format!("plain-large/index-{run}"));
        let index = shell_quote(&index.display().to_string());
        w.ssh(&format!(
            "cd {path} && cp \"$(git rev-parse --git-path index)\" {index} && export GIT_INDEX_FILE={index} \
             && git add -A && c=$(git commit-tree -p HEAD -m wip $(git write-tree)) \
             && git update-ref refs/bench/back-{run} $c && rm -f {index}"
        ));
        let refspec = format!("refs/bench/back-{run}:refs/bench/back-{run}");
        w.git(&w.laptop, &["fetch", "-q", &url, &refspec]);
        let commit = format!("refs/bench/back-{run}");
        w.git(&w.laptop, &["checkout", "-q", &commit, "--", "."]);
        w.git(&w.laptop, &["reset", "-q"]);
    });
    check_same(&w.laptop, reply, "plain git, back");
    remove(&there);
    remove(&w.laptop);
    (out.0, back.0)
}

/// A commit of the worktree at `dir` with its untracked files, on HEAD,
/// made in a copy of the index (its stat data spares hashing the tracked
/// files again) so the real one stays as it is.
fn wip_commit(w: &World, dir: &Path) -> String {
    let index = w.env.path("wip-index");
    std::fs::copy(dir.join(w.git(dir, &["rev-parse", "--git-path", "index"]).trim()), &index).unwrap();
    let index = index.to_str().unwrap();
    let git = |args: &[&str]| {
        let out = w.env.git_with_env(dir, args, &[("GIT_INDEX_FILE", index)]);
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    git(&["add", "-A"]);
    let tree = git(&["write-tree"]);
    let commit = git(&["commit-tree", "-p", "HEAD", "-m", "wip", &tree]);
    let _ = std::fs::remove_file(index);
    commit
}

/// The same large files in a second thread: handed to the dev box while the
/// first thread (which brought them) is there, the host's repository should
/// grow by about nothing.
fn dedup(w: &World, log: &Path, change: Change, mib: f64) {
    let repository = w.remote_clone.join(".git");
    let mut there = Vec::new();
    // Growth of the host's repository and bytes ssh sent, for one handoff.
    let mut hand_off = |thread: u64, name: &str| {
        let ssh_log = w.env.path(&format!("ssh-{name}.log"));
        let ssh = format!("{} -o LogLevel=VERBOSE -E {}", w.sshd.ssh_command(), shell_quote(ssh_log.to_str().unwrap()));
        let before = du(&repository);
        let args = [&thread.to_string(), HOST, "--yes", "--json"];
        let (watched, json) = run_client(w, &args, &[("GIT_SSH_COMMAND", &ssh)]);
        let grew = du(&repository).saturating_sub(before) as f64 / 1_048_576.0;
        rss::take_helper_peaks(log);
        there.push(PathBuf::from(json["owner_worktree"].as_str().unwrap()));
        check_same(there.last().unwrap(), &change, name);
        let sent = sent_bytes(&ssh_log).map(|b| b as f64 / 1_048_576.0);
        (grew, sent, watched.took)
    };
    put(&w.laptop, &change);
    let first = w.new_thread("bench/large-first");
    let (first_grew, first_sent, _) = hand_off(first, "the first thread");
    remove(&w.laptop);
    put(&w.laptop, &change);
    let second = w.new_thread("bench/large-again");
    let (grew, sent, took) = hand_off(second, "the second thread");
    let shown = |m: Option<f64>| m.map_or("? MiB".into(), |m| format!("{m:.1} MiB"));
    println!(
        "the same {mib:.0} MiB again in a second thread, the first still on the host: host repository grew \
         {grew:.1} MiB, {} sent over ssh, {:.2} s (the first thread: grew {first_grew:.1} MiB, {} sent)",
        shown(sent),
        took.as_secs_f64(),
        shown(first_sent)
    );
    for dir in there.iter().chain([&w.laptop]) {
        remove(dir);
    }
    record(
        BIN,
        &format!("the same {mib:.0} MiB in a second thread: host repo growth / sent"),
        &format!("{grew:.1} MiB / {} (first thread: {first_grew:.0} / {})", shown(sent), shown(first_sent)),
        "~0 MiB",
        grew < 1.0 && sent.is_none_or(|m| m < 1.0),
    );
}

/// Bytes ssh reported sending ("Transferred: sent N, received M bytes"), summed over its connections.
fn sent_bytes(log: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(log).ok()?;
    let sent: Vec<u64> = text
        .lines()
        .filter_map(|l| l.split("Transferred: sent ").nth(1)?.split(',').next()?.trim().parse().ok())
        .collect();
    (!sent.is_empty()).then(|| sent.iter().sum())
}

/// `du -sb`: bytes under `dir`.
fn du(dir: &Path) -> u64 {
    let out = std::process::Command::new("du").arg("-sb").arg(dir).stderr(Stdio::null()).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// New bytes no machine has seen: random for `assets/`, text for `data/`.
fn fresh_change(seed: u64, size: usize) -> Change {
    let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    FILES
        .iter()
        .map(|(dir, name, random)| {
            let bytes = if *random { random_bytes(&mut rng, size) } else { text(&mut rng, size) };
            (format!("{dir}/{name}"), bytes)
        })
        .collect()
}

fn random_bytes(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(size + 8);
    while bytes.len() < size {
        bytes.extend_from_slice(&rng.next().to_le_bytes());
    }
    bytes.truncate(size);
    bytes
}

/// Lines of words and numbers: compresses about as well as prose or logs do.
fn text(rng: &mut Rng, size: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the", "handoff", "thread", "worktree", "of", "and", "a", "model", "weights", "layer", "loss", "epoch", "step",
        "batch", "to", "in", "with", "gradient", "value", "for", "is", "data", "set", "train", "eval", "token",
        "cache", "on", "host", "fixture", "output", "build",
    ];
    let mut text = String::with_capacity(size + 128);
    let mut line = 0u64;
    while text.len() < size {
        line += 1;
        text.push_str(&format!("{line:08} "));
        for _ in 0..(6 + rng.below(10)) {
            let word: &&str = rng.pick(WORDS);
            text.push_str(word);
            text.push(' ');
        }
        text.push_str(&format!("{:x}\n", rng.next() >> 24));
    }
    text.truncate(size);
    text.into_bytes()
}

fn put(dir: &Path, change: &Change) {
    for (path, bytes) in change {
        crate::harness::write(dir, path.as_bytes(), bytes);
    }
}

/// Remove the change's directories from a worktree.
fn remove(dir: &Path) {
    for top in ["assets", "data"] {
        let _ = std::fs::remove_dir_all(dir.join(top));
    }
}

/// Panics unless every file of the change is at `dir` with its bytes.
fn check_same(dir: &Path, change: &Change, what: &str) {
    for (path, bytes) in change {
        let there =
            std::fs::read(dir.join(path)).unwrap_or_else(|e| panic!("{what}: {path} at {}: {e}", dir.display()));
        assert!(there == *bytes, "{what}: {path} at {} has other bytes", dir.display());
    }
}

fn kib_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
