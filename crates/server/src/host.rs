//! The [`Host`] of one worker (`WorkerHost`): its relay sockets (each with an optional socket connected
//! to the peer it mostly sends to), RFC 6062 relay listeners, reserved ports parked for
//! any worker, and the shared quota ledger.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::SockRef;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tracing::{debug, warn};
use turnpike_proto::quota::{QuotaExceeded, QuotaLedger, Quotas};
use turnpike_proto::server::offload::ChannelRoute;
use turnpike_proto::stun::attr::ConnectionId;
use turnpike_proto::{BoundRelay, Family, HashMap, Host, PortRequest, RelayError, RelayId};
use turnpike_udp::{Poller, icmp};

use crate::peer_conns::{PeerConn, PeerConns, shard_of};
use crate::relay::{
    BoundUdp, ParkedRelays, PeerSocketBudget, PortsInUse, RelayConfig, bind_in_range,
    bind_tcp_in_range, connect_beside,
};

/// A UDP relay socket (non-blocking, in the worker's [`Poller`]).
pub(crate) struct RelaySocket {
    pub(crate) socket: std::net::UdpSocket,
    /// Its local address (its port is released in [`PortsInUse`] when it closes).
    pub(crate) local: SocketAddr,
    /// Whether DF is currently set on the socket.
    pub(crate) dont_fragment: bool,
    /// A second socket on `local`, connected to the peer the allocation mostly sends to.
    pub(crate) peer_socket: PeerSocket,
}

/// The relay's socket connected to one peer ([`connect_beside`]): sends to that peer
/// skip the per-datagram route lookup, and the peer's datagrams arrive on it. It is made
/// on the allocation's first datagram to a peer and follows the peer the allocation sends
/// to: after [`PEER_SWITCH`] datagrams in a row to one other peer (ICE moved to another
/// candidate pair, say) it is connected to that one instead. Other peers use the relay
/// socket, as before.
pub(crate) enum PeerSocket {
    /// Nothing sent to a peer yet.
    NotYet,
    /// Open (boxed: an allocation that never sends keeps only the tag and a pointer).
    Open(Box<ConnectedPeer>),
    /// Could not be made (out of descriptors, say): every send uses the relay socket.
    Unavailable,
}

/// An open [`PeerSocket`].
pub(crate) struct ConnectedPeer {
    pub(crate) socket: std::net::UdpSocket,
    /// The peer it is connected to.
    pub(crate) peer: SocketAddr,
    /// Whether DF is currently set on the socket.
    pub(crate) dont_fragment: bool,
    /// The other peer sent to last, and how many datagrams in a row went to it.
    pub(crate) other: Option<(SocketAddr, u16)>,
}

/// Datagrams in a row to one other peer after which the peer socket is reconnected to it.
const PEER_SWITCH: u16 = 256;

/// A task the host asked for during a core call, started right after it
/// (`tcp_relay::start`).
pub(crate) enum Start {
    /// Accept peers on a new RFC 6062 relay listener.
    Accept {
        /// The relay.
        relay: RelayId,
        /// Its listener.
        listener: tokio::net::TcpListener,
    },
    /// Connect the relayed address `local` to `peer` for connection `id` (RFC 6062 §5.2).
    Connect {
        /// The connection.
        id: ConnectionId,
        /// The relayed address (local form).
        local: SocketAddr,
        /// The peer (local form when it is one of our own relays).
        peer: SocketAddr,
    },
}

/// Poller tokens: the relay id, with this bit for its peer socket.
pub(crate) const PEER_SOCKET_TOKEN: u64 = 1 << 32;

