//! [`Config`]: the whole `turnserver.toml`, one typed tree from the file down.
//!
//! Each section is the type the part of the server that uses it takes whole: the core's
//! sections come from [`turnpike_proto::config`] (`[turn]`, `[peers]`, `[quotas]`,
//! `[alternates]`, `[stun]`, `[rfc5780]`), the runtime's are defined here and beside
//! their users (`[listen]`, `[tcp]`, `[tls]`, `[relay]`, `[runtime]`, `[log]`; the operator's `[admin]`, `[metrics]`,
//! `[credentials_service]`, `[drain]` in [`crate::operations`]). A missing
//! key or section takes its type's `Default`: one default per option, documented in the
//! shipped `turnserver.toml`. [`Config::validate`] checks what types alone cannot (ranges,
//! files, cross-field rules) and names the key at fault, so the binary can point at its
//! line.

use std::net::SocketAddr;

use serde::Deserialize;
use turnpike_proto::binding::Rfc5780Addresses;
use turnpike_proto::config::{Alternates, StunSection, TurnConfig, TurnSection};
use turnpike_proto::policy::PeerPolicy;
use turnpike_proto::quota::Quotas;

use crate::operations::{AdminSection, CredentialsService, DrainSection, MetricsSection};
use crate::relay::RelayConfig;
use crate::tcp::TcpLimits;
use crate::tls::TlsFiles;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[listen]`: where to listen.
    pub listen: Listen,
    /// `[stun]`: the Binding service.
    pub stun: StunSection,
    /// `[tcp]`: connection limits.
    pub tcp: TcpLimits,
    /// `[turn]`: authentication, lifetimes, optional RFCs.
    pub turn: TurnSection,
    /// `[relay]`: relay addresses, ports and the 1:1 NAT mapping.
    pub relay: RelayConfig,
    /// `[peers]`: which peers may be relayed to.
    pub peers: PeerPolicy,
    /// `[quotas]`: quotas and the bandwidth cap.
    pub quotas: Quotas,
    /// `[tls]`: certificate and key for TLS on the TCP listeners; none: TCP is plain only.
    pub tls: Option<TlsFiles>,
    /// `[alternates]`: ALTERNATE-SERVER redirection.
    pub alternates: Alternates,
    /// `[rfc5780]`: NAT behaviour discovery; off when absent.
    pub rfc5780: Option<Rfc5780Addresses>,
    /// `[runtime]`: threads.
    pub runtime: Runtime,
    /// `[log]`: logging.
    pub log: Log,
    /// `[admin]`: the admin API.
    pub admin: AdminSection,
    /// `[metrics]`: Prometheus metrics.
    pub metrics: MetricsSection,
    /// `[credentials_service]`: minting credentials for app servers.
    pub credentials_service: CredentialsService,
    /// `[drain]`: stopping without cutting calls.
    pub drain: DrainSection,
    /// `[offload]`: the in-kernel ChannelData fast path; off by default.
    pub offload: crate::offload_config::OffloadSection,
    /// Internal, not in the file: skip an unspecified IPv6 listener (`[::]`) when the
    /// host has no IPv6 instead of failing (on by default; tests that need every
    /// listener turn it off).
    #[serde(skip, default = "yes")]
    pub skip_unavailable_ipv6: bool,
    /// Internal, not in the file: the listeners as bound (port 0 resolved, RFC 5780's
    /// addresses among the UDP ones), set by [`crate::Server::bind`]; the peer check
    /// refuses them and `iceServers` name their ports.
    #[serde(skip)]
    pub bound: Option<Listen>,
}

fn yes() -> bool {
    true
}

/// `[listen]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listen {
    /// UDP addresses. Default: port 3478 on every IPv4 and IPv6 address.
    #[serde(deserialize_with = "turnpike_proto::addr_syntax::serde_addr::list")]
    pub udp: Vec<SocketAddr>,
    /// TCP (and TLS) addresses. Default: as `udp`.
    #[serde(deserialize_with = "turnpike_proto::addr_syntax::serde_addr::list")]
    pub tcp: Vec<SocketAddr>,
    /// The DNS name or IP address clients use to reach this server, for the `iceServers`
    /// handed to them ([`crate::ice`]). Empty (the default): guessed, see
    /// [`crate::ice::public_host`].
    pub public_name: String,
}

impl Default for Listen {
    fn default() -> Self {
        let all = vec![
            SocketAddr::from(([0, 0, 0, 0], 3478)),
            SocketAddr::from(([0u16; 8], 3478)),
        ];
        Self {
            udp: all.clone(),
            tcp: all,
            public_name: String::new(),
        }
    }
}

