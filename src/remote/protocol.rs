//! The helper protocol: newline-delimited JSON on the helper's stdin/stdout.
//!
//! The client's first request is `hello` with the highest protocol version it
//! speaks; the helper answers with the highest it supports at or below that.
//! Unknown fields are ignored both ways; a request line is capped in size.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Kind, Result};

/// The protocol versions this build's helper serves.
pub const PROTOCOL_MIN: u32 = 1;
pub const PROTOCOL_MAX: u32 = 4;
/// 2 added machine ids (in the hello and in every record of an owner). A
/// client needs them of the helper, and a helper hands a thread over only to
/// a client that has them: ownership never falls back to hostnames.
pub const PROTOCOL_MACHINE_IDS: u32 = 2;
/// 3 added `transcript_in` and `transcript_out`: a large transcript crosses
/// as raw bytes beside its request or answer line, outside git's pack
/// protocol, and is stored on arrival as a pack of its own.
pub const PROTOCOL_TRANSCRIPTS: u32 = 3;
/// 4 added `pack_in`: what a handoff sends the host crosses as one pack
/// beside its request, on the helper's own session, made without the
/// commits the plan's answer says the host has (`haves`), instead of a git
/// push over a second session.
pub const PROTOCOL_PACK_IN: u32 = 4;
/// A client that says `"progress": true` in its hello may get lines
/// `{"progress":{"step":…,"done":…,"total":…}}` before an answer, while the
/// helper works on the request; older clients never ask for them.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProgressLine {
    pub progress: crate::progress::Report,
}

/// The report a progress line holds, if `line` is one.
pub fn progress_of(line: &[u8]) -> Option<crate::progress::Report> {
    if !line.starts_with(b"{\"progress\"") {
        return None;
    }
    serde_json::from_slice::<ProgressLine>(line).ok().map(|p| p.progress)
}

/// No request or answer line may be longer (bytes).
pub const MAX_LINE: usize = 1 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub op: String,
    #[serde(default)]
    pub params: Value,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireError {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub help: Option<String>,
    pub exit_code: u8,
}

impl From<&Error> for WireError {
    fn from(err: &Error) -> Self {
        WireError {
            code: err.code.to_string(),
            message: err.full_message(),
            help: err.help.clone(),
            exit_code: err.exit_code(),
        }
    }
}

impl WireError {
    /// The helper's error, as an error of this process (same code and exit code).
    pub fn into_error(self, host: &str) -> Error {
        let kind = match self.exit_code {
            2 => Kind::Usage,
            3 => Kind::NotFound,
            4 => Kind::Refused,
            5 => Kind::Unreachable,
            6 => Kind::Helper,
            _ => Kind::Failed,
        };
        // The other machine's words: shown as text, never as terminal controls.
        let code = crate::text::printable(&self.code).into_owned();
        let mut err = Error::new(kind, code, format!("{host}: {}", crate::text::printable_lines(&self.message)));
        err.help = self.help.as_deref().map(crate::text::printable_lines);
        err
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub version: String,
    /// The helper machine's display name.
    pub machine: String,
    /// The helper machine's id (what ownership is recorded by).
    #[serde(default)]
    pub machine_id: String,
    #[serde(default)]
    pub worktree_root: Option<String>,
    /// The helper's own executable (absent from older helpers).
    #[serde(default)]
    pub executable: Option<String>,
    /// The helper says it is alive while it works on a request (a line on
    /// its stderr now and then), so an answer is waited for only as long as
    /// something comes. Older helpers work silently.
    #[serde(default)]
    pub heartbeat: bool,
}

/// Read one line (without the newline); `None` at end of input.
pub fn read_line<R: BufRead + ?Sized>(input: &mut R) -> Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let read = std::io::Read::take(&mut *input, MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
    if read == 0 {
        return Ok(None);
    }
    if line.len() > MAX_LINE {
        return Err(Error::failed("line_too_long", format!("a protocol line is longer than {MAX_LINE} bytes")));
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(Some(line))
}

pub fn write_json<W: Write + ?Sized>(output: &mut W, value: &impl Serialize) -> Result<()> {
    let mut line =
        serde_json::to_vec(value).map_err(|e| Error::failed("json", "could not encode JSON").with_source(e))?;
    line.push(b'\n');
    output.write_all(&line)?;
    output.flush()?;
    Ok(())
}
