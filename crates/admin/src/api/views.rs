//! The JSON shapes the API answers with (the schemas of `openapi.yaml`).

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;
use turnpike_proto::Usage;
use turnpike_server::{DrainStatus, ReloadReport, Revocation, Session};

/// Datagrams and payload bytes one way.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct UsageView {
    /// Datagrams.
    pub packets: u64,
    /// Payload bytes.
    pub bytes: u64,
}

impl From<Usage> for UsageView {
    fn from(u: Usage) -> Self {
        Self {
            packets: u.packets,
            bytes: u.bytes,
        }
    }
}

/// A channel binding.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ChannelView {
    /// The channel number (0x4000..=0x4FFF).
    pub number: u16,
    /// The peer it is bound to.
    pub peer: SocketAddr,
}

/// An allocation.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    /// Its number, as a decimal string (it may not fit a JSON number exactly).
    pub id: String,
    /// The USERNAME that made it.
    pub username: String,
    /// The client's address as the server sees it.
    pub client: SocketAddr,
    /// The server address the client talks to.
    pub server: SocketAddr,
    /// `udp`, `tcp` or `tls`.
    pub transport: &'static str,
    /// The relayed addresses.
    pub relayed: Vec<SocketAddr>,
    /// RFC 6062 TCP relay.
    pub tcp_relay: bool,
    /// Peer IPs with a permission.
    pub permissions: Vec<IpAddr>,
    /// Channels bound.
    pub channels: Vec<ChannelView>,
    /// Relayed client → peers.
    pub to_peer: UsageView,
    /// Relayed peers → client.
    pub to_client: UsageView,
    /// Seconds since it was made.
    pub age_secs: u64,
    /// Seconds until it expires without a Refresh.
    pub expires_in_secs: u64,
}

impl From<Session> for SessionView {
    fn from(s: Session) -> Self {
        Self {
            id: s.id.to_string(),
            username: s.username.into(),
            client: s.five_tuple.client,
            server: s.five_tuple.server,
            transport: s.five_tuple.transport.as_str(),
            relayed: s.relayed,
            tcp_relay: s.tcp_relay,
            permissions: s.permissions,
            channels: s
                .channels
                .into_iter()
                .map(|(number, peer)| ChannelView { number, peer })
                .collect(),
            to_peer: s.to_peer.into(),
            to_client: s.to_client.into(),
            age_secs: s.age.as_secs(),
            expires_in_secs: s.expires_in.as_secs(),
        }
    }
}

/// A revocation.
#[derive(Debug, Clone, Serialize)]
pub struct RevocationView {
    /// The user or username revoked.
    pub name: String,
    /// Unix time it lapses; `null`: until lifted.
    pub until: Option<u64>,
}

impl From<Revocation> for RevocationView {
    fn from(r: Revocation) -> Self {
        Self {
            name: r.name,
            until: r.until,
        }
    }
}

/// How far a drain is.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DrainView {
    /// A drain is under way.
    pub draining: bool,
    /// Allocations left.
    pub allocations: usize,
    /// Seconds since the drain started (`null` when not draining).
    pub since_secs: Option<u64>,
    /// Seconds until its deadline (`null` when not draining).
    pub deadline_in_secs: Option<u64>,
}

impl From<DrainStatus> for DrainView {
    fn from(d: DrainStatus) -> Self {
        Self {
            draining: d.draining,
            allocations: d.allocations,
            since_secs: d.since.map(|t| t.as_secs()),
            deadline_in_secs: d.deadline_in.map(|t| t.as_secs()),
        }
    }
}

/// What a reload changed.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadView {
    /// Sections applied while running.
    pub applied: Vec<&'static str>,
    /// Sections that changed but need a restart.
    pub needs_restart: Vec<&'static str>,
}

impl From<ReloadReport> for ReloadView {
    fn from(r: ReloadReport) -> Self {
        Self {
            applied: r.applied,
            needs_restart: r.needs_restart,
        }
    }
}

/// Counters since start, summed over the workers.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Totals {
    /// Allocations created.
    pub allocations_created: u64,
    /// Allocations ended.
    pub allocations_ended: u64,
    /// Datagrams relayed client → peer.
    pub to_peer_packets: u64,
    /// Datagrams relayed peer → client.
    pub to_client_packets: u64,
    /// Credentials refused.
    pub auth_failures: u64,
    /// Allocates answered 300 Try Alternate.
    pub redirected: u64,
    /// Permissions installed now.
    pub permissions: u64,
    /// Channels bound now.
    pub channels: u64,
    /// TCP/TLS client connections open now.
    pub open_connections: u64,
    /// Users and usernames revoked now.
    pub revocations: u64,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// The server's version.
    pub version: &'static str,
    /// Seconds since the admin API started.
    pub uptime_secs: u64,
    /// Workers that answered.
    pub workers: usize,
    /// Live allocations.
    pub allocations: usize,
    /// New Allocates are redirected to the alternates.
    pub redirecting: bool,
    /// A drain is under way (details in `drain`).
    pub draining: bool,
    /// The drain.
    pub drain: DrainView,
    /// Counters.
    pub totals: Totals,
}
