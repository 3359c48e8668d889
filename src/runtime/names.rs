//! Printing names from an archive safely: a name may hold any character the
//! format allows, and a hostile one could drive the terminal (ESC, BEL),
//! reorder what is shown (bidirectional overrides) or forge a line of its
//! own (a newline).

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for the characters [`escape`] rewrites: C0 and C1 controls, DEL,
/// the backslash (so that an escape cannot be forged), and the Unicode
/// bidirectional marks, embeddings, overrides and isolates, and the line and
/// paragraph separators.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || c == '\\'
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `name` as it may be printed on one line of a terminal: `\\` for a
/// backslash, `\n`, `\t`, `\r`, `\a`, `\b`, `\f`, `\v` and `\e` for those
/// controls, `\xHH` for other controls below U+0100 and `\u{HHHH}` for the
/// bidirectional formatting characters, as GNU ls and tar quote them (the
/// Unicode ones in Rust's notation). Other characters, Unicode letters
/// included, are left as they are.
pub fn escape(name: &str) -> Cow<'_, str> {
    if !name.chars().any(needs_escape) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        if !needs_escape(c) {
            out.push(c);
            continue;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            '\u{1b}' => out.push_str("\\e"),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:04X}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// A whole message (an error naming paths) made safe for one terminal line:
/// as [`escape`], except that backslashes are left as they are.
pub fn escape_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\\' && needs_escape(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for (i, piece) in text.split('\\').enumerate() {
        if i > 0 {
            out.push('\\');
        }
        out.push_str(&escape(piece));
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::{escape, escape_line};

    #[test]
    fn lines_keep_their_backslashes() {
        assert_eq!(escape_line(r#"bad "a\"b": x"#), r#"bad "a\"b": x"#);
        assert_eq!(escape_line("a\\nb\nc"), "a\\nb\\nc");
        assert_eq!(escape_line("\\x\u{1b}"), "\\x\\e");
    }

    #[test]
    fn plain_names_are_borrowed() {
        for n in ["a/b.txt", "файл ü 日本 🦀.txt", "with space", "é/ß"] {
            assert!(matches!(escape(n), std::borrow::Cow::Borrowed(_)), "{n}");
        }
    }

    #[test]
    fn controls_and_bidi_are_escaped() {
        assert_eq!(escape("a\nb"), "a\\nb");
        assert_eq!(escape("\u{1b}[31mred\u{7}"), "\\e[31mred\\a");
        assert_eq!(escape("x\u{202E}txt.exe"), "x\\u{202E}txt.exe");
        assert_eq!(escape("\u{2066}a\u{2069}"), "\\u{2066}a\\u{2069}");
        assert_eq!(escape("del\u{7f}"), "del\\x7F");
        assert_eq!(escape("c1\u{9b}"), "c1\\x9B");
        assert_eq!(escape("back\\slash"), "back\\\\slash");
        assert_eq!(escape("\t\r\u{8}\u{c}\u{b}\u{0}"), "\\t\\r\\b\\f\\v\\x00");
        // One line, whatever the name.
        assert_eq!(escape("a\nb\rc\u{85}d\u{2028}"), "a\\nb\\rc\\x85d\\u{2028}");
    }
}