/// `[runtime]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Runtime {
    /// Worker threads; 0 (the default) = one per core. At most 256.
    pub workers: usize,
}

impl Runtime {
    /// The number of workers to run: as configured, or one per core.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .clamp(1, 256)
    }
}

/// `[log]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// The level; `RUST_LOG` overrides it. Default `info`.
    pub level: LogLevel,
    /// How lines are written to stderr. Default `human`.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event (the default).
    #[default]
    Human,
    /// One JSON object per line (timestamp, level, target, fields), for log shippers.
    Json,
}

/// A log level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// And warnings.
    Warn,
    /// And what an operator follows (the default).
    #[default]
    Info,
    /// And what a developer follows.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The `tracing` directive.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// A value the types accept but the server cannot use: which key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The key, as a dotted path (`tcp.idle_timeout_secs`, `turn.users.2`).
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

impl std::error::Error for Invalid {}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Invalid {
    Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

impl Config {
    /// The listeners as bound when running, else as configured.
    pub fn listeners(&self) -> &Listen {
        self.bound.as_ref().unwrap_or(&self.listen)
    }

    /// The core's sections, for one `Arc` shared by every core.
    pub fn core(&self) -> TurnConfig {
        TurnConfig {
            turn: self.turn.clone(),
            peers: {
                let mut peers = self.peers.clone();
                peers.own = self.own_addresses();
                peers
            },
            quotas: self.quotas,
            alternates: self.alternates.clone(),
            stun: self.stun.clone(),
            rfc5780: self.rfc5780,
        }
    }

    /// The server's own addresses, which no peer may be (see
    /// [`turnpike_proto::policy::OwnAddresses`]): every listener, a wildcard one at each
    /// relay IP (local and advertised), and the relay IPs outside the relay range.
    pub fn own_addresses(&self) -> turnpike_proto::policy::OwnAddresses {
        let relay_ips: Vec<std::net::IpAddr> = self
            .relay
            .ips
            .iter()
            .copied()
            .chain(self.relay.external.iter().map(|e| e.public))
            .collect();
        let rfc5780 = self
            .rfc5780
            .iter()
            .flat_map(Rfc5780Addresses::listen_addresses);
        let mut listeners = Vec::new();
        let all: Vec<SocketAddr> = match &self.bound {
            Some(b) => b.udp.iter().chain(&b.tcp).copied().collect(),
            None => {
                let configured = self.listen.udp.iter().chain(&self.listen.tcp).copied();
                configured.chain(rfc5780).collect()
            }
        };
        for addr in all {
            if addr.ip().is_unspecified() {
                let v6 = addr.is_ipv6();
                listeners.extend(
                    relay_ips
                        .iter()
                        .filter(|ip| v6 || ip.is_ipv4())
                        .map(|&ip| SocketAddr::new(ip, addr.port())),
                );
            } else {
                listeners.push(addr);
            }
        }
        listeners.sort_unstable();
        listeners.dedup();
        turnpike_proto::policy::OwnAddresses {
            listeners,
            relay_ips,
            relay_ports: (self.relay.min_port, self.relay.max_port),
        }
    }

    /// Makes the relative paths of the file (the TLS files, the admin token file)
    /// relative to `folder`, the folder of the configuration file.
    pub fn resolve_paths(&mut self, folder: &std::path::Path) {
        let fix = |p: &mut std::path::PathBuf| {
            if p.is_relative() {
                *p = folder.join(&*p);
            }
        };
        if let Some(tls) = &mut self.tls {
            fix(&mut tls.cert);
            fix(&mut tls.key);
        }
        if let Some(file) = &mut self.admin.token_file {
            fix(file);
        }
    }

