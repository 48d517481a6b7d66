//! Reading coturn's `turnserver.conf` into entries, with the quirks coturn accepts:
//! `key=value`, `key value`, bare flags, a leading `--` (the file takes the command-line
//! spelling too), repeated keys, `#` comments on their own line or after a value (a `#`
//! preceded by white space, outside quotes), quotes around values, blank lines and CRLF.

/// One option line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// 1-based line number.
    pub(crate) line: usize,
    /// The option name, without a leading `--` (coturn's names are case-sensitive:
    /// `verbose` and `Verbose` differ).
    pub(crate) key: String,
    /// The value, unquoted; `None` for a bare flag (or an empty value).
    pub(crate) value: Option<String>,
}

/// Every option line of `text`, in order.
pub(crate) fn entries(text: &str) -> Vec<Entry> {
    text.split('\n')
        .enumerate()
        .filter_map(|(i, raw)| entry(i + 1, raw))
        .collect()
}

fn entry(line: usize, raw: &str) -> Option<Entry> {
    let text = strip_comment(raw.trim_end_matches('\r')).trim();
    if text.is_empty() {
        return None;
    }
    let text = text.strip_prefix("--").unwrap_or(text);
    let split = text.find(|c: char| c == '=' || c.is_whitespace());
    let (key, rest) = match split {
        Some(at) => (&text[..at], &text[at..]),
        None => (text, ""),
    };
    // `key = value`, `key=value`, `key value`.
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    let value = unquote(rest);
    Some(Entry {
        line,
        key: key.to_owned(),
        value: (!value.is_empty()).then(|| value.to_owned()),
    })
}

/// The line without its comment: from a `#` that starts the line or follows white space,
/// outside quotes (a `#` inside a secret or password stays).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') if prev_space => return &line[..i],
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// A value without one pair of surrounding quotes.
fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Option<(String, Option<String>)> {
        entry(1, line).map(|e| (e.key, e.value))
    }

    fn kv(k: &str, v: Option<&str>) -> Option<(String, Option<String>)> {
        Some((k.to_owned(), v.map(str::to_owned)))
    }

    #[test]
    fn every_spelling_of_an_option() {
        assert_eq!(
            one("listening-port=3478"),
            kv("listening-port", Some("3478"))
        );
        assert_eq!(
            one("listening-port 3478"),
            kv("listening-port", Some("3478"))
        );
        assert_eq!(
            one("  listening-port = 3478  "),
            kv("listening-port", Some("3478"))
        );
        assert_eq!(
            one("--listening-port=3478\r"),
            kv("listening-port", Some("3478"))
        );
        assert_eq!(one("fingerprint"), kv("fingerprint", None));
        assert_eq!(one("--fingerprint\r"), kv("fingerprint", None));
        assert_eq!(
            one("realm=\"example.org\""),
            kv("realm", Some("example.org"))
        );
        assert_eq!(
            one("pidfile='/run/t.pid'"),
            kv("pidfile", Some("/run/t.pid"))
        );
        assert_eq!(one("listening-ip="), kv("listening-ip", None));
    }

    #[test]
    fn comments_and_blank_lines() {
        assert_eq!(one("# realm=x"), None);
        assert_eq!(one("   #realm=x"), None);
        assert_eq!(one("\r"), None);
        assert_eq!(one("realm=x # the realm"), kv("realm", Some("x")));
        assert_eq!(one("fingerprint\t# on"), kv("fingerprint", None));
        // A '#' inside a value, or quoted, is part of it.
        assert_eq!(
            one("static-auth-secret=a#b"),
            kv("static-auth-secret", Some("a#b"))
        );
        assert_eq!(one("user=\"bob:p #1\" # c"), kv("user", Some("bob:p #1")));
    }

    #[test]
    fn line_numbers_count_every_line() {
        let e = entries("# c\r\n\r\nrealm=a\r\n  \nverbose\n");
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].line, e[1].line), (3, 5));
    }
}
