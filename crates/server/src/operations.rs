//! The operator's sections of the configuration: `[admin]` (the HTTP admin API and
//! `turnpike ctl`), `[metrics]` (Prometheus), `[credentials_service]` (minting
//! `iceServers` for app servers) and `[drain]`. The runtime here only carries them: the
//! HTTP listeners live in `turnpike-admin`, draining in [`crate::ServerControl::drain`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::Invalid;

/// `[admin]`: the HTTP/JSON admin API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSection {
    /// Serve it. Default true.
    pub enabled: bool,
    /// Where. Default `127.0.0.1:5766` (coturn's CLI port): loopback only.
    #[serde(deserialize_with = "turnpike_proto::addr_syntax::serde_addr::one")]
    pub listen: SocketAddr,
    /// The bearer token every request must carry. Empty (the default): read from
    /// `token_file`, else generated at start and printed on stdout.
    pub token: String,
    /// A file whose first line is the token. Default: none.
    pub token_file: Option<PathBuf>,
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 5766)),
            token: String::new(),
            token_file: None,
        }
    }
}

/// `[metrics]`: Prometheus text format over HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Serve them. Default true.
    pub enabled: bool,
    /// Where (`GET /metrics`). Default `127.0.0.1:9641` (coturn's Prometheus port):
    /// loopback only.
    #[serde(deserialize_with = "turnpike_proto::addr_syntax::serde_addr::one")]
    pub listen: SocketAddr,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9641)),
        }
    }
}

/// `[credentials_service]`: an HTTP endpoint app servers call with an API key to get a
/// ready `iceServers` list with a fresh TURN REST credential.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CredentialsService {
    /// Serve it. Default false.
    pub enabled: bool,
    /// Where. Default `127.0.0.1:8478`.
    #[serde(deserialize_with = "turnpike_proto::addr_syntax::serde_addr::one")]
    pub listen: SocketAddr,
    /// API keys accepted (`Authorization: Bearer KEY`). Required when enabled.
    pub api_keys: Vec<String>,
    /// A credential's lifetime when the caller asks for none. Default 86400 (one day).
    #[serde(rename = "default_ttl_secs", deserialize_with = "secs")]
    pub default_ttl: Duration,
    /// The longest lifetime a caller may ask for. Default 604800 (one week).
    #[serde(rename = "max_ttl_secs", deserialize_with = "secs")]
    pub max_ttl: Duration,
}

impl Default for CredentialsService {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 8478)),
            api_keys: Vec::new(),
            default_ttl: Duration::from_secs(86_400),
            max_ttl: Duration::from_secs(604_800),
        }
    }
}

/// `[drain]`: stopping without cutting calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrainSection {
    /// How long a drain lets existing allocations go on before the process exits anyway.
    /// Default 600.
    #[serde(rename = "deadline_secs", deserialize_with = "secs")]
    pub deadline: Duration,
    /// SIGTERM drains (a second SIGTERM or SIGINT stops at once) instead of stopping.
    /// Default false.
    pub on_sigterm: bool,
}

impl Default for DrainSection {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(600),
            on_sigterm: false,
        }
    }
}

fn secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    <u64 as Deserialize>::deserialize(d).map(Duration::from_secs)
}

fn invalid(key: &str, reason: impl Into<String>) -> Invalid {
    Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Checks the operator's sections.
pub(crate) fn validate(
    admin: &AdminSection,
    service: &CredentialsService,
    drain: &DrainSection,
    has_secret: bool,
) -> Result<(), Invalid> {
    if admin.token.len() > 512 || admin.token.chars().any(char::is_control) {
        return Err(invalid(
            "admin.token",
            "the token must be at most 512 printable characters",
        ));
    }
    if let Some(file) = &admin.token_file {
        if !file.is_file() {
            return Err(invalid(
                "admin.token_file",
                format!("{} is not a readable file", file.display()),
            ));
        }
    }
    if service.enabled {
        if service.api_keys.is_empty() {
            return Err(invalid(
                "credentials_service.api_keys",
                "the credentials service needs at least one API key",
            ));
        }
        if service.api_keys.iter().any(|k| k.len() < 16) {
            return Err(invalid(
                "credentials_service.api_keys",
                "an API key must be at least 16 characters",
            ));
        }
        if !has_secret {
            return Err(invalid(
                "credentials_service.enabled",
                "the credentials service mints TURN REST credentials: [turn] secrets must hold one",
            ));
        }
    }
    let ttl = |d: Duration| (60..=31_536_000).contains(&d.as_secs());
    if !ttl(service.default_ttl) || !ttl(service.max_ttl) || service.default_ttl > service.max_ttl {
        return Err(invalid(
            "credentials_service.default_ttl_secs",
            "TTLs must be 60..=31536000 s and default_ttl_secs at most max_ttl_secs",
        ));
    }
    if !(1..=604_800).contains(&drain.deadline.as_secs()) {
        return Err(invalid(
            "drain.deadline_secs",
            "deadline_secs must be 1..=604800",
        ));
    }
    Ok(())
}
