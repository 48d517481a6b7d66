//! The `turnserver.toml` schema: parsed with serde, unknown keys rejected, and every error
//! reported with the file, line, column and reason.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use turnpike_proto::policy::{Cidr, PeerPolicy};
use turnpike_proto::quota::Quotas;
use turnpike_server::{ExternalIp, RelayConfig, ServerConfig, TcpLimits, TurnSettings};

/// The shipped, documented default configuration, embedded in the binary.
pub(crate) const DEFAULT_CONFIG: &str = include_str!("../../../turnserver.toml");

/// The name the embedded default is reported under in errors.
pub(crate) const DEFAULT_CONFIG_NAME: &str = "<embedded turnserver.toml>";

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// `[listen]`
    #[serde(default)]
    pub(crate) listen: Listen,
    /// `[stun]`
    #[serde(default)]
    pub(crate) stun: Stun,
    /// `[tcp]`
    #[serde(default)]
    pub(crate) tcp: Tcp,
    /// `[turn]`
    #[serde(default)]
    pub(crate) turn: Turn,
    /// `[relay]`
    #[serde(default)]
    pub(crate) relay: Relay,
    /// `[peers]`
    #[serde(default)]
    pub(crate) peers: Peers,
    /// `[quotas]`
    #[serde(default)]
    pub(crate) quotas: QuotaSection,
    /// `[tls]`
    #[serde(default)]
    pub(crate) tls: Option<Tls>,
    /// `[alternates]`
    #[serde(default)]
    pub(crate) alternates: AlternateSection,
    /// `[rfc5780]`
    #[serde(default)]
    pub(crate) rfc5780: Option<Rfc5780Section>,
    /// `[runtime]`
    #[serde(default)]
    pub(crate) runtime: Runtime,
    /// `[log]`
    #[serde(default)]
    pub(crate) log: Log,
}

/// `[listen]`: where to listen.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Listen {
    /// UDP addresses.
    #[serde(default = "default_listen")]
    pub(crate) udp: Spanned<Vec<SocketAddr>>,
    /// TCP addresses.
    #[serde(default = "default_listen")]
    pub(crate) tcp: Spanned<Vec<SocketAddr>>,
}

fn default_listen() -> Spanned<Vec<SocketAddr>> {
    Spanned::new(
        0..0,
        vec![
            SocketAddr::from(([0, 0, 0, 0], 3478)),
            SocketAddr::from(([0u16; 8], 3478)),
        ],
    )
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            udp: default_listen(),
            tcp: default_listen(),
        }
    }
}

/// `[stun]`: the Binding service.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Stun {
    /// SOFTWARE attribute value; empty or absent means none.
    #[serde(default)]
    pub(crate) software: Option<Spanned<String>>,
}

/// `[tcp]`: connection limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tcp {
    /// Idle timeout in seconds.
    #[serde(default = "default_idle")]
    pub(crate) idle_timeout_secs: Spanned<u64>,
    /// Total connection cap.
    #[serde(default = "default_max_connections")]
    pub(crate) max_connections: Spanned<usize>,
    /// Per-IP connection cap.
    #[serde(default = "default_max_per_ip")]
    pub(crate) max_connections_per_ip: Spanned<usize>,
    /// Seconds for the first byte and the TLS handshake.
    #[serde(default = "default_handshake")]
    pub(crate) handshake_timeout_secs: Spanned<u64>,
}

fn default_handshake() -> Spanned<u64> {
    Spanned::new(0..0, 10)
}

fn default_idle() -> Spanned<u64> {
    Spanned::new(0..0, 300)
}
fn default_max_connections() -> Spanned<usize> {
    Spanned::new(0..0, 10_000)
}
fn default_max_per_ip() -> Spanned<usize> {
    Spanned::new(0..0, 64)
}

impl Default for Tcp {
    fn default() -> Self {
        Self {
            idle_timeout_secs: default_idle(),
            max_connections: default_max_connections(),
            max_connections_per_ip: default_max_per_ip(),
            handshake_timeout_secs: default_handshake(),
        }
    }
}

