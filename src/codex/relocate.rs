//! A rollout moved to another working directory: the fields that name the
//! working directory are rewritten in place, every other byte (every
//! `ordinal`, every message text) stays as Codex wrote it.
//!
//! The fields are `session_meta.payload.cwd` and its
//! `runtime_workspace_roots`, every `turn_context.payload.cwd`, and the
//! `thread_settings.cwd` and `thread_settings.runtime_workspace_roots` of
//! every `thread_settings_applied` event (the app-server takes a thread's
//! working directory from the last of those). Rollouts are streamed line by
//! line; a line longer than [`LINE_LIMIT`] is copied through unread.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::error::Result;

/// Lines up to this size are examined; longer ones (inline images, huge
/// tool output) never carry the working directory and are streamed as they are.
pub const LINE_LIMIT: usize = 4 << 20;

/// Where a thread's working directory moves.
#[derive(Debug, Clone)]
pub struct Relocation {
    /// The worktree root on the machine the rollout comes from, if known.
    pub from: Option<PathBuf>,
    /// The worktree root here.
    pub to: PathBuf,
    /// The working directory for a `cwd` that was not under `from`.
    pub fallback_cwd: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Cwd,
    Root,
}

impl Relocation {
    /// The new value of a path field, if it changes.
    fn map(&self, old: &str, field: Field) -> Option<String> {
        let under = self.from.as_deref().and_then(|from| Path::new(old).strip_prefix(from).ok());
        let new = match under {
            Some(rest) if rest.as_os_str().is_empty() => self.to.clone(),
            Some(rest) => self.to.join(rest),
            None if field == Field::Cwd => self.fallback_cwd.clone(),
            // A workspace root outside the worktree names the same place on both machines.
            None => return None,
        };
        let new = new.to_string_lossy().into_owned();
        (new != old).then_some(new)
    }
}

/// Copy a rollout from `input` to `output` with its working-directory
/// fields relocated. Returns the bytes written.
pub fn relocate<R: BufRead + ?Sized, W: Write + ?Sized>(
    input: &mut R,
    output: &mut W,
    relocation: &Relocation,
) -> Result<u64> {
    let mut line = Vec::new();
    let mut written = 0u64;
    loop {
        line.clear();
        let (n, complete) = read_line_limited(input, &mut line, LINE_LIMIT)?;
        if n == 0 {
            return Ok(written);
        }
        if !complete {
            output.write_all(&line)?;
            written += line.len() as u64 + copy_rest_of_line(input, output)?;
            continue;
        }
        let spans = field_spans(&line);
        if spans.is_empty() {
            output.write_all(&line)?;
            written += line.len() as u64;
            continue;
        }
        let mut at = 0;
        for (range, field) in spans {
            let Some(new) = decode_str(&line[range.clone()]).and_then(|old| relocation.map(&old, field)) else {
                continue;
            };
            output.write_all(&line[at..range.start])?;
            let encoded = serde_json::to_vec(&new).map_err(std::io::Error::other)?;
            output.write_all(&encoded)?;
            written += (range.start - at + encoded.len()) as u64;
            at = range.end;
        }
        output.write_all(&line[at..])?;
        written += (line.len() - at) as u64;
    }
}

/// One line as compared across machines: its working-directory fields
/// blanked (they differ by design), or, for a line too long to examine, a digest.
#[derive(Debug, PartialEq, Eq)]
pub enum Comparable {
    Text(Vec<u8>),
    Digest([u8; 32]),
}

/// The next line of `input` in comparable form; `None` at the end.
pub fn next_comparable<R: BufRead + ?Sized>(input: &mut R, line: &mut Vec<u8>) -> Result<Option<Comparable>> {
    line.clear();
    let (n, complete) = read_line_limited(input, line, LINE_LIMIT)?;
    if n == 0 {
        return Ok(None);
    }
    if !complete {
        let mut hasher = Sha256::new();
        hasher.update(&line[..]);
        let mut sink = HashWriter(&mut hasher);
        copy_rest_of_line(input, &mut sink)?;
        // The newline is not part of what is compared.
        return Ok(Some(Comparable::Digest(hasher.finalize().into())));
    }
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0;
    for (range, _) in field_spans(body) {
        out.extend_from_slice(&body[at..range.start]);
        out.extend_from_slice(b"\"\"");
        at = range.end;
    }
    out.extend_from_slice(&body[at..]);
    Ok(Some(Comparable::Text(out)))
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // A trailing newline is left out so a last line without one compares equal.
        self.0.update(buf.strip_suffix(b"\n").unwrap_or(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Read up to and including the next `\n`, at most `limit` bytes. Returns
/// the bytes read and whether the line is complete (ended by `\n` or the
/// end of input) within the limit.
pub fn read_line_limited<R: BufRead + ?Sized>(
    input: &mut R,
    line: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<(usize, bool)> {
    let mut total = 0;
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Ok((total, true));
        }
        let room = limit.saturating_sub(line.len());
        if room == 0 {
            return Ok((total, false));
        }
        let window = &available[..available.len().min(room)];
        match memchr::memchr(b'\n', window) {
            Some(i) => {
                line.extend_from_slice(&window[..=i]);
                input.consume(i + 1);
                return Ok((total + i + 1, true));
            }
            None => {
                let n = window.len();
                line.extend_from_slice(window);
                input.consume(n);
                total += n;
            }
        }
    }
}

/// Copy the rest of the current line (through its `\n`) without holding it.
fn copy_rest_of_line<R: BufRead + ?Sized, W: Write + ?Sized>(input: &mut R, output: &mut W) -> std::io::Result<u64> {
    let mut copied = 0u64;
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Ok(copied);
        }
        let (n, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        output.write_all(&available[..n])?;
        input.consume(n);
        copied += n as u64;
        if done {
            return Ok(copied);
        }
    }
}

type Object<'a> = BTreeMap<Cow<'a, str>, &'a RawValue>;

fn object(raw: &RawValue) -> Option<Object<'_>> {
    serde_json::from_str(raw.get()).ok()
}

