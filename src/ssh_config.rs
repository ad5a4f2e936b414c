//! `~/.ssh/config` as OpenSSH reads it, for what this program needs: the
//! concrete host aliases (hosts without `host add`, as the Codex App finds
//! them) and, for the `ssh2` transport, where and how to connect to one
//! (HostName, Port, User, IdentityFile, IdentitiesOnly, UserKnownHostsFile,
//! GlobalKnownHostsFile, HostKeyAlias, ConnectTimeout, RevokedHostKeys,
//! HostKeyAlgorithms), and what that transport cannot do (ProxyJump,
//! ProxyCommand, certificates, PKCS#11 and FIDO providers, and the trust
//! options `trust` lists).
//!
//! Semantics (ssh_config(5)):
//! - the first obtained value of a keyword wins; IdentityFile accumulates;
//! - lines before the first Host/Match apply to every host;
//! - `Host p1 p2 !p3` matches when some pattern matches the alias and no
//!   negated one does; `*` and `?` wildcards;
//! - `Include` anywhere, several paths, glob wildcards, `~`; relative paths
//!   are relative to `~/.ssh` (to `/etc/ssh` in the system file); inside a
//!   Host block it applies only when that block matches;
//! - `Keyword value` or `Keyword=value`, double quotes, `#` comments;
//! - `%` tokens in paths: %% %h %p %r %u %d %n %l %i %k;
//! - `Match all/host/originalhost/user/localuser` are evaluated; a block
//!   with `exec`, `canonical`, `final`, `tagged` or a negated criterion is
//!   treated as not matching and noted in `warnings` (no command is run).

use std::path::{Path, PathBuf};

mod paths;
pub mod trust;

use paths::{expand_tilde, glob};

const MAX_INCLUDE_DEPTH: usize = 16;

/// One line that applies under conditions, in file order (Includes inlined).
#[derive(Debug, Clone)]
struct Line {
    /// The enclosing block's condition, and the block an Include sat in: all must hold.
    conds: Vec<Cond>,
    keyword: String,
    args: Vec<String>,
    /// `file:line`, for messages.
    origin: String,
}

#[derive(Debug, Clone)]
enum Cond {
    Host(Vec<String>),
    Match(Vec<(String, Vec<String>)>),
}

#[derive(Debug, Default)]
pub struct SshConfig {
    lines: Vec<Line>,
    /// Every `Host` pattern seen, in order.
    host_patterns: Vec<String>,
    /// What was read but not evaluated (shown by the transport when it matters).
    pub warnings: Vec<String>,
    home: PathBuf,
}

/// What one alias resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub alias: String,
    pub hostname: String,
    pub port: u16,
    pub user: String,
    pub identity_files: Vec<PathBuf>,
    pub identities_only: bool,
    pub known_hosts_files: Vec<PathBuf>,
    pub host_key_alias: Option<String>,
    pub connect_timeout: Option<u64>,
    /// `RevokedHostKeys`: files of keys never to accept.
    pub revoked_host_keys: Vec<PathBuf>,
    /// `HostKeyAlgorithms` as written (`None`: OpenSSH's default).
    pub host_key_algorithms: Option<String>,
    /// Options the `ssh2` transport cannot honour, each with where it was set.
    pub unsupported: Vec<String>,
}

impl SshConfig {
    /// The user's `~/.ssh/config` (and what it includes); `home` is `~`.
    /// A missing file is an empty configuration.
    pub fn user(home: &Path) -> std::io::Result<SshConfig> {
        let mut cfg = SshConfig { home: home.to_owned(), ..Default::default() };
        let file = home.join(".ssh").join("config");
        if file.is_file() {
            cfg.read_file(&file, &home.join(".ssh"), &[], 0)?;
        }
        Ok(cfg)
    }

    /// The user's file, then the system-wide one, as `ssh` reads them.
    pub fn user_and_system(home: &Path) -> std::io::Result<SshConfig> {
        let mut cfg = SshConfig::user(home)?;
        let system = Path::new("/etc/ssh/ssh_config");
        if system.is_file() {
            cfg.read_file(system, Path::new("/etc/ssh"), &[], 0)?;
        }
        Ok(cfg)
    }

