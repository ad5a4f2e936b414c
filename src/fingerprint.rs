//! What makes two clones "the same Git repository".
//!
//! A clone is known by its roots — a sha256 over the sorted root commits of
//! its default branch, cached in the clone's config — when its history reaches
//! them, and always by the normalised URLs of all its remotes. A shallow
//! clone whose history is cut off above its roots is known by its URLs only;
//! it also tells where it is cut off (`.git/shallow`), so that the other side
//! can tell whether the two histories meet before anything is sent.

use gix::ObjectId;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::git::Git;
use crate::repo::Repo;

const CACHE_KEY: &str = "codex-handoff.fingerprint";

/// How one clone is recognised elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The roots fingerprint; `None` when the clone's history does not reach its roots (shallow) or is empty.
    pub roots: Option<String>,
    /// The normalised URLs of every remote, `origin`'s first.
    pub urls: Vec<String>,
    /// Where a shallow clone's history is cut off (`.git/shallow`); empty for a full clone.
    pub shallow: Vec<ObjectId>,
}

impl Identity {
    pub fn of(repo: &Repo) -> Result<Identity> {
        let shallow: Vec<ObjectId> =
            repo.gix.shallow_commits().ok().flatten().map(|c| c.iter().copied().collect()).unwrap_or_default();
        let roots = roots(repo, &shallow)?;
        Ok(Identity { roots, urls: remote_urls(repo), shallow })
    }

    /// The clone this command runs in must be recognisable by something.
    pub fn of_this_clone(repo: &Repo) -> Result<Identity> {
        let identity = Identity::of(repo)?;
        if identity.roots.is_none() && identity.urls.is_empty() {
            return Err(if identity.shallow.is_empty() {
                Error::failed(
                    "no_fingerprint",
                    "this repository has no commits yet, so it cannot be recognised elsewhere",
                )
                .with_help("make a first commit, or add the remote it is a clone of, then try again")
            } else {
                Error::failed("no_fingerprint", "this shallow clone has no remote URL to recognise it by")
                    .with_help("fetch its full history (`git fetch --unshallow`) or add the remote it was cloned from")
            });
        }
        Ok(identity)
    }

    pub fn is_shallow(&self) -> bool {
        !self.shallow.is_empty()
    }

    /// `roots` or `url`: what the clone is recognised by when nothing else agrees.
    pub fn kind(&self) -> &'static str {
        if self.roots.is_some() {
            "roots"
        } else {
            "url"
        }
    }

    /// The roots fingerprint, or the first normalised URL.
    pub fn value(&self) -> Option<String> {
        self.roots.clone().or_else(|| self.urls.first().cloned())
    }

    /// The single value helpers of the first protocol compare: the roots,
    /// else `url:` and the sha256 of the first normalised URL.
    pub fn legacy(&self) -> Option<String> {
        self.roots.clone().or_else(|| self.urls.first().map(|u| url_digest(u)))
    }
}

/// How the first protocol's clients name a URL: `url:` and the sha256 of the normalised URL.
pub fn url_digest(normalized: &str) -> String {
    format!("url:{}", hex(&Sha256::digest(normalized.as_bytes())))
}

/// The boundary commits of a shallow clone that the history of `heads` runs
/// into (the ones a push of them needs the other side to have).
pub fn boundaries_under(repo: &Repo, heads: &[ObjectId], shallow: &[ObjectId]) -> Result<Vec<ObjectId>> {
    if heads.is_empty() || shallow.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec!["rev-list".to_owned()];
    args.extend(heads.iter().map(ObjectId::to_string));
    args.push("--".into());
    let listed = Git::new(repo.common_dir(), None).text(&args)?;
    Ok(listed
        .lines()
        .filter_map(|l| ObjectId::from_hex(l.trim().as_bytes()).ok())
        .filter(|c| shallow.contains(c))
        .collect())
}

