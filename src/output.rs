//! The one place that owns stdout and stderr. Commands hand it values and
//! text; under `--json` stdout carries exactly one JSON document.

use std::io::{IsTerminal, Write};

use crate::error::Error;

pub struct Ui {
    pub json: bool,
    stdout: Box<dyn Write>,
    stderr: Box<dyn Write>,
}

impl Ui {
    pub fn new(json: bool) -> Self {
        Ui { json, stdout: Box::new(std::io::stdout()), stderr: Box::new(std::io::stderr()) }
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

    /// Progress for a person watching: stderr, and only on a terminal.
    pub fn progress(&mut self, text: impl AsRef<str>) {
        if std::io::stderr().is_terminal() {
            let _ = writeln!(self.stderr, "{}", text.as_ref());
        }
    }

    /// The command's JSON document (only under `--json`).
    pub fn json(&mut self, value: &serde_json::Value) {
        if self.json {
            let _ = serde_json::to_writer_pretty(&mut self.stdout, value);
            let _ = writeln!(self.stdout);
        }
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

    /// Report an error: JSON on stdout under `--json`, a miette report on stderr otherwise.
    pub fn error(&mut self, err: &Error) {
        if self.json {
            let value = serde_json::json!({
                "error": {
                    "code": err.code,
                    "message": err.full_message(),
                    "help": err.help,
                    "exit_code": err.exit_code(),
                }
            });
            let _ = serde_json::to_writer_pretty(&mut self.stdout, &value);
            let _ = writeln!(self.stdout);
        } else {
            let theme = if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
                miette::GraphicalTheme::unicode()
            } else {
                miette::GraphicalTheme::unicode_nocolor()
            };
            let mut text = String::new();
            let handler = miette::GraphicalReportHandler::new_themed(theme);
            if handler.render_report(&mut text, err).is_err() {
                text = format!("error: {}", err.full_message());
            }
            let _ = write!(self.stderr, "{text}");
        }
        let _ = self.stdout.flush();
    }
}
