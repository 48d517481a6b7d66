//! The `iceServers` list a WebRTC client needs to use this server, built in one place from
//! the [`Config`]: `turnpike credentials --json` prints it, and a credentials service can
//! serve it.
//!
//! Its shape is the one hosted TURN services return and `RTCPeerConnection` takes
//! (W3C WebRTC §4.2.1 `RTCIceServer`; URIs of RFC 7064 and RFC 7065):
//!
//! ```json
//! {"iceServers": [
//!   {"urls": ["stun:HOST:3478"]},
//!   {"urls": ["turn:HOST:3478?transport=udp", "turn:HOST:3478?transport=tcp",
//!             "turns:HOST:443?transport=tcp"],
//!    "username": "1700000000:alice", "credential": "..."}
//! ]}
//! ```
//!
//! The entries follow the listeners: `stun:` and `turn:…?transport=udp` for each UDP
//! listener port, `turn:…?transport=tcp` for each TCP listener port, and `turns:` for each
//! TCP listener port when `[tls]` is set (TLS is told from plain TCP by the first byte of
//! a connection, so every TCP listener takes both). A port listed on several addresses
//! appears once. The host is [`public_host`].

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use serde::Serialize;

use crate::config::Config;

/// What `RTCPeerConnection`'s `iceServers` option takes: `{"iceServers": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServers {
    /// The servers: a STUN entry without credentials, then the TURN entry with them.
    #[serde(rename = "iceServers")]
    pub ice_servers: Vec<IceServer>,
}

/// One `RTCIceServer`: URLs sharing one credential (or none, for STUN).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URIs (RFC 7064, RFC 7065).
    pub urls: Vec<String>,
    /// The TURN username; absent for STUN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The TURN password; absent for STUN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl IceServers {
    /// The list for `config`'s listeners at [`public_host`], with a TURN credential.
    pub fn new(config: &Config, username: &str, credential: &str) -> Self {
        Self::for_host(config, &public_host(config), username, credential)
    }

    /// As [`IceServers::new`] at another host (a DNS name or an IP address; an IPv6
    /// address is put in brackets if it is not already).
    pub fn for_host(config: &Config, host: &str, username: &str, credential: &str) -> Self {
        let host = uri_host(host);
        let listen = config.listeners();
        let udp = distinct_ports(&listen.udp);
        let tcp = distinct_ports(&listen.tcp);
        let mut ice_servers = Vec::with_capacity(2);
        if !udp.is_empty() {
            ice_servers.push(IceServer {
                urls: udp.iter().map(|p| format!("stun:{host}:{p}")).collect(),
                username: None,
                credential: None,
            });
        }
        let mut turn: Vec<String> = udp
            .iter()
            .map(|p| format!("turn:{host}:{p}?transport=udp"))
            .collect();
        turn.extend(tcp.iter().map(|p| format!("turn:{host}:{p}?transport=tcp")));
        if config.tls.is_some() {
            turn.extend(
                tcp.iter()
                    .map(|p| format!("turns:{host}:{p}?transport=tcp")),
            );
        }
        if !turn.is_empty() {
            ice_servers.push(IceServer {
                urls: turn,
                username: Some(username.to_owned()),
                credential: Some(credential.to_owned()),
            });
        }
        Self { ice_servers }
    }

    /// Every URL, STUN first.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.ice_servers
            .iter()
            .flat_map(|s| s.urls.iter().map(String::as_str))
    }
}

/// The ports of `addrs`, each once, in the order first listed.
fn distinct_ports(addrs: &[SocketAddr]) -> Vec<u16> {
    let mut ports = Vec::with_capacity(addrs.len());
    for a in addrs {
        if !ports.contains(&a.port()) {
            ports.push(a.port());
        }
    }
    ports
}

/// `host` as it goes into a URI: an IPv6 literal in brackets (RFC 3986 §3.2.2).
fn uri_host(host: &str) -> String {
    match host.parse::<Ipv6Addr>() {
        Ok(v6) => format!("[{v6}]"),
        Err(_) => host.to_owned(),
    }
}

/// The host clients use to reach this server, as written in a URI: `[listen] public_name`
/// when set; else the public side of the first `[relay] external_ip` (a 1:1 NAT's public
/// address is the one clients reach); else the first listener's IP (UDP first) if it is
/// not unspecified (`0.0.0.0`, `::`); else this machine's host name.
pub fn public_host(config: &Config) -> String {
    if !config.listen.public_name.is_empty() {
        return uri_host(&config.listen.public_name);
    }
    let listen = config.listeners();
    let ip = config.relay.external.first().map(|e| e.public).or_else(|| {
        listen
            .udp
            .iter()
            .chain(&listen.tcp)
            .next()
            .map(SocketAddr::ip)
            .filter(|ip| !ip.is_unspecified())
    });
    match ip {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => format!("[{v6}]"),
        None => host_name(),
    }
}