/// `[turn]`: authentication and lifetimes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Turn {
    #[serde(default = "default_realm")]
    pub(crate) realm: Spanned<String>,
    #[serde(default = "no_secrets")]
    pub(crate) secrets: Spanned<Vec<String>>,
    #[serde(default)]
    pub(crate) users: Vec<Spanned<UserEntry>>,
    #[serde(default = "default_max_lifetime")]
    pub(crate) max_lifetime_secs: Spanned<u64>,
    #[serde(default = "default_nonce_lifetime")]
    pub(crate) nonce_lifetime_secs: Spanned<u64>,
    #[serde(default)]
    pub(crate) strict_expiry: bool,
    #[serde(default)]
    pub(crate) strict_channel_numbers: bool,
    #[serde(default)]
    pub(crate) mobility: bool,
    #[serde(default = "yes")]
    pub(crate) tcp_relay: bool,
    #[serde(default = "default_icmp")]
    pub(crate) icmp_per_second: u32,
}

/// One static user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserEntry {
    pub(crate) name: String,
    pub(crate) password: String,
}

fn yes() -> bool {
    true
}
fn default_icmp() -> u32 {
    10
}
fn no_secrets() -> Spanned<Vec<String>> {
    Spanned::new(0..0, Vec::new())
}
fn default_realm() -> Spanned<String> {
    Spanned::new(0..0, "turnpike".into())
}
fn default_max_lifetime() -> Spanned<u64> {
    Spanned::new(0..0, 3600)
}
fn default_nonce_lifetime() -> Spanned<u64> {
    Spanned::new(0..0, 600)
}

impl Default for Turn {
    fn default() -> Self {
        Self {
            realm: default_realm(),
            secrets: Spanned::new(0..0, Vec::new()),
            users: Vec::new(),
            max_lifetime_secs: default_max_lifetime(),
            nonce_lifetime_secs: default_nonce_lifetime(),
            strict_expiry: false,
            strict_channel_numbers: false,
            mobility: false,
            tcp_relay: true,
            icmp_per_second: default_icmp(),
        }
    }
}

/// `[relay]`: where relay sockets live.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Relay {
    #[serde(default)]
    pub(crate) ips: Vec<std::net::IpAddr>,
    #[serde(default = "default_ports")]
    pub(crate) ports: Spanned<String>,
    #[serde(default)]
    pub(crate) external_ip: Vec<Spanned<String>>,
}

fn default_ports() -> Spanned<String> {
    Spanned::new(0..0, "49152-65535".into())
}

impl Default for Relay {
    fn default() -> Self {
        Self {
            ips: Vec::new(),
            ports: default_ports(),
            external_ip: Vec::new(),
        }
    }
}

/// `[peers]`: the peer address policy.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Peers {
    #[serde(default)]
    pub(crate) allow: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) deny: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) dangerous_allow_loopback_peers: bool,
}

/// `[quotas]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuotaSection {
    #[serde(default = "q_per_user")]
    pub(crate) allocations_per_user: u32,
    #[serde(default = "q_total")]
    pub(crate) allocations_total: u32,
    #[serde(default = "q_perm")]
    pub(crate) permissions_per_allocation: u32,
    #[serde(default = "q_chan")]
    pub(crate) channels_per_allocation: u32,
    #[serde(default)]
    pub(crate) bandwidth_bytes_per_sec: u64,
}

fn q_per_user() -> u32 {
    100
}
fn q_total() -> u32 {
    100_000
}
fn q_perm() -> u32 {
    64
}
fn q_chan() -> u32 {
    64
}

impl Default for QuotaSection {
    fn default() -> Self {
        Self {
            allocations_per_user: q_per_user(),
            allocations_total: q_total(),
            permissions_per_allocation: q_perm(),
            channels_per_allocation: q_chan(),
            bandwidth_bytes_per_sec: 0,
        }
    }
}

/// `[rfc5780]`: NAT behaviour discovery (RFC 5780).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rfc5780Section {
    pub(crate) ips: Spanned<Vec<std::net::IpAddr>>,
    pub(crate) ports: Spanned<[u16; 2]>,
}