    /// Checks what the types alone do not.
    ///
    /// # Errors
    ///
    /// Every key whose value cannot be used (at most one per check), in file order of
    /// the sections.
    pub fn validate(&self) -> Result<(), Vec<Invalid>> {
        let mut errors = Vec::new();
        if self.listen.udp.is_empty() && self.listen.tcp.is_empty() && self.rfc5780.is_none() {
            errors.push(invalid(
                "listen.udp",
                "no listener: [listen] udp and tcp are both empty",
            ));
        }
        for (key, list) in [
            ("listen.udp", &self.listen.udp),
            ("listen.tcp", &self.listen.tcp),
        ] {
            let mut seen = std::collections::HashSet::new();
            if let Some(addr) = list.iter().find(|a| !seen.insert(**a)) {
                errors.push(invalid(key, format!("address {addr} is listed twice")));
            }
        }
        if let Some(reason) = crate::ice::check_public_name(&self.listen.public_name) {
            errors.push(invalid("listen.public_name", reason));
        }
        errors.extend(self.validate_tcp().err());
        self.validate_alternates(&mut errors);
        if self.stun.software.as_ref().is_some_and(|s| s.len() > 763) {
            errors.push(invalid(
                "stun.software",
                "software is longer than SOFTWARE allows (763 bytes, RFC 8489 §14.14)",
            ));
        }
        if let Some(tls) = &self.tls {
            for (key, path) in [("tls.cert", &tls.cert), ("tls.key", &tls.key)] {
                if !path.is_file() {
                    errors.push(invalid(
                        key,
                        format!("{} is not a readable file", path.display()),
                    ));
                }
            }
            if tls.watch_interval_secs > 86_400 {
                errors.push(invalid(
                    "tls.watch_interval_secs",
                    format!(
                        "watch_interval_secs must be 0 (off) ..=86400, not {}",
                        tls.watch_interval_secs
                    ),
                ));
            }
        }
        errors.extend(self.validate_turn().err());
        if self.quotas.user_budget_period.as_secs() == 0 {
            errors.push(invalid(
                "quotas.user_budget_period_secs",
                "the budget period must be at least 1 second",
            ));
        }
        if self.runtime.workers > 256 {
            errors.push(invalid("runtime.workers", "at most 256 workers"));
        }
        errors.extend(
            crate::operations::validate(
                &self.admin,
                &self.credentials_service,
                &self.drain,
                !self.turn.secrets.is_empty(),
            )
            .err(),
        );
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// An ALTERNATE-SERVER must be an address a client can reach (RFC 8489 §14.15).
    fn validate_alternates(&self, errors: &mut Vec<Invalid>) {
        let a = &self.alternates;
        for (key, list) in [
            ("alternates.udp", &a.udp),
            ("alternates.tcp", &a.tcp),
            ("alternates.tls", &a.tls),
        ] {
            if let Some(bad) = list
                .iter()
                .find(|s| s.ip().is_unspecified() || s.port() == 0)
            {
                errors.push(invalid(
                    key,
                    format!(
                        "{bad} is not an address a client can be sent to: \
                         name the sibling's public IP and port"
                    ),
                ));
            }
        }
    }

    fn validate_tcp(&self) -> Result<(), Invalid> {
        let idle = self.tcp.idle_timeout.as_secs();
        if !(1..=86_400).contains(&idle) || self.tcp.idle_timeout.subsec_nanos() != 0 {
            return Err(invalid(
                "tcp.idle_timeout_secs",
                format!("idle_timeout_secs must be 1..=86400, not {idle}"),
            ));
        }
        for (key, v) in [
            ("tcp.max_connections", self.tcp.max_connections),
            (
                "tcp.max_connections_per_ip",
                self.tcp.max_connections_per_ip,
            ),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        let handshake = self.tcp.handshake_timeout.as_secs();
        if !(1..=300).contains(&handshake) {
            return Err(invalid(
                "tcp.handshake_timeout_secs",
                format!("handshake_timeout_secs must be 1..=300, not {handshake}"),
            ));
        }
        Ok(())
    }

    fn validate_turn(&self) -> Result<(), Invalid> {
        let turn = &self.turn;
        if turn.realm.is_empty() || turn.realm.len() > 763 {
            return Err(invalid(
                "turn.realm",
                "realm must be 1..=763 bytes (RFC 8489 §14.9)",
            ));
        }
        if turn.secrets.iter().any(String::is_empty) {
            return Err(invalid("turn.secrets", "a secret must not be empty"));
        }
        for (i, u) in turn.users.iter().enumerate() {
            let key = format!("turn.users.{i}");
            if u.name.is_empty() || u.name.len() > 508 {
                return Err(invalid(
                    key,
                    "user name must be 1..=508 bytes (RFC 8489 §14.3)",
                ));
            }
            let password = match &u.credential {
                turnpike_proto::UserCredential::Password(p) => p,
                turnpike_proto::UserCredential::Md5Key(_) => continue,
            };
            if turnpike_stun::opaque_string(password).is_err() {
                return Err(invalid(
                    key,
                    "password is not a valid OpaqueString (RFC 8265): empty or with control characters",
                ));
            }
        }
        let max = turn.max_lifetime.as_secs();
        if !(600..=86_400).contains(&max) {
            return Err(invalid(
                "turn.max_lifetime_secs",
                format!(
                    "max_lifetime_secs must be 600..=86400 (the default lifetime is 600), not {max}"
                ),
            ));
        }
        let nonce = turn.nonce_lifetime.as_secs();
        if !(30..=86_400).contains(&nonce) {
            return Err(invalid(
                "turn.nonce_lifetime_secs",
                format!("nonce_lifetime_secs must be 30..=86400, not {nonce}"),
            ));
        }
        Ok(())
    }
}
