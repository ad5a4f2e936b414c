//! `git receive-pack` for a restricted key: pushes may only create, move or
//! delete refs under `refs/codex-handoff/incoming/`, where the helper checks
//! what arrived before anything else changes. A key that may push anywhere
//! could move the host's branches or its notes directly.
//!
//! git's own settings cannot say this without cost (`receive.hideRefs` also
//! hides the refs a push needs to send only what the host lacks), so this
//! stands between the client and git: it passes the ref advertisement
//! through, reads the client's commands (pkt-lines up to the first flush),
//! and hands them and the pack on to git only if every ref is allowed.
//! Where the repository sets no `receive.maxInputSize`, git gets the
//! default ceiling of every stream into a repository (`intake`).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// The only refs a restricted key may push to.
pub const ALLOWED_PREFIX: &[u8] = b"refs/codex-handoff/incoming/";

/// Run `git receive-pack <repository>` on this process's stdin and stdout,
/// refusing (before git reads anything) a push to any other ref. Returns
/// git's exit code.
pub fn receive_pack(repository: &Path) -> Result<i32> {
    let mut git = Command::new("git");
    // The ceiling every stream into a repository has (`intake`), where the repository sets none.
    let ceiling = crate::repo::Repo::open(repository).ok().map(|repo| crate::intake::Ceiling::of(&repo));
    if let Some(ceiling) = ceiling.filter(|c| !c.configured) {
        git.arg("-c").arg(format!("receive.maxInputSize={}", ceiling.bytes));
    }
    let mut child = git
        .arg("receive-pack")
        .arg(repository)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::failed("git_missing", "could not run git receive-pack").with_source(e))?;
    let mut from_git = child.stdout.take().ok_or_else(|| Error::failed("git_missing", "no pipe from git"))?;
    // git's advertisement and report go straight back to the client.
    let relay = std::thread::spawn(move || {
        let mut out = std::io::stdout().lock();
        let mut buf = [0u8; 64 * 1024];
        while let Ok(n) = from_git.read(&mut buf) {
            if n == 0 || out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                break;
            }
        }
    });
    let mut to_git = child.stdin.take().ok_or_else(|| Error::failed("git_missing", "no pipe to git"))?;
    let mut input = std::io::stdin().lock();
    let checked = read_commands(&mut input);
    let refused = match checked {
        Ok(commands) => {
            let wrong: Vec<String> = refs_of(&commands)
                .into_iter()
                .filter(|r| !r.starts_with(ALLOWED_PREFIX))
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .collect();
            if wrong.is_empty() {
                // Commands, then the pack (and any push options), unchanged;
                // if either side stops early, git's exit code says so.
                let _ = to_git.write_all(&commands.raw).and_then(|()| std::io::copy(&mut input, &mut to_git));
                drop(to_git);
                None
            } else {
                Some(format!("this key may push only to {}; refused: {}", show(ALLOWED_PREFIX), wrong.join(", ")))
            }
        }
        Err(why) => Some(why),
    };
    if let Some(why) = refused {
        let _ = child.kill();
        let _ = child.wait();
        let _ = relay.join();
        return Err(Error::refused("restricted", why).with_help(
            "a restricted key pushes only what `git codex-handoff` sends; use a different key for other pushes",
        ));
    }
    let status = child.wait()?;
    let _ = relay.join();
    Ok(status.code().unwrap_or(1))
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The client's command section: every byte read (to pass on) and the lines.
#[derive(Debug, Default)]
pub struct Commands {
    pub raw: Vec<u8>,
    pub lines: Vec<Vec<u8>>,
}

/// Read pkt-lines up to and including the first flush packet.
pub fn read_commands(input: &mut impl Read) -> std::result::Result<Commands, String> {
    let mut commands = Commands::default();
    loop {
        let mut header = [0u8; 4];
        let mut got = 0;
        while got < header.len() {
            match input.read(&mut header[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err("the push could not be read".to_owned()),
            }
        }
        match got {
            // The client had nothing to push and hung up.
            0 if commands.raw.is_empty() => return Ok(commands),
            4 => {}
            _ => return Err("the push ended inside its command list".to_owned()),
        }
        commands.raw.extend_from_slice(&header);
        let length = std::str::from_utf8(&header)
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
            .ok_or_else(|| "the push sent a malformed packet".to_owned())?;
        if length == 0 {
            return Ok(commands);
        }
        if !(4..=65520).contains(&length) {
            return Err("the push sent a malformed packet".to_owned());
        }
        let mut line = vec![0u8; length - 4];
        input.read_exact(&mut line).map_err(|_| "the push ended inside a packet".to_owned())?;
        commands.raw.extend_from_slice(&line);
        commands.lines.push(line);
    }
}

/// The ref names the command lines update (`<old> <new> <ref>[\0caps]`);
/// `shallow <id>` lines name no ref. A line of any other shape is returned
/// whole, so it is refused.
pub fn refs_of(commands: &Commands) -> Vec<&[u8]> {
    let mut refs = Vec::new();
    for line in &commands.lines {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if line.starts_with(b"shallow ") {
            continue;
        }
        let command = line.split(|b| *b == 0).next().unwrap_or(line);
        let mut words = command.splitn(3, |b| *b == b' ');
        match (words.next(), words.next(), words.next()) {
            (Some(old), Some(new), Some(name)) if is_id(old) && is_id(new) => refs.push(name),
            _ => refs.push(command),
        }
    }
    refs
}

fn is_id(word: &[u8]) -> bool {
    matches!(word.len(), 40 | 64) && word.iter().all(u8::is_ascii_hexdigit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(text: &[u8]) -> Vec<u8> {
        let mut out = format!("{:04x}", text.len() + 4).into_bytes();
        out.extend_from_slice(text);
        out
    }

    #[test]
    fn commands_are_read_to_the_flush_and_their_refs_named() {
        let zero = "0".repeat(40);
        let one = "1".repeat(40);
        let mut wire = pkt(format!("shallow {one}\n").as_bytes());
        wire.extend(pkt(
            format!("{zero} {one} refs/codex-handoff/incoming/u/snapshot\0report-status atomic\n").as_bytes()
        ));
        wire.extend(pkt(format!("{one} {zero} refs/heads/main\n").as_bytes()));
        wire.extend(b"0000PACKDATA");
        let mut input = &wire[..];
        let commands = read_commands(&mut input).unwrap();
        assert_eq!(input, b"PACKDATA", "the pack is left for git");
        assert_eq!(commands.raw, wire[..wire.len() - 8]);
        let refs = refs_of(&commands);
        assert_eq!(refs, [&b"refs/codex-handoff/incoming/u/snapshot"[..], b"refs/heads/main"]);
    }

    #[test]
    fn odd_input_is_refused_not_trusted() {
        for wire in [&b"00"[..], b"zzzz", b"0003", b"0009abc", b"fff0"] {
            assert!(read_commands(&mut &wire[..]).is_err(), "{wire:?}");
        }
        let odd = Commands { raw: Vec::new(), lines: vec![b"delete refs/heads/main".to_vec()] };
        assert_eq!(refs_of(&odd), [&b"delete refs/heads/main"[..]]);
        assert!(read_commands(&mut &b""[..]).unwrap().lines.is_empty());
    }
}