/// `[alternates]`: ALTERNATE-SERVER (300 Try Alternate).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlternateSection {
    #[serde(default)]
    pub(crate) udp: Vec<SocketAddr>,
    #[serde(default)]
    pub(crate) tcp: Vec<SocketAddr>,
    #[serde(default)]
    pub(crate) tls: Vec<SocketAddr>,
    #[serde(default)]
    pub(crate) domain: Option<String>,
    #[serde(default)]
    pub(crate) redirect: bool,
}

/// `[tls]`: certificate and key for TLS on the TCP listeners.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tls {
    pub(crate) cert: Spanned<std::path::PathBuf>,
    pub(crate) key: Spanned<std::path::PathBuf>,
}

/// `[runtime]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Runtime {
    /// Worker threads; 0 = one per core.
    #[serde(default)]
    pub(crate) workers: usize,
}

/// `[log]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Log {
    /// The level.
    #[serde(default = "default_level")]
    pub(crate) level: Spanned<LogLevel>,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            level: default_level(),
        }
    }
}

fn default_level() -> Spanned<LogLevel> {
    Spanned::new(0..0, LogLevel::Info)
}

/// A log level.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub(crate) enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The `tracing` directive.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

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

/// A validated configuration, ready for the runtime.
#[derive(Debug)]
pub(crate) struct Config {
    /// The runtime's settings.
    pub(crate) server: ServerConfig,
    /// Worker threads (resolved: never 0).
    pub(crate) workers: usize,
    /// Log level.
    pub(crate) log_level: LogLevel,
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
    let at = |span: std::ops::Range<usize>, reason: String| ConfigError {
        file: file.to_owned(),
        position: (span.end > 0).then(|| line_col(text, span.start)),
        reason,
    };
    let raw: FileConfig = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        ConfigError {
            file: file.to_owned(),
            position: e.span().map(|_| line_col(text, span.start)),
            reason: e.message().trim().to_owned(),
        }
    })?;

    if raw.listen.udp.get_ref().is_empty()
        && raw.listen.tcp.get_ref().is_empty()
        && raw.rfc5780.is_none()
    {
        return Err(at(
            raw.listen.udp.span(),
            "no listener: [listen] udp and tcp are both empty".into(),
        ));
    }
    for list in [&raw.listen.udp, &raw.listen.tcp] {
        let mut seen = std::collections::HashSet::new();
        for addr in list.get_ref() {
            if !seen.insert(addr) {
                return Err(at(list.span(), format!("address {addr} is listed twice")));
            }
        }
    }
    let idle = *raw.tcp.idle_timeout_secs.get_ref();
    if idle == 0 || idle > 86_400 {
        return Err(at(
            raw.tcp.idle_timeout_secs.span(),
            format!("idle_timeout_secs must be 1..=86400, not {idle}"),
        ));
    }
    for v in [&raw.tcp.max_connections, &raw.tcp.max_connections_per_ip] {
        if *v.get_ref() == 0 {
            return Err(at(v.span(), "must be at least 1".into()));
        }
    }
    let software = match raw.stun.software {
        Some(s) if s.get_ref().len() > 763 => {
            return Err(at(
                s.span(),
                "software is longer than SOFTWARE allows (763 bytes, RFC 8489 §14.14)".into(),
            ));
        }
        Some(s) if !s.get_ref().is_empty() => Some(s.into_inner()),
        _ => None,
    };
    let workers = match raw.runtime.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let handshake = *raw.tcp.handshake_timeout_secs.get_ref();
    if handshake == 0 || handshake > 300 {
        return Err(at(
            raw.tcp.handshake_timeout_secs.span(),
            format!("handshake_timeout_secs must be 1..=300, not {handshake}"),
        ));
    }
    let tls = match raw.tls {
        Some(t) => {
            for p in [&t.cert, &t.key] {
                if !p.get_ref().is_file() {
                    return Err(at(
                        p.span(),
                        format!("{} is not a readable file", p.get_ref().display()),
                    ));
                }
            }
            Some(turnpike_server::tls::TlsFiles {
                cert: t.cert.into_inner(),
                key: t.key.into_inner(),
            })
        }
        None => None,
    };
    let rfc5780 = match raw.rfc5780 {
        Some(r) => Some(rfc5780_addresses(&r, &at)?),
        None => None,
    };
    let mut turn = turn_settings(raw.turn, raw.peers, &raw.quotas, &at)?;
    turn.alternates = turnpike_server::Alternates {
        udp: raw.alternates.udp,
        tcp: raw.alternates.tcp,
        tls: raw.alternates.tls,
    };
    turn.alternate_domain = raw.alternates.domain;
    turn.redirect = raw.alternates.redirect;
    let relay = relay_config(raw.relay, &at)?;
    let server = ServerConfig {
        udp: raw.listen.udp.into_inner(),
        tcp: raw.listen.tcp.into_inner(),
        binding: turnpike_server::BindingConfig { software, rfc5780 },
        tcp_limits: TcpLimits {
            idle_timeout: Duration::from_secs(idle),
            max_connections: raw.tcp.max_connections.into_inner(),
            max_connections_per_ip: raw.tcp.max_connections_per_ip.into_inner(),
            handshake_timeout: Duration::from_secs(handshake),
        },
        tls,
        workers,
        turn,
        relay,
        skip_unavailable_ipv6: true,
    };
    Ok(Config {
        server,
        workers,
        log_level: raw.log.level.into_inner(),
    })
}