fn str_value(raw: &RawValue) -> Option<Cow<'_, str>> {
    serde_json::from_str::<Cow<'_, str>>(raw.get()).ok()
}

fn decode_str(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice(bytes).ok()
}

/// Byte ranges (JSON string literals, quotes included) of the
/// working-directory fields of one line, in order.
fn field_spans(line: &[u8]) -> Vec<(Range<usize>, Field)> {
    // Only a line that has one of the keys is parsed.
    let has_key = memchr::memmem::find(line, b"\"cwd\"").is_some()
        || memchr::memmem::find(line, b"\"runtime_workspace_roots\"").is_some();
    if !has_key {
        return Vec::new();
    }
    let Ok(text) = std::str::from_utf8(line) else { return Vec::new() };
    let Some(top) = serde_json::from_str::<Object<'_>>(text.trim_end()).ok() else { return Vec::new() };
    let kind = top.get("type").and_then(|t| str_value(t));
    let Some(payload) = top.get("payload").and_then(|p| object(p)) else { return Vec::new() };
    let holder = match kind.as_deref() {
        Some("session_meta") | Some("turn_context") => Some(payload),
        Some("event_msg") => {
            let event = payload.get("type").and_then(|t| str_value(t));
            if event.as_deref() == Some("thread_settings_applied") {
                payload.get("thread_settings").and_then(|s| object(s))
            } else {
                None
            }
        }
        _ => None,
    };
    let Some(holder) = holder else { return Vec::new() };
    let base = text.as_ptr() as usize;
    let span = |raw: &RawValue| {
        let start = raw.get().as_ptr() as usize - base;
        start..start + raw.get().len()
    };
    let mut spans = Vec::new();
    if let Some(cwd) = holder.get("cwd").filter(|c| c.get().starts_with('"')) {
        spans.push((span(cwd), Field::Cwd));
    }
    if let Some(roots) = holder.get("runtime_workspace_roots") {
        if let Ok(roots) = serde_json::from_str::<Vec<&RawValue>>(roots.get()) {
            spans.extend(roots.into_iter().filter(|r| r.get().starts_with('"')).map(|r| (span(r), Field::Root)));
        }
    }
    spans.sort_by_key(|(range, _)| range.start);
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moved(text: &str) -> String {
        let relocation = Relocation {
            from: Some("/home/me/repo".into()),
            to: "/srv/wt/1-abc".into(),
            fallback_cwd: "/srv/wt/1-abc/sub".into(),
        };
        let mut out = Vec::new();
        relocate(&mut text.as_bytes(), &mut out, &relocation).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn only_the_working_directory_fields_change() {
        let input = concat!(
            r#"{"timestamp":"t","ordinal":0,"type":"session_meta","payload":{"id":"x","cwd":"/home/me/repo","runtime_workspace_roots":["/home/me/repo","/opt/shared","/home/me/repo/sub"],"z":1, "git" : {}}}"#,
            "\n",
            r#"{"timestamp":"t","ordinal":1,"type":"response_item","payload":{"type":"message","content":[{"text":"\"cwd\": \"/home/me/repo\""}]}}"#,
            "\n",
            r#"{"timestamp":"t","ordinal":2,"type":"turn_context","payload":{"turn_id":"a","cwd":"/home/me/repo/sub/dir","model":"m"}}"#,
            "\n",
            r#"{"timestamp":"t","ordinal":3,"type":"event_msg","payload":{"type":"thread_settings_applied","thread_settings":{"cwd":"/home/me/repo","runtime_workspace_roots":["/home/me/repo"]}}}"#,
            "\n",
            r#"{"timestamp":"t","ordinal":4,"type":"world_state","payload":{"state":{"environments":{"local":{"cwd":"/home/me/repo"}}}}}"#,
            "\n",
            r#"{"timestamp":"t","ordinal":5,"type":"turn_context","payload":{"cwd":"/elsewhere"}}"#,
        );
        let expected = concat!(
            r#"{"timestamp":"t","ordinal":0,"type":"session_meta","payload":{"id":"x","cwd":"/srv/wt/1-abc","runtime_workspace_roots":["/srv/wt/1-abc","/opt/shared","/srv/wt/1-abc/sub"],"z":1, "git" : {}}}"#,
            "\n",
            r#"{"timestamp":"t","ordinal":1,"type":"response_item","payload":{"type":"message","content":[{"text":"\"cwd\": \"/home/me/repo\""}]}}"#,
            "\n",
            r#"{"timestamp":"t","ordinal":2,"type":"turn_context","payload":{"turn_id":"a","cwd":"/srv/wt/1-abc/sub/dir","model":"m"}}"#,
            "\n",
            r#"{"timestamp":"t","ordinal":3,"type":"event_msg","payload":{"type":"thread_settings_applied","thread_settings":{"cwd":"/srv/wt/1-abc","runtime_workspace_roots":["/srv/wt/1-abc"]}}}"#,
            "\n",
            r#"{"timestamp":"t","ordinal":4,"type":"world_state","payload":{"state":{"environments":{"local":{"cwd":"/home/me/repo"}}}}}"#,
            "\n",
            r#"{"timestamp":"t","ordinal":5,"type":"turn_context","payload":{"cwd":"/srv/wt/1-abc/sub"}}"#,
        );
        assert_eq!(moved(input), expected);
    }

    #[test]
    fn escapes_non_utf8_and_hostile_lines_pass_through() {
        // A path that needs escaping is written as JSON; a look-alike prefix is not "under" the root.
        let line = "{\"type\":\"turn_context\",\"payload\":{\"cwd\":\"/home/me/repo/\\u00fcber \\\"q\\\"\"}}\n";
        assert_eq!(
            moved(line),
            "{\"type\":\"turn_context\",\"payload\":{\"cwd\":\"/srv/wt/1-abc/\u{fc}ber \\\"q\\\"\"}}\n"
        );
        let sibling = "{\"type\":\"session_meta\",\"payload\":{\"runtime_workspace_roots\":[\"/home/me/repo2\"]}}\n";
        assert_eq!(moved(sibling), sibling);
        for hostile in [
            "not json \"cwd\"\n",
            "{\"type\":\"turn_context\",\"payload\":{\"cwd\":7}}\n",
            "{\"type\":\"turn_context\",\"payload\":[\"cwd\"]}\n",
            "{\"type\":\"session_meta\",\"payload\":{\"runtime_workspace_roots\":\"/home/me/repo\"}}\n",
            "{\"type\":\"session_meta\",\"payload\":{\"cwd\":\"/home/me/repo\"",
        ] {
            assert_eq!(moved(hostile), hostile);
        }
        let mut bytes = b"{\"type\":\"turn_context\",\"payload\":{\"cwd\":\"/home/me/repo\xff\"}}\n".to_vec();
        let mut out = Vec::new();
        let relocation = Relocation { from: Some("/a".into()), to: "/b".into(), fallback_cwd: "/b".into() };
        relocate(&mut bytes.as_slice(), &mut out, &relocation).unwrap();
        assert_eq!(out, bytes);
        bytes.clear();
    }

    #[test]
    fn long_lines_stream_through_and_compare_by_digest() {
        let long = format!(
            "{{\"type\":\"turn_context\",\"payload\":{{\"cwd\":\"/home/me/repo\",\"x\":\"{}\"}}}}\n",
            "a".repeat(LINE_LIMIT)
        );
        assert_eq!(moved(&long), long, "too long to examine: copied as it is");
        let mut line = Vec::new();
        let mut with_newline = long.as_bytes();
        let mut without = long.trim_end().as_bytes();
        let a = next_comparable(&mut with_newline, &mut line).unwrap().unwrap();
        let b = next_comparable(&mut without, &mut line).unwrap().unwrap();
        assert!(matches!(a, Comparable::Digest(_)));
        assert_eq!(a, b);
    }

    #[test]
    fn comparable_lines_ignore_only_the_working_directory() {
        let here = "{\"ordinal\":3,\"type\":\"turn_context\",\"payload\":{\"cwd\":\"/srv/wt/1\",\"m\":1}}\n";
        let there = "{\"ordinal\":3,\"type\":\"turn_context\",\"payload\":{\"cwd\":\"/home/me/repo\",\"m\":1}}";
        let other = "{\"ordinal\":3,\"type\":\"turn_context\",\"payload\":{\"cwd\":\"/home/me/repo\",\"m\":2}}";
        let mut line = Vec::new();
        let c = |s: &str, line: &mut Vec<u8>| next_comparable(&mut s.as_bytes(), line).unwrap().unwrap();
        assert_eq!(c(here, &mut line), c(there, &mut line));
        assert_ne!(c(here, &mut line), c(other, &mut line));
        assert!(next_comparable(&mut "".as_bytes(), &mut line).unwrap().is_none());
    }
}