    /// Read `text` as if it were the file `file` (for tests).
    #[cfg(test)]
    fn from_text(home: &Path, text: &str) -> SshConfig {
        let mut cfg = SshConfig { home: home.to_owned(), ..Default::default() };
        cfg.read_text(Path::new("config"), text, &home.join(".ssh"), &[], 0);
        cfg
    }

    fn read_file(&mut self, file: &Path, rel_base: &Path, outer: &[Cond], depth: usize) -> std::io::Result<()> {
        if depth > MAX_INCLUDE_DEPTH {
            self.warnings.push(format!("{}: Include nested too deeply", file.display()));
            return Ok(());
        }
        let bytes = std::fs::read(file)?;
        self.read_text(file, &String::from_utf8_lossy(&bytes), rel_base, outer, depth);
        Ok(())
    }

    fn read_text(&mut self, file: &Path, text: &str, rel_base: &Path, outer: &[Cond], depth: usize) {
        let mut block: Option<Cond> = None;
        for (n, raw) in text.lines().enumerate() {
            let origin = format!("{}:{}", file.display(), n + 1);
            let Some((keyword, args)) = split_line(raw) else { continue };
            let conds = || outer.iter().cloned().chain(block.clone()).collect::<Vec<_>>();
            match keyword.as_str() {
                "host" => {
                    self.host_patterns.extend(args.iter().cloned());
                    block = Some(Cond::Host(args));
                }
                "match" => block = Some(parse_match(&args, &origin, &mut self.warnings)),
                "include" => {
                    let here = conds();
                    for pattern in &args {
                        let path = expand_tilde(pattern, &self.home);
                        let path = if path.is_absolute() { path } else { rel_base.join(path) };
                        let mut files = glob(&path);
                        files.sort();
                        for found in files.into_iter().filter(|f| f.is_file()) {
                            if let Err(e) = self.read_file(&found, rel_base, &here, depth + 1) {
                                self.warnings.push(format!("{origin}: cannot read {}: {e}", found.display()));
                            }
                        }
                    }
                }
                _ => self.lines.push(Line { conds: conds(), keyword, args, origin }),
            }
        }
    }

    /// Concrete aliases, in file order: Host patterns with no wildcard and
    /// no negation (pattern-only entries name no host).
    pub fn concrete_aliases(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in &self.host_patterns {
            if !p.is_empty() && !p.contains(['*', '?', '!']) && !out.contains(p) {
                out.push(p.clone());
            }
        }
        out
    }