type At<'a> = dyn Fn(std::ops::Range<usize>, String) -> ConfigError + 'a;

fn turn_settings(
    turn: Turn,
    peers: Peers,
    quotas: &QuotaSection,
    at: &At<'_>,
) -> Result<TurnSettings, ConfigError> {
    let realm = turn.realm.get_ref();
    if realm.is_empty() || realm.len() > 763 {
        return Err(at(
            turn.realm.span(),
            "realm must be 1..=763 bytes (RFC 8489 §14.9)".into(),
        ));
    }
    if turn.secrets.get_ref().iter().any(String::is_empty) {
        return Err(at(turn.secrets.span(), "a secret must not be empty".into()));
    }
    let mut users = Vec::new();
    for u in &turn.users {
        let entry = u.get_ref();
        if entry.name.is_empty() || entry.name.len() > 508 {
            return Err(at(
                u.span(),
                "user name must be 1..=508 bytes (RFC 8489 §14.3)".into(),
            ));
        }
        if turnpike_stun::opaque_string(&entry.password).is_err() {
            return Err(at(
                u.span(),
                "password is not a valid OpaqueString (RFC 8265): empty or with control characters"
                    .into(),
            ));
        }
        users.push((entry.name.clone(), entry.password.clone()));
    }
    let max = *turn.max_lifetime_secs.get_ref();
    if !(600..=86_400).contains(&max) {
        return Err(at(
            turn.max_lifetime_secs.span(),
            format!(
                "max_lifetime_secs must be 600..=86400 (the default lifetime is 600), not {max}"
            ),
        ));
    }
    let nonce = *turn.nonce_lifetime_secs.get_ref();
    if !(30..=86_400).contains(&nonce) {
        return Err(at(
            turn.nonce_lifetime_secs.span(),
            format!("nonce_lifetime_secs must be 30..=86400, not {nonce}"),
        ));
    }
    let cidrs = |list: &[Spanned<String>]| -> Result<Vec<Cidr>, ConfigError> {
        list.iter()
            .map(|c| {
                c.get_ref()
                    .parse::<Cidr>()
                    .map_err(|e| at(c.span(), format!("{:?}: {e}", c.get_ref())))
            })
            .collect()
    };
    let mut policy = PeerPolicy::default();
    policy.allow = cidrs(&peers.allow)?;
    policy.deny = cidrs(&peers.deny)?;
    policy.dangerous_allow_loopback = peers.dangerous_allow_loopback_peers;
    Ok(TurnSettings {
        realm: realm.clone(),
        secrets: turn
            .secrets
            .into_inner()
            .into_iter()
            .map(String::into_bytes)
            .collect(),
        users,
        max_lifetime: Duration::from_secs(max),
        nonce_lifetime: Duration::from_secs(nonce),
        strict_expiry: turn.strict_expiry,
        strict_channel_numbers: turn.strict_channel_numbers,
        mobility: turn.mobility,
        tcp_relay: turn.tcp_relay,
        icmp_per_second: turn.icmp_per_second,
        alternates: turnpike_server::Alternates::default(),
        alternate_domain: None,
        redirect: false,
        peer_policy: policy,
        quotas: Quotas {
            allocations_per_user: quotas.allocations_per_user,
            allocations_total: quotas.allocations_total,
            permissions_per_allocation: quotas.permissions_per_allocation,
            channels_per_allocation: quotas.channels_per_allocation,
            bandwidth_bytes_per_sec: quotas.bandwidth_bytes_per_sec,
        },
    })
}

