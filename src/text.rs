//! Untrusted text on its way to stderr: control characters escaped.
//!
//! Remote text (registry error bodies, tar entry names, BuildKit vertex
//! names, errors and logs) is written by someone else. Printed raw, an ANSI
//! or OSC sequence can recolour or clear the Concourse build log, move the
//! cursor over earlier lines, or set hyperlinks, and a newline can forge a
//! line that looks like ours (`error: ...`). Two escapes, applied where the
//! text enters a message and again at the printing edge:
//!
//! - [`escape_line`] for text that must stay on one line (a name, an error
//!   body): every control character becomes a visible escape (`\n`,
//!   `\u{1b}`).
//! - [`escape_lines`] for multi-line output we print ourselves (error
//!   chains, log events, BuildKit step logs): `\n` and `\t` stay, every other
//!   control is escaped. Colour from a `RUN` step is lost this way; that is
//!   the price of never passing a terminal sequence through, since the same
//!   ESC byte that colours can also erase lines, retitle or hyperlink.

use std::borrow::Cow;

fn escape(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !c.is_control() || keep(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// `text` with every control character (C0, DEL, C1; newlines and tabs
/// included) escaped, for text that must stay on one line.
pub fn escape_line(text: &str) -> Cow<'_, str> {
    escape(text, |_| false)
}

/// `text` with every control character but `\t` escaped: one line of a
/// step's output (BuildKit progress), where tabs align columns.
pub fn escape_line_keep_tabs(text: &str) -> Cow<'_, str> {
    escape(text, |c| c == '\t')
}

/// `text` with every control character but `\n` and `\t` escaped, for
/// multi-line text printed as is.
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    escape(text, |c| c == '\n' || c == '\t')
}

#[cfg(test)]
mod tests;