/// The [`Host`] of one worker.
pub(crate) struct WorkerHost {
    pub(crate) relay: Arc<RelayConfig>,
    pub(crate) relays: HashMap<RelayId, RelaySocket>,
    /// The readiness set of `relays`.
    pub(crate) poller: Rc<AsyncFd<Poller>>,
    /// RFC 6062 relay listeners: their accept task (once started) and local address.
    pub(crate) tcp_relays: HashMap<RelayId, (Option<AbortHandle>, SocketAddr)>,
    /// RFC 6062 peer data connections.
    pub(crate) peer_conns: PeerConns,
    /// This worker's index (the shard in its connection ids).
    pub(crate) shard: u8,
    /// Tasks to start once the core call that asked for them returns (the host runs
    /// inside that call and cannot reach the worker's shared state).
    pub(crate) starts: mpsc::UnboundedSender<Start>,
    pub(crate) next_id: u32,
    pub(crate) ledger: Arc<Mutex<QuotaLedger>>,
    /// Relay ports held by every worker of the process.
    pub(crate) ports: Arc<PortsInUse>,
    /// Connected peer sockets the process may still open.
    pub(crate) peer_sockets: Arc<PeerSocketBudget>,
    /// Reserved relay sockets, parked where every worker can claim them.
    pub(crate) parked: Arc<ParkedRelays>,
    /// Reserved sockets just bound, not yet parked (nor polled): the core parks each
    /// right after the bind that made it ([`Host::hold_reservation`]).
    pub(crate) unparked: HashMap<RelayId, BoundUdp>,
    pub(crate) rng: u64,
    /// While a receive batch is being handled: relay sockets released during it, closed
    /// only once the batch's sends have left ([`WorkerHost::end_batch`]). A send queued
    /// earlier in the batch names its socket by descriptor; closing at once would let an
    /// Allocate later in the same batch get that descriptor number, and the queued
    /// payload would leave from another allocation's relayed address.
    pub(crate) released: Vec<RelaySocket>,
    /// Whether a receive batch is being handled (see `released`).
    pub(crate) in_batch: bool,
    /// Relay binds that failed: when the last warning was logged, and how many failed
    /// since (see [`WorkerHost::relay_bind_failed`]).
    pub(crate) bind_failures: (Option<Instant>, u64),
    /// The in-kernel fast path, when `[offload]` loaded.
    pub(crate) kernel: Option<crate::kernel::WorkerKernel>,
}

/// At most one warning per worker per this long about relay binds that fail.
const BIND_WARNING_INTERVAL: Duration = Duration::from_secs(10);

impl RelaySocket {
    /// Makes or moves the peer socket for a datagram to `peer` (see [`PeerSocket`]).
    #[inline]
    pub(crate) fn route_peer_socket(
        &mut self,
        relay: RelayId,
        peer: SocketAddr,
        poller: &Poller,
        budget: &PeerSocketBudget,
    ) {
        match &mut self.peer_socket {
            PeerSocket::NotYet if !budget.take() => self.peer_socket = PeerSocket::Unavailable,
            PeerSocket::NotYet => {
                self.peer_socket = match self.open_peer_socket(relay, peer, poller) {
                    Ok(socket) => PeerSocket::Open(Box::new(ConnectedPeer {
                        socket,
                        peer,
                        dont_fragment: false,
                        other: None,
                    })),
                    Err(e) => {
                        debug!(error = %e, "no connected relay socket; sending unconnected");
                        budget.give_back();
                        PeerSocket::Unavailable
                    }
                };
            }
            PeerSocket::Open(p) => {
                if p.peer == peer {
                    p.other = None;
                    return;
                }
                let run = match p.other {
                    Some((to, n)) if to == peer => n.saturating_add(1),
                    _ => 1,
                };
                p.other = Some((peer, run));
                // Reconnecting keeps what is queued on the socket (read as usual, with
                // its real source); from now on the old peer's datagrams arrive on the
                // relay socket.
                if run >= PEER_SWITCH && SockRef::from(&p.socket).connect(&peer.into()).is_ok() {
                    p.peer = peer;
                    p.other = None;
                }
            }
            PeerSocket::Unavailable => {}
        }
    }

    pub(crate) fn open_peer_socket(
        &self,
        relay: RelayId,
        peer: SocketAddr,
        poller: &Poller,
    ) -> std::io::Result<std::net::UdpSocket> {
        let socket = connect_beside(&self.socket, self.local, peer)?;
        // ICMP errors for what it sends come back on its own error queue.
        if let Err(e) = icmp::enable_recverr(&socket, self.local.is_ipv6()) {
            debug!(error = %e, "IP_RECVERR unavailable; ICMP will not be relayed");
        }
        poller.add(&socket, u64::from(relay.0) | PEER_SOCKET_TOKEN)?;
        Ok(socket)
    }
}

impl WorkerHost {
    /// Starts a receive batch: relay sockets released until [`Self::end_batch`] stay
    /// open (out of the relay table, so nothing new is queued on them).
    pub(crate) fn begin_batch(&mut self) {
        self.in_batch = true;
    }

    /// Ends a receive batch, after its sends: closes the relay sockets released during it.
    pub(crate) fn end_batch(&mut self) {
        self.in_batch = false;
        if !self.released.is_empty() {
            for r in std::mem::take(&mut self.released) {
                self.close(r);
            }
        }
    }