    /// Resolve `alias` as `ssh alias` would; `local_user` is the login name here.
    pub fn resolve(&self, alias: &str, local_user: &str) -> Resolved {
        let mut first: Vec<(String, Vec<String>)> = Vec::new();
        let mut origins: Vec<String> = Vec::new();
        let mut identity_files: Vec<String> = Vec::new();
        let mut unsupported = Vec::new();
        for line in &self.lines {
            // Match host/user see the values obtained so far, as in OpenSSH's single pass.
            let hostname = value(&first, "hostname").map(|h| h.replace("%h", alias)).unwrap_or(alias.to_owned());
            let user = value(&first, "user").unwrap_or(local_user.to_owned());
            let ctx = MatchCtx { alias, hostname: &hostname, user: &user, local_user };
            if !line.conds.iter().all(|c| cond_matches(c, &ctx)) {
                // A block that might apply, but cannot be evaluated here, may not decide trust.
                let unknown = line.conds.iter().any(cond_unevaluated);
                let rest_hold = line.conds.iter().all(|c| cond_unevaluated(c) || cond_matches(c, &ctx));
                if unknown && rest_hold && trust::TRUST_BEARING.contains(&line.keyword.as_str()) {
                    unsupported.push(format!(
                        "{} {} ({}), in a Match block that is not evaluated",
                        trust::keyword_name(&line.keyword),
                        line.args.join(" "),
                        line.origin
                    ));
                }
                continue;
            }
            let jump_set = first.iter().any(|(k, _)| k == "proxyjump" || k == "proxycommand");
            match line.keyword.as_str() {
                "identityfile" => identity_files.extend(line.args.first().cloned()),
                // ProxyJump and ProxyCommand compete: whichever comes first wins.
                "proxyjump" | "proxycommand" if !jump_set => {
                    let v = line.args.join(" ");
                    if !v.eq_ignore_ascii_case("none") {
                        unsupported.push(format!("{} {v} ({})", trust::keyword_name(&line.keyword), line.origin));
                    }
                }
                "certificatefile" | "pkcs11provider" | "securitykeyprovider" => {
                    let v = line.args.join(" ");
                    if !v.eq_ignore_ascii_case("none") {
                        unsupported.push(format!("{} {v} ({})", trust::keyword_name(&line.keyword), line.origin));
                    }
                }
                _ => {}
            }
            if !first.iter().any(|(k, _)| *k == line.keyword) {
                first.push((line.keyword.clone(), line.args.clone()));
                origins.push(line.origin.clone());
            }
        }
        for ((keyword, args), origin) in first.iter().zip(&origins) {
            if let Some(why) = trust::refused(keyword, args) {
                unsupported.push(format!("{} {} ({origin}): {why}", trust::keyword_name(keyword), args.join(" ")));
            }
        }
        let port = value(&first, "port").and_then(|p| p.parse().ok()).unwrap_or(22);
        let user = value(&first, "user").unwrap_or(local_user.to_owned());
        let raw_hostname = value(&first, "hostname").unwrap_or("%h".to_owned());
        let hostname = raw_hostname.replace("%%", "\0").replace("%h", alias).replace('\0', "%");
        let host_key_alias = value(&first, "hostkeyalias");
        let tokens = Tokens {
            alias,
            hostname: &hostname,
            port,
            user: &user,
            local_user,
            home: &self.home,
            key_alias: host_key_alias.as_deref(),
        };
        let identity_files: Vec<PathBuf> = if identity_files.is_empty() {
            ["id_rsa", "id_ecdsa", "id_ed25519"].iter().map(|n| self.home.join(".ssh").join(n)).collect()
        } else {
            identity_files
                .iter()
                .filter(|f| !f.eq_ignore_ascii_case("none"))
                .map(|f| expand_tilde(&tokens.expand(f), &self.home))
                .collect()
        };
        let files = |key: &str, default: &[&str]| -> Vec<PathBuf> {
            match first.iter().find(|(k, _)| k == key).map(|(_, a)| a.clone()) {
                Some(a) if a.len() == 1 && a[0].eq_ignore_ascii_case("none") => Vec::new(),
                Some(a) => a.iter().map(|f| expand_tilde(&tokens.expand(f), &self.home)).collect(),
                None => default.iter().map(|f| expand_tilde(f, &self.home)).collect(),
            }
        };
        let mut known_hosts_files = files("userknownhostsfile", &["~/.ssh/known_hosts", "~/.ssh/known_hosts2"]);
        known_hosts_files
            .extend(files("globalknownhostsfile", &["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"]));
        let revoked_host_keys = files("revokedhostkeys", &[]);
        Resolved {
            alias: alias.to_owned(),
            hostname,
            port,
            user,
            identity_files,
            identities_only: value(&first, "identitiesonly").is_some_and(|v| is_yes(&v)),
            known_hosts_files,
            host_key_alias,
            connect_timeout: value(&first, "connecttimeout").and_then(|v| v.parse().ok()),
            revoked_host_keys,
            host_key_algorithms: value(&first, "hostkeyalgorithms"),
            unsupported,
        }
    }
}

/// The login name of this process's user: `$USER`, else the passwd entry.
pub fn local_user() -> String {
    if let Some(user) = std::env::var_os("USER").filter(|u| !u.is_empty()) {
        return user.to_string_lossy().into_owned();
    }
    // SAFETY: getpwuid returns a pointer into static storage or null; the
    // name is copied out at once, on this thread.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned()
    }
}

fn value(first: &[(String, Vec<String>)], key: &str) -> Option<String> {
    first.iter().find(|(k, _)| k == key).and_then(|(_, a)| a.first().cloned())
}

fn is_yes(v: &str) -> bool {
    v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("true")
}

struct MatchCtx<'a> {
    alias: &'a str,
    hostname: &'a str,
    user: &'a str,
    local_user: &'a str,
}

/// A `Match` criterion this reader does not evaluate (treated as not matching).
fn cond_unevaluated(c: &Cond) -> bool {
    matches!(c, Cond::Match(criteria) if criteria.iter().any(|(name, _)| name == "unsupported"))
}

