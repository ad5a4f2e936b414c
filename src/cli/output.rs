//! The one place that owns stdout and stderr. Commands hand it values and
//! text; under `--json` stdout carries exactly one JSON document.

use std::io::{IsTerminal, Write};

use crate::error::Error;

pub struct Ui {
    pub json: bool,
    /// `--progress`: show progress even when stderr is not a terminal.
    pub force_progress: bool,
    stdout: Box<dyn Write>,
    stderr: Box<dyn Write>,
    /// More fields for the JSON document of the error the command ends with (`with_error_fields`).
    error_fields: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Ui {
    pub fn new(json: bool) -> Self {
        Ui {
            json,
            force_progress: false,
            stdout: Box::new(std::io::stdout()),
            stderr: Box::new(std::io::stderr()),
            error_fields: None,
        }
    }

    /// Human output of a command (skipped under `--json`).
    pub fn say(&mut self, text: impl AsRef<str>) {
        if !self.json {
            let _ = writeln!(self.stdout, "{}", text.as_ref());
        }
    }

    /// Progress and notes for a person: always stderr.
    pub fn note(&mut self, text: impl AsRef<str>) {
        let _ = writeln!(self.stderr, "{}", text.as_ref());
    }

    /// Progress for a person watching: stderr, and only on a terminal (or with `--progress`).
    pub fn progress(&mut self, text: impl AsRef<str>) {
        if self.force_progress || std::io::stderr().is_terminal() {
            let _ = writeln!(self.stderr, "{}", text.as_ref());
        }
    }

    /// Text that is the command's output whatever the flags (a man page, a
    /// completion script, completion candidates).
    pub fn raw(&mut self, text: &str) {
        let _ = self.stdout.write_all(text.as_bytes());
    }

    /// The command's JSON document (only under `--json`). Every document
    /// carries a `schema` version (see the man page's JSON OUTPUT).
    pub fn json(&mut self, value: &serde_json::Value) {
        if self.json {
            // (A document that has its schema already is not copied to add one.)
            let owned;
            let value = if value.get("schema").is_some() {
                value
            } else {
                owned = with_schema(value);
                &owned
            };
            // One write: stdout flushes at every newline, and pretty JSON has many.
            let mut text = serde_json::to_vec_pretty(value).unwrap_or_default();
            text.push(b'\n');
            let _ = self.stdout.write_all(&text);
        }
    }

    /// [`Ui::json`] for a document that is not a JSON value yet and has its `schema` field.
    pub fn json_document(&mut self, document: &impl serde::Serialize) {
        if self.json {
            let mut text = serde_json::to_vec_pretty(document).unwrap_or_default();
            text.push(b'\n');
            let _ = self.stdout.write_all(&text);
        }
    }

    pub fn flush(&mut self) {
        let _ = self.stdout.flush();
        let _ = self.stderr.flush();
    }

    /// Are stdin and stdout a terminal (for a session attached to a thread)?
    pub fn has_terminal(&self) -> bool {
        std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
    }

    /// Ask a yes/no question; only when stdin and stderr are terminals.
    pub fn can_prompt(&self) -> bool {
        std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
    }

    pub fn confirm(&mut self, question: &str) -> bool {
        let _ = write!(self.stderr, "{question} [y/N] ");
        let _ = self.stderr.flush();
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_err() {
            return false;
        }
        matches!(answer.trim(), "y" | "Y" | "yes" | "Yes")
    }

    /// Ask to pick one of `count` choices (listed before): the answer's
    /// index, or `None` for no valid answer. Only when [`Ui::can_prompt`].
    pub fn choose(&mut self, question: &str, count: usize) -> Option<usize> {
        let _ = write!(self.stderr, "{question} [1-{count}, Enter to cancel] ");
        let _ = self.stderr.flush();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).ok()?;
        answer.trim().parse::<usize>().ok().filter(|n| (1..=count).contains(n)).map(|n| n - 1)
    }

    /// Fields the JSON document of the error the command ends with carries
    /// beside `error` (the choices a usage error names, for a script).
    pub fn with_error_fields(&mut self, fields: serde_json::Map<String, serde_json::Value>) {
        self.error_fields = Some(fields);
    }

    /// Report an error: JSON on stdout under `--json`, a miette report on stderr otherwise.
    pub fn error(&mut self, err: &Error) {
        if self.json {
            let mut value = serde_json::json!({
                "schema": crate::cli::manual::JSON_SCHEMA,
                "error": {
                    "code": err.code,
                    "message": err.full_message(),
                    "help": err.help,
                    "exit_code": err.exit_code(),
                }
            });
            if let (Some(document), Some(fields)) = (value.as_object_mut(), self.error_fields.take()) {
                for (key, field) in fields {
                    document.entry(key).or_insert(field);
                }
            }
            let _ = serde_json::to_writer_pretty(&mut self.stdout, &value);
            let _ = writeln!(self.stdout);
        } else {
            let theme = if stderr_color() {
                miette::GraphicalTheme::unicode()
            } else {
                miette::GraphicalTheme::unicode_nocolor()
            };
            let mut text = String::new();
            let mut handler = miette::GraphicalReportHandler::new_themed(theme);
            if !std::io::stderr().is_terminal() {
                // Scripts match on the text: never wrap it when nobody reads it on a screen.
                handler = handler.with_width(usize::MAX / 4);
            }
            if handler.render_report(&mut text, err).is_err() {
                text = format!("error: {}", err.full_message());
            }
            let _ = write!(self.stderr, "{text}");
        }
        let _ = self.stdout.flush();
    }
}

/// A top-level object gets `"schema"` unless it has one.
fn with_schema(value: &serde_json::Value) -> serde_json::Value {
    let mut value = value.clone();
    if let Some(object) = value.as_object_mut() {
        object.entry("schema").or_insert(serde_json::Value::from(crate::cli::manual::JSON_SCHEMA));
    }
    value
}

/// Colour on stderr: never with `NO_COLOR` set (not empty); otherwise as git
/// decides for itself from `color.ui` (`auto`: only on a terminal).
fn stderr_color() -> bool {
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    let tty = std::io::stderr().is_terminal();
    let answer = std::process::Command::new("git")
        .args(["config", "--get-colorbool", "color.ui", if tty { "true" } else { "false" }])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    match answer {
        Ok(out) if out.status.success() => out.stdout.trim_ascii() == b"true",
        _ => tty,
    }
}
