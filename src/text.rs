//! Text that came from a note or another machine, made safe to show on a
//! terminal: a title or branch name could otherwise carry escape sequences
//! that rewrite the screen, set the window title or hide what follows.

use std::borrow::Cow;

/// `text` with control and bidirectional-override characters escaped (`\u{1b}`).
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Like `printable`, keeping line breaks (for multi-line messages).
pub fn printable_lines(text: &str) -> String {
    text.split('\n').map(printable).collect::<Vec<_>>().join("\n")
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_reach_the_terminal_as_text() {
        assert_eq!(printable("plain t\u{ed}tle"), "plain t\u{ed}tle");
        assert_eq!(printable("a\u{1b}]0;owned\u{7}b"), "a\\u{1b}]0;owned\\u{7}b");
        assert_eq!(printable("x\ny\r"), "x\\ny\\r");
        assert_eq!(printable("\u{202e}txt.exe"), "\\u{202e}txt.exe");
        assert_eq!(printable_lines("one\u{1b}[2J\ntwo"), "one\\u{1b}[2J\ntwo");
    }
}