    /// Closes a released relay socket and frees its port.
    pub(crate) fn close(&self, r: RelaySocket) {
        // Closing a socket takes it out of the poller too (no other descriptor refers to
        // it): no EPOLL_CTL_DEL needed.
        if let PeerSocket::Open(_) = r.peer_socket {
            self.peer_sockets.give_back();
        }
        drop(r.peer_socket);
        drop(r.socket);
        self.ports.release(r.local.is_ipv6(), r.local.port());
    }

    /// Logs (warn, at most once per [`BIND_WARNING_INTERVAL`] per worker, with the count
    /// of failures since the last line) why an Allocate got 508: no relay socket could be
    /// bound on `ip`. Without it an operator whose relay IP left the machine sees every
    /// Allocate fail and nothing in the log.
    fn relay_bind_failed(&mut self, transport: &str, ip: std::net::IpAddr, error: &std::io::Error) {
        let now = Instant::now();
        let (last, count) = &mut self.bind_failures;
        *count += 1;
        if last.is_some_and(|t| now.duration_since(t) < BIND_WARNING_INTERVAL) {
            return;
        }
        warn!(
            %transport,
            relay_ip = %ip,
            ports = %format_args!("{}-{}", self.relay.min_port, self.relay.max_port),
            failures = *count,
            error = %error,
            "Allocate refused (508): no relay socket could be bound"
        );
        *last = Some(now);
        *count = 0;
    }

    pub(crate) fn next_random(&mut self) -> u32 {
        // xorshift32: only spreads the starting port.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng as u32
    }

    pub(crate) fn register(&mut self, (socket, local): BoundUdp) -> Option<(RelayId, SocketAddr)> {
        // ICMP errors for what this relay sends come back on its error queue
        // (RFC 8656 §11.5); without the option they would be lost.
        if let Err(e) = icmp::enable_recverr(&socket, local.is_ipv6()) {
            debug!(error = %e, "IP_RECVERR unavailable; ICMP will not be relayed");
        }
        self.next_id = self.next_id.wrapping_add(1);
        let id = RelayId(self.next_id);
        self.poller.get_ref().add(&socket, u64::from(id.0)).ok()?;
        self.relays.insert(
            id,
            RelaySocket {
                socket,
                local,
                dont_fragment: false,
                peer_socket: PeerSocket::NotYet,
            },
        );
        Some((id, self.relay.advertised(local)))
    }
}

impl Host for WorkerHost {
    fn bind_relay(&mut self, family: Family, port: PortRequest) -> Result<BoundRelay, RelayError> {
        let ip = self
            .relay
            .ip(family == Family::V6)
            .ok_or(RelayError::FamilyUnavailable)?;
        let (even, reserve_next) = match port {
            PortRequest::Any => (false, false),
            PortRequest::Even { reserve_next } => (true, reserve_next),
        };
        let start = self.next_random();
        let (socket, next) = bind_in_range(
            ip,
            self.relay.min_port,
            self.relay.max_port,
            start,
            even,
            reserve_next,
            &self.ports,
        )
        .map_err(|e| {
            self.relay_bind_failed("udp", ip, &e);
            RelayError::Exhausted
        })?;
        let (relay, addr) = self.register(socket).ok_or(RelayError::Exhausted)?;
        let reserved = next.map(|(socket, local)| {
            self.next_id = self.next_id.wrapping_add(1);
            let id = RelayId(self.next_id);
            self.unparked.insert(id, (socket, local));
            (id, self.relay.advertised(local))
        });
        Ok(BoundRelay {
            relay,
            addr,
            reserved,
        })
    }

    fn release_relay(&mut self, relay: RelayId) {
        if let Some((_, local)) = self.unparked.remove(&relay) {
            self.ports.release(local.is_ipv6(), local.port());
        }
        if let Some(r) = self.relays.remove(&relay) {
            if self.in_batch {
                self.released.push(r);
            } else {
                self.close(r);
            }
        }
        if let Some((Some(task), _)) = self.tcp_relays.remove(&relay) {
            task.abort();
        }
    }

    fn supports_tcp_relay(&self) -> bool {
        true
    }

