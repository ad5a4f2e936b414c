//! The one error type: every failure carries a stable code, a message, a help
//! line and the exit code documented in the man page.

use std::borrow::Cow;
use std::fmt;

/// What kind of failure this is; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Exit 1: the operation failed.
    Failed,
    /// Exit 2: the command line was wrong.
    Usage,
    /// Exit 3: a thread, host or project was not found.
    NotFound,
    /// Exit 4: refused because going on could lose work or break a rule.
    Refused,
    /// Exit 5: the host could not be reached or authenticated.
    Unreachable,
    /// Exit 6: the helper is missing or of an incompatible version.
    Helper,
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::NotFound => 3,
            Kind::Refused => 4,
            Kind::Unreachable => 5,
            Kind::Helper => 6,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub struct Error {
    pub kind: Kind,
    /// Stable machine-readable code, e.g. `thread_not_found`.
    pub code: Cow<'static, str>,
    pub message: String,
    pub help: Option<String>,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl miette::Diagnostic for Error {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!("codex-handoff::{}", self.code)))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
}

impl Error {
    pub fn new(kind: Kind, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Error { kind, code: code.into(), message: message.into(), help: None, source: None }
    }
    pub fn failed(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::Failed, code, message)
    }
    pub fn usage(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, code, message)
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, code, message)
    }
    pub fn refused(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::Refused, code, message)
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
    pub fn exit_code(&self) -> u8 {
        self.kind.exit_code()
    }
    /// The message followed by the chain of causes, for JSON output.
    pub fn full_message(&self) -> String {
        let mut text = self.message.clone();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }
}

impl From<gix::Error> for Error {
    fn from(err: gix::Error) -> Self {
        Error::failed("git", "a git operation failed").with_source(err)
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Error::failed("io", "an I/O operation failed").with_source(err)
    }
}

/// Attach a message to a lower-level failure.
pub trait Context<T> {
    fn context(self, code: &'static str, message: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, code: &'static str, message: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::failed(code, message()).with_source(e))
    }
}
