//! Strict host key checking against OpenSSH `known_hosts` files, with
//! OpenSSH's own rules, rather than libssh2's `KnownHosts`, which differs in
//! ways that matter: it ignores `@revoked` and `@cert-authority` markers, has
//! no wildcard or negated patterns, falls back from `[host]:2222` to a plain
//! `host` entry (OpenSSH looks up only `[host]:2222`), knows no key types
//! (a host known only by its RSA key whose server shows ed25519 would read
//! as "changed"), and fails the whole file on one unparsable line.
//!
//! Only the key blob (SSH wire encoding, what `Session::host_key()` returns
//! and the base64 field of a line decodes to) is compared.

use std::fmt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// One parsed line.
#[derive(Debug, Clone)]
struct Entry {
    marker: Marker,
    hosts: HostField,
    key_type: String,
    blob: Vec<u8>,
    file: PathBuf,
    line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
enum HostField {
    /// `|1|salt|hash`: HMAC-SHA1(salt, name).
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    /// Comma-separated patterns, `*`/`?` wildcards, `!` negation.
    Patterns(Vec<String>),
}

/// Where a known key lives, for messages ("… at ~/.ssh/known_hosts:12").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// The outcome of a check, as OpenSSH would classify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A line for this host holds exactly this key.
    Match(Location),
    /// Lines for this host hold a key of the same type, but another key:
    /// "REMOTE HOST IDENTIFICATION HAS CHANGED". Refuse.
    Changed(Location),
    /// The key is marked `@revoked`. Refuse.
    Revoked(Location),
    /// No line for this host holds a key of this type. `other_types` lists the
    /// types that are known for it (OpenSSH: "a different type of key exists");
    /// `cert_authority` says an `@cert-authority` line covers the host (host
    /// certificates, which this transport does not verify).
    Unknown { other_types: Vec<String>, cert_authority: bool },
}

#[derive(Debug, Default, Clone)]
pub struct KnownHosts {
    entries: Vec<Entry>,
    /// Lines that could not be parsed: skipped like OpenSSH does, reported for debugging.
    pub skipped: Vec<Location>,
}

impl KnownHosts {
    /// Read every file that exists (UserKnownHostsFile may list several; a
    /// missing file is no error, as in OpenSSH).
    pub fn load(files: &[PathBuf]) -> std::io::Result<KnownHosts> {
        let mut kh = KnownHosts::default();
        for file in files {
            match std::fs::read(file) {
                Ok(bytes) => kh.add_text(file, &String::from_utf8_lossy(&bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(kh)
    }

    pub fn add_text(&mut self, file: &Path, text: &str) {
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line) {
                Some((marker, hosts, key_type, blob)) => {
                    self.entries.push(Entry { marker, hosts, key_type, blob, file: file.to_owned(), line: i + 1 })
                }
                None => self.skipped.push(Location { file: file.to_owned(), line: i + 1 }),
            }
        }
    }

    /// Check `blob` (the server's host key) for `host` on `port`. `host` is
    /// what OpenSSH would use: HostKeyAlias if set, else the HostName.
    pub fn check(&self, host: &str, port: u16, blob: &[u8]) -> Verdict {
        let name = lookup_name(host, port);
        let key_type = blob_key_type(blob).unwrap_or_default();
        // Revocation first: a revoked key is refused whatever else is listed.
        for e in self.for_host(&name) {
            if e.marker == Marker::Revoked && e.blob == blob {
                return Verdict::Revoked(e.location());
            }
        }
        let mut changed = None;
        let mut other_types = Vec::new();
        for e in self.for_host(&name).filter(|e| e.marker == Marker::None) {
            if e.key_type == key_type {
                if e.blob == blob {
                    return Verdict::Match(e.location());
                }
                changed.get_or_insert_with(|| e.location());
            } else if !other_types.contains(&e.key_type) {
                other_types.push(e.key_type.clone());
            }
        }
        match changed {
            Some(loc) => Verdict::Changed(loc),
            None => Verdict::Unknown {
                other_types,
                cert_authority: self.for_host(&name).any(|e| e.marker == Marker::CertAuthority),
            },
        }
    }

    /// Key types known for this host, in file order (for host key algorithm
    /// preference, like OpenSSH's order_hostkeyalgs).
    pub fn key_types_for(&self, host: &str, port: u16) -> Vec<String> {
        let name = lookup_name(host, port);
        let mut types: Vec<String> = Vec::new();
        for e in self.for_host(&name).filter(|e| e.marker == Marker::None) {
            if !types.contains(&e.key_type) {
                types.push(e.key_type.clone());
            }
        }
        types
    }

    fn for_host<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| host_matches(&e.hosts, name))
    }
}

