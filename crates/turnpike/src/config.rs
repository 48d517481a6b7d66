//! Reading `turnserver.toml` into [`turnpike_server::Config`] (the one configuration type,
//! from the file down): parsed with serde, unknown keys rejected, and every error
//! reported with the file, line, column and reason.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use turnpike_server::Config;

/// The shipped, documented default configuration, embedded in the binary.
pub(crate) const DEFAULT_CONFIG: &str = include_str!("../../../turnserver.toml");

/// The name the embedded default is reported under in errors.
pub(crate) const DEFAULT_CONFIG_NAME: &str = "<embedded turnserver.toml>";

/// Everything wrong with a configuration file, each problem located in it.
#[derive(Debug)]
pub(crate) struct ConfigError {
    /// The file (or [`DEFAULT_CONFIG_NAME`]).
    pub(crate) file: String,
    /// What is wrong, in file order; never empty.
    pub(crate) problems: Vec<Problem>,
}

/// One thing wrong in a configuration file.
#[derive(Debug)]
pub(crate) struct Problem {
    /// 1-based line and column, when known.
    pub(crate) position: Option<(usize, usize)>,
    /// What is wrong.
    pub(crate) reason: String,
}

impl ConfigError {
    fn one(file: &str, position: Option<(usize, usize)>, reason: String) -> Self {
        Self {
            file: file.to_owned(),
            problems: vec![Problem { position, reason }],
        }
    }
}

impl fmt::Display for ConfigError {
    /// One line per problem, `FILE:LINE:COLUMN: reason`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match p.position {
                Some((line, col)) => write!(f, "{}:{}:{}: {}", self.file, line, col, p.reason)?,
                None => write!(f, "{}: {}", self.file, p.reason)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

/// Reads and validates a configuration file. Relative paths in it (TLS files, the admin
/// token file) are relative to the file's folder, as in nginx or coturn, not to the
/// working directory of whoever started the server.
///
/// # Errors
///
/// Unreadable file, TOML syntax, unknown keys, wrong types, invalid values: every
/// section's problem, not only the first.
pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::one(&name, None, format!("cannot read: {e}")))?;
    let folder = path.parent().unwrap_or_else(|| Path::new(""));
    parse_in(&text, &name, Some(folder))
}

/// Parses and validates configuration text; `file` names it in errors.
///
/// # Errors
///
/// As [`load`].
pub(crate) fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    parse_in(text, file, None)
}

fn parse_in(text: &str, file: &str, folder: Option<&Path>) -> Result<Config, ConfigError> {
    let located = |span: Option<Range<usize>>, reason: String| Problem {
        position: span.map(|s| line_col(text, s.start)),
        reason,
    };
    let mut config: Config = match toml::from_str(text) {
        Ok(c) => c,
        Err(first) => {
            // serde stops at the first problem: look at each section on its own to find
            // the others too.
            let mut problems = vec![located(first.span(), first.message().trim().to_owned())];
            problems.extend(
                section_errors(text)
                    .into_iter()
                    .filter(|e| e.span() != first.span() || e.message() != first.message())
                    .map(|e| located(e.span(), e.message().trim().to_owned())),
            );
            problems.sort_by_key(|p| p.position);
            return Err(ConfigError {
                file: file.to_owned(),
                problems,
            });
        }
    };
    if let Some(folder) = folder {
        config.resolve_paths(folder);
    }
    config.validate().map_err(|invalid| {
        let mut problems: Vec<Problem> = invalid
            .into_iter()
            .map(|i| located(span_of(text, &i.key), i.reason))
            .collect();
        problems.sort_by_key(|p| p.position);
        ConfigError {
            file: file.to_owned(),
            problems,
        }
    })?;
    Ok(config)
}

/// The deserialization errors of each section taken alone (the text parsed), and of each
/// key of a section taken alone, so that one bad key does not hide another. An error of a
/// key alone counts only if it lies within that key: a rule across keys (RFC 5780's
/// addresses and ports) would fail for any key without the others.
fn section_errors(text: &str) -> Vec<toml::de::Error> {
    let Ok(root) = DeTable::parse(text) else {
        return Vec::new();
    };
    let span = root.span();
    let check = |alone: DeTable<'_>| {
        let table = toml::Spanned::new(span.clone(), alone);
        Config::deserialize(toml::de::Deserializer::from(table)).err()
    };
    let mut errors = Vec::new();
    for (section, value) in root.into_inner() {
        let mut whole = DeTable::new();
        whole.insert(section.clone(), value.clone());
        let Some(error) = check(whole) else {
            continue;
        };
        errors.push(error);
        let value_span = value.span();
        let DeValue::Table(keys) = value.into_inner() else {
            continue;
        };
        for (key, v) in keys {
            let within = key.span().start..v.span().end;
            let mut inner = DeTable::new();
            inner.insert(key, v);
            let mut alone = DeTable::new();
            alone.insert(
                section.clone(),
                toml::Spanned::new(value_span.clone(), DeValue::Table(inner)),
            );
            errors.extend(check(alone).filter(|e| {
                e.span()
                    .is_some_and(|s| within.start <= s.start && s.end <= within.end)
            }));
        }
    }
    errors.sort_by_key(|e| e.span().map(|s| s.start));
    errors.dedup_by(|a, b| a.span() == b.span() && a.message() == b.message());
    errors
}