fn roots(repo: &Repo, shallow: &[ObjectId]) -> Result<Option<String>> {
    // Only the clone's own config holds the cache (a global value would be a mistake).
    let cached = repo
        .gix
        .config_snapshot()
        .plumbing()
        .string_filter(CACHE_KEY, |meta| meta.source == gix::config::Source::Local)
        .map(|v| v.to_string());
    // Older versions cached a shallow clone's URL here; only roots are cached now.
    if let Some(cached) = cached.filter(|c| !c.is_empty() && !c.starts_with("url:")) {
        return Ok(Some(cached));
    }
    let Some(branch) = default_branch(repo) else { return Ok(None) };
    // `--`: a revision, never a path (git runs inside the git dir, where `refs/heads/main` is a file).
    let listed = Git::new(repo.common_dir(), None).text(["rev-list", "--max-parents=0", &branch, "--"])?;
    let mut roots: Vec<&str> = listed.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    // In a shallow clone the commits where history is cut off look like roots; they are not.
    if roots.is_empty() || roots.iter().any(|r| ObjectId::from_hex(r.as_bytes()).is_ok_and(|id| shallow.contains(&id)))
    {
        return Ok(None);
    }
    roots.sort_unstable();
    let mut hasher = Sha256::new();
    for root in roots {
        hasher.update(root.as_bytes());
        hasher.update(b"\n");
    }
    let fingerprint = hex(&hasher.finalize());
    // A cache only: failing to write it changes nothing else.
    let _ = Git::new(repo.common_dir(), None).run(["config", "--local", CACHE_KEY, &fingerprint]);
    Ok(Some(fingerprint))
}

/// origin's HEAD branch if known, else main/master, else this worktree's HEAD
/// commit; always a fully qualified name or a commit id. `None` without commits.
fn default_branch(repo: &Repo) -> Option<String> {
    let target = repo
        .gix
        .try_find_reference("refs/remotes/origin/HEAD")
        .ok()
        .flatten()
        .and_then(|r| r.target().try_name().map(|n| n.as_bstr().to_string()));
    let candidates = target.into_iter().chain(["refs/heads/main".to_owned(), "refs/heads/master".to_owned()]);
    for candidate in candidates {
        if let Ok(Some(mut reference)) = repo.gix.try_find_reference(candidate.as_str()) {
            if reference.peel_to_commit().is_ok() {
                return Some(candidate);
            }
        }
    }
    // This worktree's HEAD (a linked worktree's differs from the common dir's).
    repo.gix.head_id().ok().map(|id| id.to_string())
}

/// The normalised URLs of every remote (`remote.<name>.url`), origin's first, without repeats.
fn remote_urls(repo: &Repo) -> Vec<String> {
    let config = repo.gix.config_snapshot();
    let mut named: Vec<(bool, String)> = Vec::new();
    if let Some(sections) = config.plumbing().sections_by_name("remote") {
        for section in sections {
            let is_origin = section.header().subsection_name().is_some_and(|n| n == "origin");
            for url in section.values("url") {
                let url = url.to_string();
                if !url.trim().is_empty() {
                    named.push((is_origin, normalize_url(&absolute_if_path(repo, &url))));
                }
            }
        }
    }
    // Stable: origin's first, the rest in config order.
    named.sort_by_key(|(is_origin, _)| !is_origin);
    let mut urls: Vec<String> = Vec::new();
    for (_, url) in named {
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    urls
}

/// A relative path as a remote URL is relative to the worktree (where git runs).
fn absolute_if_path(repo: &Repo, url: &str) -> String {
    // Neither `scheme://` nor scp-like `host:path`.
    let is_path = !url.contains("://") && url.split_once(':').is_none_or(|(host, _)| host.contains('/'));
    if is_path && !std::path::Path::new(url).is_absolute() {
        if let Some(base) = repo.gix.workdir().map(crate::repo::absolute) {
            return crate::repo::absolute(&base.join(url)).to_string_lossy().into_owned();
        }
    }
    url.to_owned()
}

/// `git@host:a/b.git`, `ssh://git@host/a/b` and `https://host/a/b/` all become
/// `host/a/b`; `/srv/a.git` and `file:///srv/a` become `/srv/a`.
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
    use super::{normalize_url, url_digest};

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
        assert_eq!(normalize_url("/srv/git/app.git"), "/srv/git/app");
        assert_eq!(normalize_url("file:///srv/git/app"), "/srv/git/app");
    }

    #[test]
    fn url_digests_are_what_the_first_protocol_sent() {
        // sha256("github.com/a/b"), as the first protocol's clients compute it.
        assert_eq!(
            url_digest("github.com/a/b"),
            "url:b703f2afd8642d7917c19335acfbe2f46d649f3c1f9aecdcbf8572e40c470e8a"
        );
    }
}