impl Entry {
    fn location(&self) -> Location {
        Location { file: self.file.clone(), line: self.line }
    }
}

/// OpenSSH's name for a host in known_hosts: `host` on port 22, else `[host]:port`.
pub fn lookup_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// Host key algorithms (SSH names) that can present a key of `key_type`.
pub fn algorithms_for_key_type(key_type: &str) -> &'static [&'static str] {
    match key_type {
        "ssh-ed25519" => &["ssh-ed25519"],
        "ssh-rsa" => &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
        "ecdsa-sha2-nistp256" => &["ecdsa-sha2-nistp256"],
        "ecdsa-sha2-nistp384" => &["ecdsa-sha2-nistp384"],
        "ecdsa-sha2-nistp521" => &["ecdsa-sha2-nistp521"],
        _ => &[],
    }
}

/// The host key algorithm preference for `Session::method_pref(HostKey, ..)`:
/// algorithms for key types known for the host first (so the server presents
/// a key we can verify), then every other algorithm libssh2 supports (so an
/// unknown host still completes the key exchange and we can show the
/// fingerprint of what it offered, like OpenSSH does).
pub fn hostkey_preference(known_types: &[String], supported: &[&str]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for t in known_types {
        for a in algorithms_for_key_type(t) {
            if supported.contains(a) && !out.contains(a) {
                out.push(a);
            }
        }
    }
    for a in supported {
        // Certificates cannot be checked against plain known_hosts lines;
        // never ask for them (libssh2 1.11 offers none anyway).
        if !a.contains("-cert-") && !out.contains(a) {
            out.push(a);
        }
    }
    out.join(",")
}

/// `SHA256:<base64 without padding>` as OpenSSH prints it.
pub fn fingerprint_sha256(blob: &[u8]) -> String {
    let digest = Sha256::digest(blob);
    let mut b64 = base64_encode(&digest);
    while b64.ends_with('=') {
        b64.pop();
    }
    format!("SHA256:{b64}")
}

/// The key type name at the start of an SSH wire-format key blob.
pub fn blob_key_type(blob: &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    let name = blob.get(4..4 + len)?;
    String::from_utf8(name.to_vec()).ok()
}

/// A line as a known_hosts file would hold it (e.g. for an error's hint).
pub fn format_line(host: &str, port: u16, blob: &[u8]) -> String {
    format!("{} {} {}", lookup_name(host, port), blob_key_type(blob).unwrap_or_default(), base64_encode(blob))
}

fn parse_line(line: &str) -> Option<(Marker, HostField, String, Vec<u8>)> {
    let mut fields = line.split_ascii_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next()?;
    }
    let key_type = fields.next()?.to_owned();
    let blob = base64_decode(fields.next()?)?;
    // The blob must say the same type as the line (OpenSSH checks this too).
    if blob_key_type(&blob).as_deref() != Some(key_type.as_str()) {
        return None;
    }
    let hosts = if let Some(rest) = first.strip_prefix("|1|") {
        let (salt, hash) = rest.split_once('|')?;
        HostField::Hashed { salt: base64_decode(salt)?, hash: base64_decode(hash)? }
    } else {
        HostField::Patterns(first.split(',').map(|p| p.to_ascii_lowercase()).collect())
    };
    Some((marker, hosts, key_type, blob))
}

