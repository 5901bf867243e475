//! Escaping of text read back from a black box or a report before it reaches a log line or a
//! terminal: the one helper behind `Report`'s `Display` and the CLI's text output.
//!
//! Every string in a report came from the crashed process (a panic message, a breadcrumb, a
//! thread name, the executable's path) or from a file anyone with write access to the report
//! directory could have edited. Printed raw, a newline forges a log line and an escape sequence
//! rewrites the operator's terminal. Control characters (C0, DEL, C1) and the Unicode
//! direction overrides are therefore shown as visible escapes (`\n`, `\x1b`, `\u{202e}`);
//! everything else, non-ASCII text included, is printed as it is.

use std::borrow::Cow;
use std::fmt::{self, Write};

/// Whether `c` must not reach a log line or a terminal as it is.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn write_escaped(out: &mut impl Write, c: char) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
        c => write!(out, "\\u{{{:x}}}", c as u32),
    }
}

/// `s` with its control characters escaped; borrowed when there are none.
pub fn escape_control(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            // Writing into a String cannot fail.
            let _ = write_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Displays a string with its control characters escaped, without allocating.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some((i, c)) = rest.char_indices().find(|&(_, c)| needs_escape(c)) {
            f.write_str(rest.get(..i).unwrap_or(""))?;
            write_escaped(f, c)?;
            rest = rest.get(i + c.len_utf8()..).unwrap_or("");
        }
        f.write_str(rest)
    }
}

/// A copy of `report` whose every string has its control characters escaped, for text views
/// that print fields one by one (the CLI). Works on the serialised form, so a field added to the
/// report later is covered without a change here.
pub fn escape_report(report: &crate::Report) -> crate::Report {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => {
                if let Cow::Owned(e) = escape_control(s) {
                    *s = e;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            serde_json::Value::Object(map) => map.values_mut().for_each(walk),
            _ => {}
        }
    }
    let Ok(mut value) = serde_json::to_value(report) else {
        return report.clone();
    };
    walk(&mut value);
    serde_json::from_value(value).unwrap_or_else(|_| report.clone())
}

/// Text for a terminal: control characters escaped except the newlines and tabs that lay the
/// text out. The last line of defence of a text view whose fields were escaped already.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| c != '\n' && c != '\t' && needs_escape(c))
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c != '\n' && c != '\t' && needs_escape(c) {
            let _ = write_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// JSON text whose strings may hold DEL and C1 control characters (which JSON allows raw and
/// `serde_json` does not escape): those become `\u00XX` escapes, so the JSON means the same and
/// is safe on a terminal. Outside strings JSON has no such characters.
pub fn json_terminal_safe(json: &str) -> Cow<'_, str> {
    let bad = |c: char| c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c);
    if !json.chars().any(bad) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if bad(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible() {
        let hostile = "ok\nFAKE LOG LINE\r\x1b[31mred\x07\u{9b}2J\u{202e}txt\u{7f}";
        let want = "ok\\nFAKE LOG LINE\\r\\x1b[31mred\\x07\\u{9b}2J\\u{202e}txt\\x7f";
        assert_eq!(escape_control(hostile), want);
        assert_eq!(Escaped(hostile).to_string(), want);
        assert!(matches!(escape_control("plain é ✓"), Cow::Borrowed(_)));
        assert_eq!(Escaped("plain é ✓").to_string(), "plain é ✓");
        assert_eq!(terminal_safe("a\n\tb\x1b[2J"), "a\n\tb\\x1b[2J");
        let json = serde_json::to_string("x\u{9b}y\u{7f}").unwrap();
        let safe = json_terminal_safe(&json);
        assert_eq!(safe, "\"x\\u009by\\u007f\"");
        assert_eq!(
            serde_json::from_str::<String>(&safe).unwrap(),
            "x\u{9b}y\u{7f}"
        );
    }
}