    fn bind_tcp_relay(&mut self, family: Family) -> Result<BoundRelay, RelayError> {
        let ip = self
            .relay
            .ip(family == Family::V6)
            .ok_or(RelayError::FamilyUnavailable)?;
        let start = self.next_random();
        let listener = bind_tcp_in_range(ip, self.relay.min_port, self.relay.max_port, start)
            .map_err(|e| {
                self.relay_bind_failed("tcp", ip, &e);
                RelayError::Exhausted
            })?;
        let local = listener.local_addr().map_err(|_| RelayError::Exhausted)?;
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|_| RelayError::Exhausted)?;
        self.next_id = self.next_id.wrapping_add(1);
        let id = RelayId(self.next_id);
        self.starts
            .send(Start::Accept {
                relay: id,
                listener,
            })
            .map_err(|_| RelayError::Exhausted)?;
        self.tcp_relays.insert(id, (None, local));
        Ok(BoundRelay {
            relay: id,
            addr: self.relay.advertised(local),
            reserved: None,
        })
    }

    fn connect_peer(
        &mut self,
        relay: RelayId,
        peer: SocketAddr,
    ) -> Result<ConnectionId, RelayError> {
        let &(_, local) = self.tcp_relays.get(&relay).ok_or(RelayError::Exhausted)?;
        let id = self.peer_conns.new_id(self.shard);
        // The core answers the Connect for `peer`; the socket dials its local form.
        let peer = self.relay.to_local(peer);
        self.starts
            .send(Start::Connect { id, local, peer })
            .map_err(|_| RelayError::Exhausted)?;
        self.peer_conns.conns.insert(id, PeerConn::Starting);
        Ok(id)
    }

    fn shard_of(&self, connection: ConnectionId) -> Option<u8> {
        Some(shard_of(connection))
    }

    fn close_peer_connection(&mut self, connection: ConnectionId) {
        self.peer_conns.close(connection);
    }

    fn offloads(&self) -> bool {
        self.kernel.is_some()
    }

    fn offload_allocation(&mut self, allocation: u64, bytes_per_sec: u64) {
        if let Some(k) = &mut self.kernel {
            k.allocation(allocation, bytes_per_sec);
        }
    }

    fn offload_route(&mut self, route: &ChannelRoute) {
        let Some(relay) = self.relays.get(&route.relay).map(|r| r.local) else {
            return;
        };
        // A peer at one of our own addresses (two clients of this server) is relayed in
        // user space, which delivers it without leaving the machine (the cloud may not
        // hairpin).
        let own = self.relay.ips.contains(&route.peer.ip())
            || self
                .relay
                .external
                .iter()
                .any(|m| m.public == route.peer.ip());
        if let (Some(k), false) = (&mut self.kernel, own) {
            k.install(route, relay);
        }
    }

    fn withdraw_route(&mut self, route: &ChannelRoute) {
        if let Some(k) = &mut self.kernel {
            k.withdraw(route);
        }
    }

    fn end_offload(
        &mut self,
        allocation: u64,
    ) -> Option<(turnpike_proto::Usage, turnpike_proto::Usage)> {
        self.kernel.as_mut()?.end(allocation)
    }

    fn supports(&self, family: Family) -> bool {
        self.relay.ip(family == Family::V6).is_some()
    }

    fn hold_reservation(&mut self, token: [u8; 8], relay: RelayId, _: SocketAddr, until: Instant) {
        if let Some(socket) = self.unparked.remove(&relay) {
            self.parked.park(token, socket, until);
        }
    }

    fn claim_reservation(&mut self, token: [u8; 8], now: Instant) -> Option<(RelayId, SocketAddr)> {
        match self.parked.claim(token, now)? {
            Ok(socket) => {
                let local = socket.1;
                let claimed = self.register(socket);
                if claimed.is_none() {
                    self.ports.release(local.is_ipv6(), local.port());
                }
                claimed
            }
            Err((socket, local)) => {
                drop(socket);
                self.ports.release(local.is_ipv6(), local.port());
                None
            }
        }
    }

    fn expire_reservations(&mut self, now: Instant) {
        for (socket, local) in self.parked.expire(now) {
            drop(socket);
            self.ports.release(local.is_ipv6(), local.port());
        }
    }

    fn acquire_allocation(&mut self, quotas: &Quotas, user: &str) -> Result<(), QuotaExceeded> {
        self.ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .acquire(quotas, user)
    }

    fn release_allocation(&mut self, user: &str) {
        self.ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(user);
    }

    fn user_budget(
        &mut self,
        user: &str,
        now: Instant,
        period: Duration,
    ) -> Option<Arc<turnpike_proto::budget::UserBudget>> {
        // With the fast path on, the budget's counters live where the program charges
        // them too, so its channels can be relayed in the kernel.
        let kernel = self.kernel.as_ref().map(|k| Arc::clone(k.path()));
        let make = || {
            kernel
                .and_then(|k| k.new_budget(now))
                .unwrap_or_else(|| turnpike_proto::budget::UserBudget::new(now))
        };
        Some(
            self.ledger
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .budget_with(user, now, period, make),
        )
    }
}
