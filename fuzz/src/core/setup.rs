//! The fixed cast of the core fuzz targets (clients, peers, CIDRs) and the configurations
//! the fuzzer chooses among: peer policy, quotas and `[turn]` options, first at start and
//! again at every reconfigure.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use arbitrary::Arbitrary;
use turnpike_proto::policy::{Cidr, OwnAddresses};
use turnpike_proto::quota::Quotas;
use turnpike_proto::{Alternates, ClientTransport, FiveTuple, StaticUser, TurnConfig};

use super::host::{RELAY_PORT_MAX, RELAY_PORT_MIN, RELAY_V4, RELAY_V6};

/// Unix time at the start of every run.
pub const START_UNIX: u64 = 1_700_000_000;
/// The static users: (name, password).
pub const USERS: [(&str, &str); 2] = [("alice", "alice-pw"), ("bob", "bob-pw")];
/// The TURN REST shared secret.
pub const SECRET: &str = "fuzz-rest-secret";
/// The two realms a reconfigure switches between.
pub const REALMS: [&str; 2] = ["fuzz.test", "other.test"];

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("a literal socket address")
}

/// The server's IPv4 listener.
pub fn server_v4() -> SocketAddr {
    sa("198.51.100.1:3478")
}

/// The server's IPv6 listener.
pub fn server_v6() -> SocketAddr {
    sa("[2001:db8:1::1]:3478")
}

/// Peers: public ones the default policy allows, and every kind it refuses (loopback,
/// private, their IPv4-mapped, NAT64 and 6to4 forms, the server's own listener and relay
/// address, multicast, unspecified, link-local), with ports 0 and high ones.
pub fn peers() -> Vec<SocketAddr> {
    [
        "8.8.8.8:5000",
        "1.1.1.1:6000",
        "[2606:4700::1111]:7000",
        "127.0.0.1:5000",
        "10.0.0.1:5000",
        "[::ffff:10.0.0.1]:5000",
        "[64:ff9b::a00:1]:5000",
        "198.51.100.1:3478",
        "192.0.2.1:49160",
        "[::ffff:8.8.8.8]:5000",
        "[2002:a00:1::1]:80",
        "224.0.0.1:5000",
        "0.0.0.0:0",
        "[::1]:5000",
        "8.8.4.4:0",
        "[fe80::1]:5000",
    ]
    .iter()
    .map(|s| sa(s))
    .collect()
}