fn cond_matches(c: &Cond, ctx: &MatchCtx<'_>) -> bool {
    match c {
        Cond::Host(patterns) => pattern_list_matches(patterns, ctx.alias),
        Cond::Match(criteria) => criteria.iter().all(|(name, args)| {
            let list: Vec<String> = args.iter().flat_map(|a| a.split(',').map(str::to_owned)).collect();
            match name.as_str() {
                "all" => true,
                "host" => pattern_list_matches(&list, ctx.hostname),
                "originalhost" => pattern_list_matches(&list, ctx.alias),
                "user" => pattern_list_matches(&list, ctx.user),
                "localuser" => pattern_list_matches(&list, ctx.local_user),
                _ => false,
            }
        }),
    }
}

/// OpenSSH's match_pattern_list: some pattern matches, and no negated one does.
pub fn pattern_list_matches(patterns: &[String], name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let mut matched = false;
    for p in patterns {
        let p = p.to_ascii_lowercase();
        if let Some(negated) = p.strip_prefix('!') {
            if wildcard_match(negated, &name) {
                return false;
            }
        } else if wildcard_match(&p, &name) {
            matched = true;
        }
    }
    matched
}

fn parse_match(args: &[String], origin: &str, warnings: &mut Vec<String>) -> Cond {
    let mut criteria = Vec::new();
    let mut i = 0;
    while let Some(word) = args.get(i) {
        let word = word.to_ascii_lowercase();
        let (negated, name) = match word.strip_prefix('!') {
            Some(n) => (true, n.to_owned()),
            None => (false, word),
        };
        let takes_argument = !matches!(name.as_str(), "all" | "canonical" | "final");
        let evaluated = matches!(name.as_str(), "all" | "host" | "originalhost" | "user" | "localuser");
        if !evaluated || negated {
            warnings.push(format!("{origin}: `Match {}` is not evaluated; the block is skipped", args.join(" ")));
            criteria.push(("unsupported".to_owned(), Vec::new()));
        } else {
            let arg = if takes_argument { args.get(i + 1).cloned().into_iter().collect() } else { Vec::new() };
            criteria.push((name, arg));
        }
        i += if takes_argument { 2 } else { 1 };
    }
    Cond::Match(criteria)
}

/// `Keyword args...` or `Keyword=args`, double quotes grouping; `None` for blank and comment lines.
fn split_line(raw: &str) -> Option<(String, Vec<String>)> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (keyword, rest) = match line.find(|c: char| c.is_whitespace() || c == '=') {
        Some(i) => line.split_at(i),
        None => (line, ""),
    };
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
    let mut args = Vec::new();
    let (mut current, mut in_quotes, mut has) = (String::new(), false, false);
    for c in rest.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                has = true;
            }
            '#' if !in_quotes && !has => break,
            c if c.is_whitespace() && !in_quotes => {
                if has {
                    args.push(std::mem::take(&mut current));
                    has = false;
                }
            }
            c => {
                current.push(c);
                has = true;
            }
        }
    }
    if has {
        args.push(current);
    }
    Some((keyword.to_ascii_lowercase(), args))
}

struct Tokens<'a> {
    alias: &'a str,
    hostname: &'a str,
    port: u16,
    user: &'a str,
    local_user: &'a str,
    home: &'a Path,
    key_alias: Option<&'a str>,
}

impl Tokens<'_> {
    fn expand(&self, text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('%') => out.push('%'),
                Some('h') => out.push_str(self.hostname),
                Some('n') => out.push_str(self.alias),
                Some('p') => out.push_str(&self.port.to_string()),
                Some('r') => out.push_str(self.user),
                Some('u') => out.push_str(self.local_user),
                Some('d') => out.push_str(&self.home.to_string_lossy()),
                Some('k') => out.push_str(self.key_alias.unwrap_or(self.hostname)),
                // SAFETY: getuid has no preconditions.
                Some('i') => out.push_str(&unsafe { libc::getuid() }.to_string()),
                Some('l') => out.push_str(&this_hostname()),
                Some(other) => {
                    out.push('%');
                    out.push(other);
                }
                None => out.push('%'),
            }
        }
        out
    }
}

fn this_hostname() -> String {
    crate::os::hostname().unwrap_or_default()
}

/// OpenSSH's match_pattern: `*` any run of characters, `?` any one.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if p.get(pi).is_some_and(|&c| c == '?' || c == t[ti]) {
            pi += 1;
            ti += 1;
        } else if p.get(pi) == Some(&'*') {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while p.get(pi) == Some(&'*') {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests;
