//! What makes two clones "the same Git repository": a sha256 over the sorted
//! root commits of the default branch, cached in the clone's config. A
//! shallow clone (whose roots are unknown) uses its normalised origin URL.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::repo::Repo;

const CACHE_KEY: &str = "codex-handoff.fingerprint";

pub fn of(repo: &Repo) -> Result<String> {
    let git = crate::git::Git::new(repo.common_dir(), None);
    if let Ok(cached) = git.text(["config", "--local", "--get", CACHE_KEY]) {
        if !cached.is_empty() {
            return Ok(cached);
        }
    }
    let fingerprint = if repo.common_dir().join("shallow").exists() {
        let url = git.text(["config", "--get", "remote.origin.url"]).map_err(|_| {
            Error::failed("no_fingerprint", "this shallow clone has no origin URL to recognise it by")
                .with_help("fetch its full history (`git fetch --unshallow`) or set remote.origin.url")
        })?;
        format!("url:{}", hex(&Sha256::digest(normalize_url(&url).as_bytes())))
    } else {
        let branch = default_branch(repo)?;
        // `--`: a revision, never a path (git runs inside the git dir, where `refs/heads/main` is a file).
        let roots = git.text(["rev-list", "--max-parents=0", &branch, "--"])?;
        let mut roots: Vec<&str> = roots.lines().filter(|l| !l.is_empty()).collect();
        roots.sort_unstable();
        let mut hasher = Sha256::new();
        for root in roots {
            hasher.update(root.as_bytes());
            hasher.update(b"\n");
        }
        hex(&hasher.finalize())
    };
    // A cache only: failing to write it changes nothing else.
    let _ = git.run(["config", "--local", CACHE_KEY, &fingerprint]);
    Ok(fingerprint)
}

/// origin's HEAD branch if known, else main/master, else HEAD's commit (fully qualified names only).
fn default_branch(repo: &Repo) -> Result<String> {
    let git = crate::git::Git::new(repo.common_dir(), None);
    if let Ok(target) = git.text(["symbolic-ref", "-q", "refs/remotes/origin/HEAD"]) {
        if !target.is_empty() {
            return Ok(target);
        }
    }
    for candidate in ["refs/heads/main", "refs/heads/master"] {
        if git.run(["rev-parse", "-q", "--verify", &format!("{candidate}^{{commit}}")]).is_ok() {
            return Ok(candidate.to_owned());
        }
    }
    // This worktree's HEAD (a linked worktree's differs from the common dir's).
    if let Ok(head) = repo.git().text(["rev-parse", "-q", "--verify", "HEAD^{commit}"]) {
        return Ok(head);
    }
    Err(Error::failed("no_fingerprint", "this repository has no commits yet, so it cannot be recognised elsewhere")
        .with_help("make a first commit, then try again"))
}

/// `git@host:a/b.git`, `ssh://git@host/a/b` and `https://host/a/b/` all become `host/a/b`.
pub fn normalize_url(url: &str) -> String {
    let mut rest = url.trim();
    if let Some((_, after)) = rest.split_once("://") {
        rest = after;
    } else if let Some((host, path)) = rest.split_once(':') {
        // scp-like syntax: host:path
        if !host.contains('/') {
            let host = host.rsplit('@').next().unwrap_or(host).to_ascii_lowercase();
            return format!("{host}/{}", clean_path(path));
        }
    }
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.rsplit('@').next().unwrap_or(host);
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    format!("{host}/{}", clean_path(path))
}

fn clean_path(path: &str) -> String {
    let path = path.trim_matches('/');
    path.strip_suffix(".git").unwrap_or(path).trim_end_matches('/').to_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::normalize_url;

    #[test]
    fn urls_of_one_repository_agree() {
        for url in [
            "git@github.com:a/b.git",
            "https://github.com/a/b",
            "https://github.com/a/b.git/",
            "ssh://git@GitHub.com/a/b.git",
            "ssh://git@github.com:22/a/b",
        ] {
            assert_eq!(normalize_url(url), "github.com/a/b", "{url}");
        }
        assert_ne!(normalize_url("git@github.com:a/c.git"), "github.com/a/b");
    }
}