/// CIDRs the fuzzer puts in `allow` and `deny`.
pub fn cidrs() -> Vec<Cidr> {
    [
        "10.0.0.0/8",
        "127.0.0.0/8",
        "8.8.8.0/24",
        "0.0.0.0/0",
        "::/0",
        "2606:4700::/32",
        "192.0.2.0/24",
        "64:ff9b::/96",
        "::ffff:0:0/96",
        "198.51.100.0/24",
        "1.1.1.1/32",
        "2002::/16",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}

/// A client's place in the cast.
pub struct Cast {
    /// 5-tuple.
    pub ft: FiveTuple,
    /// Which credential: 0 alice, 1 bob, 2 REST, 3 alice with a wrong password.
    pub who: u8,
}

fn tuple(client: &str, transport: ClientTransport) -> FiveTuple {
    let client = sa(client);
    let server = if client.is_ipv4() {
        server_v4()
    } else {
        server_v6()
    };
    FiveTuple {
        client,
        server,
        transport,
    }
}

/// The clients: UDP, TCP and TLS, IPv4, IPv6 and IPv4-mapped, two ports of one IP (a
/// control and a data connection, or a moved client), static and REST users, and one
/// with a wrong password.
pub fn cast() -> Vec<Cast> {
    use ClientTransport::{Tcp, Tls, Udp};
    [
        ("203.0.113.10:40000", Udp, 0),
        ("203.0.113.10:40001", Udp, 0),
        ("[2001:db8:5::10]:40000", Udp, 1),
        ("203.0.113.11:50000", Tcp, 0),
        ("203.0.113.11:50001", Tcp, 0),
        ("[2001:db8:5::11]:50000", Tls, 1),
        ("[2001:db8:5::11]:50001", Tls, 1),
        ("203.0.113.12:40000", Udp, 2),
        ("203.0.113.12:50000", Tcp, 2),
        ("203.0.113.13:40000", Udp, 3),
        ("[::ffff:203.0.113.10]:40002", Udp, 0),
        ("203.0.113.11:50002", Tcp, 1),
    ]
    .into_iter()
    .map(|(c, t, who)| Cast {
        ft: tuple(c, t),
        who,
    })
    .collect()
}

/// The configuration the fuzzer picks (at start and at each reconfigure).
#[derive(Debug, Clone, Arbitrary)]
pub struct ConfigChoice {
    /// Indices into [`cidrs`] for `allow`.
    pub allow: Vec<u8>,
    /// Indices into [`cidrs`] for `deny`.
    pub deny: Vec<u8>,
    /// `dangerous_allow_loopback_peers`.
    pub loopback: bool,
    /// The server's own addresses are known to the policy.
    pub own: bool,
    /// Quotas, each small so limits are hit (0 = unlimited).
    pub per_user: u8,
    /// Total allocations.
    pub total: u8,
    /// Permissions per allocation.
    pub permissions: u8,
    /// Channels per allocation.
    pub channels: u8,
    /// Bandwidth cap, in units of 64 bytes per second (0 = none).
    pub bandwidth: u8,
    /// RFC 6062 connections per allocation.
    pub tcp_connections: u8,
    /// Longest lifetime, in minutes (1 to 16: both sides of the 10-minute default,
    /// while keeping the once-a-second sweeps of a run's end cheap).
    pub max_lifetime_min: u8,
    /// Nonce lifetime, in seconds (at least 1).
    pub nonce_secs: u16,
    /// `strict_expiry`.
    pub strict_expiry: bool,
    /// `strict_channel_numbers`.
    pub strict_channels: bool,
    /// `mobility`.
    pub mobility: bool,
    /// `tcp_relay`.
    pub tcp_relay: bool,
    /// `icmp_per_second`.
    pub icmp_per_second: u8,
    /// The second realm instead of the first.
    pub other_realm: bool,
    /// Alternates configured, and `redirect`.
    pub alternates: Option<bool>,
}

impl ConfigChoice {
    /// The configuration.
    pub fn build(&self) -> TurnConfig {
        let cidrs = cidrs();
        let pick = |is: &[u8]| -> Vec<Cidr> {
            is.iter()
                .take(4)
                .map(|&i| cidrs[usize::from(i) % cidrs.len()])
                .collect()
        };
        let mut c = TurnConfig::default();
        c.turn.realm = REALMS[usize::from(self.other_realm)].into();
        c.turn.users = USERS
            .iter()
            .map(|(name, password)| StaticUser::with_password(*name, *password))
            .collect();
        c.turn.secrets = vec![SECRET.into()];
        c.turn.max_lifetime = Duration::from_secs(60 * u64::from(self.max_lifetime_min % 16 + 1));
        c.turn.nonce_lifetime = Duration::from_secs(u64::from(self.nonce_secs.max(1)));
        c.turn.strict_expiry = self.strict_expiry;
        c.turn.strict_channel_numbers = self.strict_channels;
        c.turn.mobility = self.mobility;
        c.turn.tcp_relay = self.tcp_relay;
        c.turn.icmp_per_second = u32::from(self.icmp_per_second % 4);
        c.peers.allow = pick(&self.allow);
        c.peers.deny = pick(&self.deny);
        c.peers.dangerous_allow_loopback = self.loopback;
        if self.own {
            c.peers.own = OwnAddresses {
                listeners: vec![server_v4(), server_v6()],
                relay_ips: vec![RELAY_V4, RELAY_V6],
                relay_ports: (RELAY_PORT_MIN, RELAY_PORT_MAX),
            };
        }
        c.quotas = Quotas {
            allocations_per_user: u32::from(self.per_user % 5),
            allocations_total: u32::from(self.total % 7),
            permissions_per_allocation: u32::from(self.permissions % 5),
            channels_per_allocation: u32::from(self.channels % 5),
            bandwidth_bytes_per_sec: 64 * u64::from(self.bandwidth % 8),
            tcp_connections_per_allocation: u32::from(self.tcp_connections % 4),
            // Per-user and per-source budgets stay off: they drop data by design, which the
            // relaying invariants would have to model (covered by user_budget.rs and
            // amplification.rs instead).
            ..Quotas::default()
        };
        if let Some(redirect) = self.alternates {
            c.alternates = Alternates {
                udp: vec![sa("192.0.2.200:3478"), sa("[2001:db8::200]:3478")],
                tcp: vec![sa("192.0.2.200:3478")],
                tls: vec![sa("[2001:db8::200]:5349")],
                domain: Some("alt.fuzz.test".into()),
                redirect,
            };
        }
        c
    }
}

/// Whether `ip` is IPv4 or IPv4-mapped (the family a peer counts as).
pub fn is_v4ish(ip: IpAddr) -> bool {
    turnpike_proto::policy::normalise(ip).is_ipv4()
}
