//! The server's own addresses as peers: relaying to them would loop TURN into itself
//! (a Send to its own listener is a request from the server to the server) or reach the
//! other services of its host from the host's own address.
//!
//! Denied: every listening address (IP and port), and the relay IPs (local and
//! advertised) at any port outside the relay range. Inside the range a peer is another
//! allocation's relayed address: two clients of one server relaying to each other (both
//! behind NATs that need TURN) is the common case of a call, and stays allowed.

use core::net::{IpAddr, SocketAddr};

/// What the runtime listens on and relays from, for the peer check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnAddresses {
    /// Listening addresses (STUN/TURN over UDP, TCP, TLS, RFC 5780's alternates), with
    /// wildcard ones given for each address of the machine the runtime knows.
    pub listeners: Vec<SocketAddr>,
    /// Relay IPs, local and advertised.
    pub relay_ips: Vec<IpAddr>,
    /// The relay port range.
    pub relay_ports: (u16, u16),
}

impl OwnAddresses {
    /// Whether `peer` (normalised: IPv4 as IPv4) is one of ours to refuse. With
    /// `loopback_allowed` (`dangerous_allow_loopback_peers`, tests on one host) a loopback
    /// relay IP's other ports are left to that switch; the listeners stay refused.
    pub(crate) fn contains(&self, peer: SocketAddr, loopback_allowed: bool) -> bool {
        let ip = peer.ip();
        if self
            .listeners
            .iter()
            .any(|l| l.port() == peer.port() && super::normalise(l.ip()) == ip)
        {
            return true;
        }
        if loopback_allowed && ip.is_loopback() {
            return false;
        }
        let (min, max) = self.relay_ports;
        self.relay_ips.iter().any(|r| super::normalise(*r) == ip)
            && !(min..=max).contains(&peer.port())
    }
}