/// The kernel's host name (`/proc/sys/kernel/hostname`), or `localhost` if unreadable.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Why `name` cannot be `[listen] public_name`, if it cannot: it goes into URIs as their
/// host, so it is empty (unset), a DNS name or IPv4 address (no spaces, `/`, `?`, `#`,
/// `@`), or an IPv6 address with or without brackets.
pub(crate) fn check_public_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return None;
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#' | '@'))
    {
        return Some("public_name is a host name or IP address, without spaces, /, ?, # or @");
    }
    if name.contains([':', '[', ']']) {
        let inner = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        if inner.parse::<Ipv6Addr>().is_err() {
            return Some(
                "public_name has ':' or brackets but is not an IPv6 address (give no port)",
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::ExternalIp;
    use crate::tls::TlsFiles;

    fn config(udp: &[&str], tcp: &[&str], tls: bool) -> Config {
        let mut c = Config::default();
        c.listen.udp = udp.iter().map(|a| a.parse().unwrap()).collect();
        c.listen.tcp = tcp.iter().map(|a| a.parse().unwrap()).collect();
        c.tls = tls.then(|| TlsFiles {
            cert: "c.pem".into(),
            key: "k.pem".into(),
            watch_interval_secs: 10,
        });
        c
    }

    #[test]
    fn the_json_is_what_browsers_take() {
        let mut c = config(
            &["0.0.0.0:3478", "[::]:3478"],
            &["0.0.0.0:3478", "[::]:3478", "0.0.0.0:443"],
            true,
        );
        c.listen.public_name = "turn.example.com".into();
        let ice = IceServers::new(&c, "1700000000:alice", "pw=");
        let json = serde_json::to_value(&ice).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"iceServers": [
                {"urls": ["stun:turn.example.com:3478"]},
                {"urls": [
                    "turn:turn.example.com:3478?transport=udp",
                    "turn:turn.example.com:3478?transport=tcp",
                    "turn:turn.example.com:443?transport=tcp",
                    "turns:turn.example.com:3478?transport=tcp",
                    "turns:turn.example.com:443?transport=tcp",
                ], "username": "1700000000:alice", "credential": "pw="},
            ]})
        );
    }

    #[test]
    fn entries_follow_the_listeners() {
        let only_udp = IceServers::for_host(&config(&["0.0.0.0:3478"], &[], true), "h", "u", "p");
        assert_eq!(
            only_udp.urls().collect::<Vec<_>>(),
            ["stun:h:3478", "turn:h:3478?transport=udp"],
            "no TCP listener: no transport=tcp and no turns: even with [tls]"
        );
        let only_tcp = IceServers::for_host(&config(&[], &["0.0.0.0:5349"], true), "h", "u", "p");
        assert_eq!(
            only_tcp.urls().collect::<Vec<_>>(),
            ["turn:h:5349?transport=tcp", "turns:h:5349?transport=tcp"],
            "no UDP listener: no stun: and no transport=udp"
        );
        assert_eq!(only_tcp.ice_servers.len(), 1);
        let no_tls = IceServers::for_host(
            &config(&["0.0.0.0:3478"], &["0.0.0.0:3478"], false),
            "h",
            "u",
            "p",
        );
        assert!(no_tls.urls().all(|u| !u.starts_with("turns:")));
        assert_eq!(no_tls.urls().count(), 3);
    }

    #[test]
    fn the_host_is_the_public_name_then_the_nat_address_then_the_listener() {
        let mut c = config(&["[2001:db8::7]:3478"], &["192.0.2.1:3478"], false);
        assert_eq!(
            public_host(&c),
            "[2001:db8::7]",
            "first listener, bracketed"
        );
        c.relay.external = vec![ExternalIp {
            public: "203.0.113.9".parse().unwrap(),
            private: None,
        }];
        assert_eq!(
            public_host(&c),
            "203.0.113.9",
            "the 1:1 NAT's public address"
        );
        c.listen.public_name = "2001:db8::1".into();
        assert_eq!(public_host(&c), "[2001:db8::1]");
        c.listen.public_name = "turn.example.org".into();
        assert_eq!(public_host(&c), "turn.example.org");
        let ice = IceServers::new(&c, "u", "p");
        assert_eq!(ice.urls().next(), Some("stun:turn.example.org:3478"));
    }

    #[test]
    fn unspecified_listeners_fall_back_to_the_host_name() {
        let c = config(&["0.0.0.0:3478"], &["[::]:3478"], false);
        let host = public_host(&c);
        assert!(!host.is_empty() && host != "0.0.0.0", "{host}");
        assert_eq!(host, host_name());
    }

    #[test]
    fn an_ipv6_host_given_by_hand_is_bracketed_once() {
        let c = config(&["0.0.0.0:3478"], &[], false);
        for host in ["::1", "[::1]"] {
            let ice = IceServers::for_host(&c, host, "u", "p");
            assert_eq!(ice.urls().next(), Some("stun:[::1]:3478"), "{host}");
        }
    }

    #[test]
    fn public_name_must_fit_in_a_uri() {
        for ok in [
            "",
            "turn.example.com",
            "192.0.2.1",
            "2001:db8::1",
            "[2001:db8::1]",
        ] {
            assert_eq!(check_public_name(ok), None, "{ok:?}");
        }
        for bad in ["turn.example.com:3478", "a b", "http://x", "u@h", "[nope]"] {
            assert!(check_public_name(bad).is_some(), "{bad:?}");
        }
    }
}
