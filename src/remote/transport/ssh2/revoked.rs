//! `RevokedHostKeys` as OpenSSH reads it: a file of public keys (one per
//! line, `#` comments) or a Key Revocation List (`ssh-keygen -k`). A host
//! key in either is refused. A KRL is asked of `ssh-keygen -Q`, the tool
//! that made it; without ssh-keygen a KRL cannot be read, and the
//! connection is refused rather than made unchecked. A file that cannot
//! be read refuses the connection too, as it does for ssh.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::known_hosts;

/// The first bytes of a KRL.
const KRL_MAGIC: &[u8] = b"SSHKRL\n\0";

/// What the revocation files say of one host key.
#[derive(Debug, PartialEq, Eq)]
pub enum Revocation {
    Fine,
    /// Revoked by this file.
    Revoked(PathBuf),
    /// The file could not be checked (and why): refused all the same.
    Unchecked(PathBuf, String),
}

/// Check host key `blob` against every `RevokedHostKeys` file.
pub fn check(files: &[PathBuf], blob: &[u8]) -> Revocation {
    for file in files {
        match check_file(file, blob) {
            Ok(false) => {}
            Ok(true) => return Revocation::Revoked(file.clone()),
            Err(why) => return Revocation::Unchecked(file.clone(), why),
        }
    }
    Revocation::Fine
}

fn check_file(file: &Path, blob: &[u8]) -> Result<bool, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.starts_with(KRL_MAGIC) {
        return in_krl(file, blob);
    }
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).any(|line| {
        let mut words = line.split_ascii_whitespace();
        let _kind = words.next();
        words.next().and_then(known_hosts::base64_decode).is_some_and(|listed| listed == blob)
    }))
}

/// Ask `ssh-keygen -Q` whether the KRL `file` revokes the key `blob`:
/// exit 0 not revoked, 1 revoked, anything else an error.
fn in_krl(file: &Path, blob: &[u8]) -> Result<bool, String> {
    let kind = known_hosts::blob_key_type(blob).unwrap_or_default();
    let mut key = tempfile::Builder::new()
        .prefix("host-key-")
        .suffix(".pub")
        .tempfile()
        .map_err(|e| format!("cannot write the host key for ssh-keygen: {e}"))?;
    writeln!(key, "{kind} {}", known_hosts::base64_encode(blob))
        .map_err(|e| format!("cannot write the host key for ssh-keygen: {e}"))?;
    let out = Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(file)
        .arg(key.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("it is a KRL, and ssh-keygen, which reads KRLs, could not be run: {e}"))?;
    match out.status.code() {
        Some(0) => Ok(false),
        Some(1) => Ok(true),
        _ => Err(format!("ssh-keygen -Q could not read it: {}", String::from_utf8_lossy(&out.stderr).trim())),
    }
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

    #[test]
    fn plain_lists_revoke_the_keys_they_hold() {
        let dir = tempfile::tempdir().unwrap();
        let (mine, other) = (blob("ssh-ed25519", &[1; 32]), blob("ssh-ed25519", &[2; 32]));
        let list = dir.path().join("revoked");
        let line = |b: &[u8]| format!("ssh-ed25519 {} comment\n", known_hosts::base64_encode(b));
        std::fs::write(&list, format!("# revoked keys\n\n{}", line(&other))).unwrap();
        assert_eq!(check(std::slice::from_ref(&list), &mine), Revocation::Fine);
        std::fs::write(&list, format!("{}{}", line(&other), line(&mine))).unwrap();
        assert_eq!(check(std::slice::from_ref(&list), &mine), Revocation::Revoked(list.clone()));
        let missing = dir.path().join("missing");
        assert!(matches!(check(&[missing], &mine), Revocation::Unchecked(_, why) if why.contains("cannot read")));
        // A damaged KRL is never taken as "not revoked".
        std::fs::write(&list, b"SSHKRL\n\0garbage").unwrap();
        assert!(matches!(check(std::slice::from_ref(&list), &mine), Revocation::Unchecked(..)));
    }
}