fn host_matches(field: &HostField, name: &str) -> bool {
    match field {
        HostField::Hashed { salt, hash } => {
            let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(salt) else { return false };
            mac.update(name.as_bytes());
            mac.verify_slice(hash).is_ok()
        }
        HostField::Patterns(patterns) => {
            // match_hostname(): a matching negated pattern wins over everything.
            let mut positive = false;
            for p in patterns {
                if let Some(neg) = p.strip_prefix('!') {
                    if wildcard_match(neg, name) {
                        return false;
                    }
                } else if wildcard_match(p, name) {
                    positive = true;
                }
            }
            positive
        }
    }
}

fn wildcard_match(pattern: &str, text: &str) -> bool {
    crate::ssh_config::wildcard_match(pattern, text)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(kind: &str, tail: &[u8]) -> Vec<u8> {
        let mut b = (kind.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind.as_bytes());
        b.extend_from_slice(tail);
        b
    }

    fn kh(text: &str) -> KnownHosts {
        let mut k = KnownHosts::default();
        k.add_text(Path::new("kh"), text);
        k
    }

    #[test]
    fn base64_round_trip() {
        for n in 0..40 {
            let data: Vec<u8> = (0..n as u8).map(|x| x.wrapping_mul(37)).collect();
            assert_eq!(base64_decode(&base64_encode(&data)).unwrap(), data);
        }
    }

    #[test]
    fn port_semantics_follow_openssh() {
        let key = blob("ssh-ed25519", b"k1");
        let b64 = base64_encode(&key);
        let plain = kh(&format!("127.0.0.1 ssh-ed25519 {b64}\n"));
        // A plain entry is for port 22 only.
        assert!(matches!(plain.check("127.0.0.1", 22, &key), Verdict::Match(_)));
        assert!(matches!(plain.check("127.0.0.1", 2222, &key), Verdict::Unknown { .. }));
        let bracket = kh(&format!("[127.0.0.1]:2222 ssh-ed25519 {b64}\n"));
        assert!(matches!(bracket.check("127.0.0.1", 2222, &key), Verdict::Match(_)));
        assert!(matches!(bracket.check("127.0.0.1", 22, &key), Verdict::Unknown { .. }));
    }

    #[test]
    fn patterns_negation_markers() {
        let key = blob("ssh-ed25519", b"k1");
        let other = blob("ssh-ed25519", b"k2");
        let rsa = blob("ssh-rsa", b"r");
        let (k, o, r) = (base64_encode(&key), base64_encode(&other), base64_encode(&rsa));
        let text = format!(
            "*.example.com,!bad.example.com ssh-ed25519 {k}\n\
             @revoked * ssh-ed25519 {o}\n\
             @cert-authority *.example.com ssh-ed25519 {o}\n\
             rsa.other.org ssh-rsa {r}\n\
             garbage line\n"
        );
        let k = kh(&text);
        assert!(matches!(k.check("a.example.com", 22, &key), Verdict::Match(_)));
        assert!(matches!(k.check("bad.example.com", 22, &key), Verdict::Unknown { .. }));
        assert!(matches!(k.check("a.example.com", 22, &other), Verdict::Revoked(_)));
        assert_eq!(
            k.check("rsa.other.org", 22, &key),
            Verdict::Unknown { other_types: vec!["ssh-rsa".into()], cert_authority: false }
        );
        assert_eq!(k.key_types_for("rsa.other.org", 22), vec!["ssh-rsa".to_string()]);
        assert_eq!(k.skipped.len(), 1);
    }

    #[test]
    fn changed_key() {
        let key = blob("ssh-ed25519", b"k1");
        let other = blob("ssh-ed25519", b"k2");
        let k = kh(&format!("h ssh-ed25519 {}\n", base64_encode(&other)));
        assert!(matches!(k.check("h", 22, &key), Verdict::Changed(_)));
    }

    #[test]
    fn preference_puts_known_types_first() {
        let sup = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"];
        assert_eq!(
            hostkey_preference(&["ssh-rsa".into()], &sup),
            "rsa-sha2-512,rsa-sha2-256,ssh-rsa,ssh-ed25519,ecdsa-sha2-nistp256"
        );
    }
}