/// Where `key`'s value is written in `text` (1-based line and column), for problems found
/// outside this module ([`crate::host_check`]).
pub(crate) fn position_of(text: &str, key: &str) -> Option<(usize, usize)> {
    span_of(text, key).map(|span| line_col(text, span.start))
}

/// Where the value of a dotted key (`tcp.idle_timeout_secs`, `turn.users.2`) is written,
/// if it is written at all (a default is not).
fn span_of(text: &str, key: &str) -> Option<Range<usize>> {
    let root = DeTable::parse(text).ok()?;
    let mut parts = key.split('.');
    let first = parts.next()?;
    let mut value = root.get_ref().get(first)?;
    for part in parts {
        value = match value.get_ref() {
            DeValue::Table(t) => t.get(part)?,
            DeValue::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value.span())
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnpike_server::LogLevel;

    #[test]
    fn embedded_default_is_valid() {
        let c = parse(DEFAULT_CONFIG, DEFAULT_CONFIG_NAME).unwrap();
        assert_eq!(c.listen.udp.len(), 2);
        assert_eq!(c.listen.tcp.len(), 2);
        assert!(c.stun.software().is_none());
        assert_eq!(c.tcp.max_connections_per_ip, 64);
    }

    /// The shipped file states every default the types have: parsing it gives the same
    /// configuration as parsing nothing.
    #[test]
    fn the_shipped_file_and_the_types_agree_on_every_default() {
        let shipped = parse(DEFAULT_CONFIG, DEFAULT_CONFIG_NAME).unwrap();
        let empty = parse("", "empty.toml").unwrap();
        assert_eq!(format!("{shipped:?}"), format!("{empty:?}"));
    }

    #[test]
    fn empty_file_means_defaults() {
        let c = parse("", "x.toml").unwrap();
        assert_eq!(c.listen.udp[0].port(), 3478);
        assert_eq!(c.log.level, LogLevel::Info);
        assert!(c.turn.tcp_relay, "one default for tcp_relay: on");
        assert_eq!(c.quotas.tcp_connections_per_allocation, 64);
    }

    #[test]
    fn every_option_is_settable_from_the_file() {
        let c = parse(
            "[quotas]\ntcp_connections_per_allocation = 5\n[turn]\ntcp_relay = false\n\
             [rfc5780]\nips = [\"192.0.2.1\", \"192.0.2.2\"]\nports = [3478, 3479]\nstreams = true\n",
            "x.toml",
        )
        .unwrap();
        assert_eq!(c.quotas.tcp_connections_per_allocation, 5);
        assert!(!c.turn.tcp_relay);
        assert!(c.rfc5780.is_some_and(|r| r.streams));
    }

    /// Every problem is reported, one line each, in file order: serde's first error does
    /// not hide the others, nor one validation rule another.
    #[test]
    fn every_problem_is_reported_in_file_order() {
        let text = "[listen]\nudpp = []\n[peers]\ndeny = [\"10.0.0.1/8\"]\n\
                    [alternates]\nudp = [\"0.0.0.0:99999\"]\ntcp = [\"turn.example.com:3478\"]\n\
                    [tcp]\nidle_timeout_secs = \"x\"\n";
        let shown = parse(text, "bad.toml").unwrap_err().to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 5, "{shown}");
        for (line, (at, needle)) in lines.iter().zip([
            ("bad.toml:2:", "unknown field `udpp`"),
            ("bad.toml:4:", "write the network 10.0.0.0/8"),
            ("bad.toml:6:", "\"0.0.0.0:99999\": the port must be"),
            ("bad.toml:7:", "\"turn.example.com:3478\": a host name"),
            ("bad.toml:9:", "expected u64"),
        ]) {
            assert!(line.starts_with(at) && line.contains(needle), "{line}");
        }
        let text = "[alternates]\nudp = [\"0.0.0.0:3478\"]\n[tcp]\nidle_timeout_secs = 0\n\
                    [turn]\nmax_lifetime_secs = 5\n";
        let shown = parse(text, "bad.toml").unwrap_err().to_string();
        assert_eq!(shown.lines().count(), 3, "{shown}");
        assert!(shown.starts_with("bad.toml:2:"), "{shown}");
        assert!(
            shown.contains("not an address a client can be sent to"),
            "{shown}"
        );
    }

    /// A rule across keys (RFC 5780's addresses and ports) is not reported for a key
    /// looked at alone.
    #[test]
    fn a_rule_across_keys_is_not_reported_per_key() {
        let text =
            "[rfc5780]\nips = [\"192.0.2.1\", \"192.0.2.2\"]\nports = [3478, 3479]\nbogus = 1\n";
        let shown = parse(text, "bad.toml").unwrap_err().to_string();
        assert_eq!(shown.lines().count(), 1, "{shown}");
        assert!(shown.contains("unknown field `bogus`"), "{shown}");
    }

    /// TLS files and the admin token file are found beside the configuration file,
    /// wherever the server was started from.
    #[test]
    fn relative_paths_are_relative_to_the_config_file() {
        let dir = std::env::temp_dir().join(format!("turnpike-cfg-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("tls")).unwrap();
        std::fs::write(dir.join("tls/cert.pem"), "x").unwrap();
        std::fs::write(dir.join("tls/key.pem"), "x").unwrap();
        std::fs::write(dir.join("token"), "t").unwrap();
        let file = dir.join("turnserver.toml");
        std::fs::write(
            &file,
            "[tls]\ncert = \"tls/cert.pem\"\nkey = \"tls/key.pem\"\n[admin]\ntoken_file = \"token\"\n",
        )
        .unwrap();
        let c = load(&file).unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert, dir.join("tls/cert.pem"));
        assert_eq!(tls.key, dir.join("tls/key.pem"));
        assert_eq!(c.admin.token_file, Some(dir.join("token")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_user_takes_a_password_or_an_md5_key() {
        let c = parse(
            "[turn]\nusers = [{ name = \"a\", password = \"p\" },\n \
             { name = \"b\", key = \"0xbc807ee29df3c9ffa736523fb2c4e8ee\" }]\n",
            "x.toml",
        )
        .unwrap();
        assert!(matches!(
            c.turn.users[1].credential,
            turnpike_proto::UserCredential::Md5Key(k)
                if k.to_string() == "0xbc807ee29df3c9ffa736523fb2c4e8ee"
        ));
        for (text, needle) in [
            ("{ name = \"b\", key = \"0x12\" }", "32 hex digits"),
            (
                "{ name = \"b\", key = \"0xbc807ee29df3c9ffa736523fb2c4e8ee\", password = \"p\" }",
                "not both",
            ),
            ("{ name = \"b\" }", "needs a password or a key"),
        ] {
            let err = parse(&format!("[turn]\nusers = [{text}]\n"), "bad.toml").unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
            assert!(err.to_string().starts_with("bad.toml:2:"), "{err}");
        }
    }

    #[test]
    fn errors_name_file_line_and_reason() {
        let cases = [
            ("[listen]\nudpp = []\n", 2, "unknown field `udpp`"),
            (
                "[listen]\nudp = [\"1.2.3.4\"]\n",
                2,
                "invalid socket address",
            ),
            (
                "[tcp]\nidle_timeout_secs = 0\n",
                2,
                "idle_timeout_secs must be",
            ),
            ("[log]\nlevel = \"loud\"\n", 2, "unknown variant `loud`"),
            ("\n\n[listen\n", 3, ""),
            ("[listen]\nudp = []\ntcp = []\n", 2, "no listener"),
            (
                "[listen]\nudp = [\"127.0.0.1:1\", \"127.0.0.1:1\"]\n",
                2,
                "listed twice",
            ),
            ("[tcp]\nmax_connections = -1\n", 2, ""),
            ("[relay]\nports = \"9-5\"\n", 2, "ports must be"),
            (
                "[listen]\npublic_name = \"turn.example.com:3478\"\n",
                2,
                "public_name has ':'",
            ),
            (
                "[relay]\nexternal_ip = [\"nope\"]\n",
                2,
                "external_ip must be",
            ),
            (
                "[relay]\nexternal_ip = \"nope\"\n",
                2,
                "external_ip must be",
            ),
            (
                "[peers]\n\nallow = [\"10.0.0.0/99\"]\n",
                3,
                "\"10.0.0.0/99\"",
            ),
            (
                "[peers]\ndeny = [\"10.0.0.1/8\"]\n",
                2,
                "write the network 10.0.0.0/8",
            ),
            (
                "[turn]\nusers = [\n { name = \"a\", password = \"ok\" },\n { name = \"\", password = \"x\" },\n]\n",
                4,
                "user name must be",
            ),
            (
                "[turn]\nmax_lifetime_secs = 5\n",
                2,
                "max_lifetime_secs must be",
            ),
            ("[quotas]\ntcp_connections_per_allocation = \"x\"\n", 2, ""),
        ];
        for (text, line, needle) in cases {
            let err = parse(text, "bad.toml").unwrap_err();
            let shown = err.to_string();
            assert!(
                shown.starts_with(&format!("bad.toml:{line}:")),
                "{text:?}: {shown}"
            );
            assert!(shown.contains(needle), "{shown}");
        }
    }
}
