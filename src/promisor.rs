//! Partial clones (`git clone --filter=blob:none`): some objects are not
//! stored but promised by a remote, and git fetches them when a checkout
//! needs them. That works only while the promisor remote can be reached, so
//! a handoff checks it before it relies on it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use gix::ObjectId;

use crate::error::{Error, Result};
use crate::git::Git;
use crate::repo::Repo;

/// How long a promisor remote may take to answer before it counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// A remote that promises the objects a partial clone lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promisor {
    pub name: String,
    pub url: String,
}

/// The promisor remotes of a clone (`remote.<name>.promisor`, `extensions.partialClone`); empty for a full one.
pub fn promisors(repo: &Repo) -> Vec<Promisor> {
    let config = repo.gix.config_snapshot();
    let named = config.string("extensions.partialClone").map(|n| n.to_string());
    let mut found: Vec<Promisor> = Vec::new();
    if let Some(sections) = config.plumbing().sections_by_name("remote") {
        for section in sections {
            let Some(name) = section.header().subsection_name().map(|n| n.to_string()) else { continue };
            let promises = section.value("promisor").is_some_and(|v| is_true(&v.to_string()));
            if !promises && named.as_deref() != Some(name.as_str()) {
                continue;
            }
            if let Some(url) = section.value("url").map(|u| u.to_string()) {
                if !found.iter().any(|p| p.name == name) {
                    found.push(Promisor { name, url });
                }
            }
        }
    }
    found
}

fn is_true(value: &str) -> bool {
    matches!(value.trim().to_ascii_lowercase().as_str(), "" | "true" | "yes" | "on" | "1")
}

/// The objects under `trees` that this clone lacks (without fetching any).
pub fn missing(repo: &Repo, trees: &[ObjectId]) -> Result<Vec<ObjectId>> {
    if trees.is_empty() {
        return Ok(Vec::new());
    }
    let mut args =
        vec!["rev-list".to_owned(), "--objects".into(), "--missing=print".into(), "--no-object-names".into()];
    args.extend(trees.iter().map(ObjectId::to_string));
    args.push("--".into());
    let listed = Git::new(repo.common_dir(), None).text(&args)?;
    Ok(listed
        .lines()
        .filter_map(|l| l.strip_prefix('?'))
        .filter_map(|l| ObjectId::from_hex(l.as_bytes()).ok())
        .collect())
}

/// Refuse, naming where they would come from, when a checkout of `trees`
/// needs objects this partial clone lacks and no promisor remote answers.
/// `here` is this machine as the user calls it (`devbox`, `this computer`).
pub fn check_available(repo: &Repo, trees: &[ObjectId], here: &str) -> Result<()> {
    let promisors = promisors(repo);
    if promisors.is_empty() {
        return Ok(());
    }
    let lacking = missing(repo, trees)?;
    if lacking.is_empty() {
        return Ok(());
    }
    let mut failures = Vec::new();
    for promisor in &promisors {
        match probe(repo, promisor) {
            Ok(()) => return Ok(()),
            Err(why) => failures.push(format!("{} ({}): {why}", promisor.name, promisor.url)),
        }
    }
    let first = &promisors[0];
    Err(Error::refused(
        "promisor_unreachable",
        format!(
            "the clone on {here} is a partial clone and lacks {} object{} the thread's files need ({}…); they must \
             come from its promisor remote, which cannot be reached from {here}: {}",
            lacking.len(),
            if lacking.len() == 1 { "" } else { "s" },
            short(&lacking[0]),
            failures.join("; ")
        ),
    )
    .with_help(format!(
        "make {} reachable from {here} (or point `remote.{}.url` there at a copy it can reach), then run the handoff again",
        first.url, first.name
    )))
}

/// Can the promisor remote be reached now? (`git ls-remote`, never prompting, with a deadline.)
fn probe(repo: &Repo, promisor: &Promisor) -> std::result::Result<(), String> {
    let mut cmd = Git::new(repo.common_dir(), None).command(["ls-remote", "--quiet", &promisor.name, "HEAD"]);
    cmd.env("GIT_TERMINAL_PROMPT", "0").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                return if status.success() {
                    Ok(())
                } else {
                    Err(stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("no answer").trim().to_owned())
                };
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs()));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn short(id: &ObjectId) -> String {
    id.to_hex_with_len(12).to_string()
}
