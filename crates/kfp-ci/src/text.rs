//! Cutting text to a size without splitting a UTF-8 character: response bodies in errors, tag
//! values, version names, comment bodies, CI outputs and notifications all have byte limits.
//! A leaf: no other module of the crate is used here.

/// The start of `text`, at most `max` bytes, cut on a character boundary.
pub fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The end of `text`, at most `max` bytes, cut on a character boundary.
pub fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// [`clip`], with `…` appended when something was cut.
pub fn truncate(text: &str, max: usize) -> String {
    let clipped = clip(text, max);
    if clipped.len() == text.len() {
        text.to_string()
    } else {
        format!("{clipped}…")
    }
}

/// Cut `text` in place to at most `max` bytes on a character boundary; true when something was
/// cut (the caller adds its own mark).
pub fn cut(text: &mut String, max: usize) -> bool {
    let end = clip(text, max).len();
    let was_cut = end < text.len();
    text.truncate(end);
    was_cut
}

/// The first line of `text` once surrounding whitespace is trimmed, at most `max` bytes: a
/// server's answer or a file's line quoted in a one-line message.
pub fn excerpt(text: &str, max: usize) -> &str {
    let text = text.trim();
    clip(text.lines().next().unwrap_or(text), max)
}

/// At most `max` characters (not bytes), with `…` appended when something was cut: a line of
/// the user's own file quoted in a message, where a column count reads better than a byte count.
pub fn clip_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_utf8_whole() {
        let s = "ééééé";
        for max in 0..12 {
            let c = clip(s, max);
            assert!(c.len() <= max && s.starts_with(c), "{max}: {c}");
            assert_eq!(
                c.len(),
                max.min(s.len()) / 2 * 2,
                "{max}: longest whole prefix"
            );
        }
        assert_eq!(clip("é", 1), "");
        assert_eq!(clip("", 0), "");
        // A 4-byte character straddling the limit at every offset.
        for max in 1..4 {
            assert_eq!(clip("a😀b", max), "a", "{max}");
        }
        assert_eq!(clip("a😀b", 5), "a😀");
    }

    #[test]
    fn tail_keeps_utf8_whole() {
        let s = "ééééé";
        for max in 0..12 {
            let t = tail(s, max);
            assert!(t.len() <= max && s.ends_with(t), "{max}: {t}");
            assert_eq!(
                t.len(),
                max.min(s.len()) / 2 * 2,
                "{max}: longest whole suffix"
            );
        }
        assert_eq!(tail("é", 1), "");
        assert_eq!(tail("abc", 0), "");
        assert_eq!(tail("abc", 10), "abc");
        for max in 1..4 {
            assert_eq!(tail("a😀b", max), "b", "{max}");
        }
        assert_eq!(tail("a😀b", 5), "😀b");
    }

    #[test]
    fn truncate_marks_the_cut() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "abc…");
        assert_eq!(truncate("aéb", 2), "a…");
        assert_eq!(truncate("aéb", 3), "aé…");
        assert_eq!(truncate("€", 2), "…");
    }

    #[test]
    fn cut_in_place_says_whether_it_cut() {
        let mut s = "aé".to_string();
        assert!(!cut(&mut s, 3));
        assert_eq!(s, "aé");
        assert!(cut(&mut s, 2));
        assert_eq!(s, "a");
        let mut s = "日本".to_string();
        assert!(cut(&mut s, 5));
        assert_eq!(s, "日");
        assert!(cut(&mut s, 0));
        assert_eq!(s, "");
    }

    #[test]
    fn excerpt_is_the_first_line_clipped() {
        assert_eq!(excerpt("  first line\nsecond\n", 5), "first");
        assert_eq!(excerpt("\n\n  ünïcode  \nmore", 4), "ün");
        assert_eq!(excerpt("\n\n  ünïcode  \nmore", 5), "ünï");
        assert_eq!(excerpt("ü", 1), "");
        assert_eq!(excerpt("", 5), "");
        assert_eq!(excerpt("one", 10), "one");
    }

    #[test]
    fn clip_chars_counts_characters() {
        assert_eq!(clip_chars("abc", 3), "abc");
        assert_eq!(clip_chars("abcd", 3), "abc…");
        // Three characters, six bytes: not cut.
        assert_eq!(clip_chars("ééé", 3), "ééé");
        assert_eq!(clip_chars("éééé", 3), "ééé…");
        assert_eq!(clip_chars("", 0), "");
        assert_eq!(clip_chars("x", 0), "…");
        let line = "é".repeat(81);
        assert_eq!(clip_chars(&line, 80), format!("{}…", "é".repeat(80)));
        assert_eq!(clip_chars(&line[..160], 80), "é".repeat(80));
    }
}