fn rfc5780_addresses(
    r: &Rfc5780Section,
    at: &At<'_>,
) -> Result<turnpike_proto::binding::Rfc5780Addresses, ConfigError> {
    use std::net::IpAddr;
    let ips = r.ips.get_ref();
    let v4: Vec<std::net::Ipv4Addr> = ips
        .iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    let v6: Vec<std::net::Ipv6Addr> = ips
        .iter()
        .filter_map(|ip| match ip {
            IpAddr::V6(v6) => Some(*v6),
            IpAddr::V4(_) => None,
        })
        .collect();
    let pair = |n: usize| n == 0 || n == 2;
    if !pair(v4.len()) || !pair(v6.len()) || ips.is_empty() {
        return Err(at(
            r.ips.span(),
            "ips must hold two IPv4 and/or two IPv6 addresses of this host (primary, alternate)"
                .into(),
        ));
    }
    let [p1, p2] = *r.ports.get_ref();
    let set = turnpike_proto::binding::Rfc5780Addresses {
        primary_port: p1,
        alternate_port: p2,
        v4: (v4.len() == 2).then(|| (v4[0], v4[1])),
        v6: (v6.len() == 2).then(|| (v6[0], v6[1])),
        streams: false,
    };
    set.validate()
        .map_err(|e| at(r.ports.span(), e.to_string()))?;
    Ok(set)
}

fn relay_config(relay: Relay, at: &At<'_>) -> Result<RelayConfig, ConfigError> {
    let ports = relay.ports.get_ref();
    let parsed = ports
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)));
    let Some((min_port, max_port)) = parsed.filter(|(a, b)| *a >= 1024 && a < b) else {
        return Err(at(
            relay.ports.span(),
            format!("ports must be \"MIN-MAX\" with 1024 <= MIN < MAX <= 65535, not {ports:?}"),
        ));
    };
    let mut external = Vec::new();
    for e in &relay.external_ip {
        let text = e.get_ref();
        let parsed = match text.split_once('/') {
            Some((public, private)) => {
                public
                    .parse()
                    .ok()
                    .zip(private.parse().ok())
                    .map(|(public, private)| ExternalIp {
                        public,
                        private: Some(private),
                    })
            }
            None => text.parse().ok().map(|public| ExternalIp {
                public,
                private: None,
            }),
        };
        let Some(mapping) = parsed else {
            return Err(at(
                e.span(),
                format!(
                    "external_ip must be \"PUBLIC\" or \"PUBLIC/PRIVATE\" IP addresses, not {text:?}"
                ),
            ));
        };
        external.push(mapping);
    }
    Ok(RelayConfig {
        ips: relay.ips,
        min_port,
        max_port,
        external,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = parse(DEFAULT_CONFIG, DEFAULT_CONFIG_NAME).unwrap();
        assert_eq!(c.server.udp.len(), 2);
        assert_eq!(c.server.tcp.len(), 2);
        assert!(c.server.binding.software.is_none());
        assert_eq!(c.server.tcp_limits.max_connections_per_ip, 64);
    }

    #[test]
    fn empty_file_means_defaults() {
        let c = parse("", "x.toml").unwrap();
        assert_eq!(c.server.udp[0].port(), 3478);
        assert_eq!(c.log_level, LogLevel::Info);
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
        ];
        for (text, line, needle) in cases {
            let err = parse(text, "bad.toml").unwrap_err();
            let shown = err.to_string();
            assert!(shown.starts_with(&format!("bad.toml:{line}:")), "{shown}");
            assert!(shown.contains(needle), "{shown}");
        }
    }
}
