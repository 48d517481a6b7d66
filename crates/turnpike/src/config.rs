//! Reading `turnserver.toml` into [`turnpike_server::Config`] (the one configuration type,
//! from the file down): parsed with serde, unknown keys rejected, and every error
//! reported with the file, line, column and reason.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};
use turnpike_server::Config;

/// The shipped, documented default configuration, embedded in the binary.
pub(crate) const DEFAULT_CONFIG: &str = include_str!("../../../turnserver.toml");

/// The name the embedded default is reported under in errors.
pub(crate) const DEFAULT_CONFIG_NAME: &str = "<embedded turnserver.toml>";

/// A configuration error, located in its file.
#[derive(Debug)]
pub(crate) struct ConfigError {
    /// The file (or [`DEFAULT_CONFIG_NAME`]).
    pub(crate) file: String,
    /// 1-based line and column, when known.
    pub(crate) position: Option<(usize, usize)>,
    /// What is wrong.
    pub(crate) reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(f, "{}:{}:{}: {}", self.file, line, col, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
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

/// Reads and validates a configuration file.
///
/// # Errors
///
/// Unreadable file, TOML syntax, unknown keys, wrong types, invalid values.
pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        position: None,
        reason: format!("cannot read: {e}"),
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates configuration text; `file` names it in errors.
///
/// # Errors
///
/// As [`load`].
pub(crate) fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|e| ConfigError {
        file: file.to_owned(),
        position: e.span().map(|span| line_col(text, span.start)),
        reason: e.message().trim().to_owned(),
    })?;
    config.validate().map_err(|invalid| ConfigError {
        file: file.to_owned(),
        position: span_of(text, &invalid.key).map(|span| line_col(text, span.start)),
        reason: invalid.reason,
    })?;
    Ok(config)
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
