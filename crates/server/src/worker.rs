//! A UDP worker: one thread, one current-thread runtime, one [`TurnServer`], its own
//! `SO_REUSEPORT` listener sockets and the relay sockets of the allocations it made.
//!
//! Shared-nothing: the kernel's reuseport hash keeps a client's 5-tuple on one worker, and
//! an allocation's relay socket is owned by the worker that received its Allocate. The only
//! state shared between workers is the quota ledger, touched on Allocate and deletion.
//!
//! Data path (performance.md §2): listener sockets are read with `recvmmsg` batches;
//! the relay sockets of all allocations sit in one level-triggered epoll set
//! ([`Poller`]), itself one tokio registration, so one `epoll_wait` names every relay
//! socket with data and each is read once per round with `recvmmsg`. Whatever a batch
//! produces leaves with one `sendmmsg` per sending socket. Sends never block: a full
//! socket buffer drops the datagram, as the network would, instead of stalling every other
//! client of the worker.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use socket2::SockRef;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};
use turnpike_proto::quota::{QuotaExceeded, QuotaLedger, Quotas};
use turnpike_proto::server::{PEER_HEADROOM, PEER_TAILROOM};
use turnpike_proto::stun::attr::{ConnectionId, Icmp};
use turnpike_proto::{
    BoundRelay, ClientAction, ClientTransport, Family, FiveTuple, HashMap, Host, PeerAction,
    PortRequest, RelayError, RelayId, TurnServer,
};
use turnpike_udp::{
    BATCH, Destination, MAX_EVENTS, Poller, Ready, RecvBatch, SendBatch, icmp, send_one, sockopt,
};

use crate::handoff::{Moved, ToWorker, Workers};
use crate::relay::{
    BoundUdp, ParkedRelays, PeerSocketBudget, PortsInUse, RelayConfig, bind_in_range,
    bind_tcp_in_range, connect_beside,
};
use crate::stream;
use crate::tcp::TcpLimits;
use crate::tcp_relay::{self, PeerConn, PeerConns};

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// A UDP relay socket (non-blocking, in the worker's [`Poller`]).
struct RelaySocket {
    socket: std::net::UdpSocket,
    /// Its local address (its port is released in [`PortsInUse`] when it closes).
    local: SocketAddr,
    /// Whether DF is currently set on the socket.
    dont_fragment: bool,
    /// A second socket on `local`, connected to the peer the allocation mostly sends to.
    peer_socket: PeerSocket,
}

/// The relay's socket connected to one peer ([`connect_beside`]): sends to that peer
/// skip the per-datagram route lookup, and the peer's datagrams arrive on it. It is made
/// on the allocation's first datagram to a peer and follows the peer the allocation sends
/// to: after [`PEER_SWITCH`] datagrams in a row to one other peer (ICE moved to another
/// candidate pair, say) it is connected to that one instead. Other peers use the relay
/// socket, as before.
enum PeerSocket {
    /// Nothing sent to a peer yet.
    NotYet,
    /// Open (boxed: an allocation that never sends keeps only the tag and a pointer).
    Open(Box<ConnectedPeer>),
    /// Could not be made (out of descriptors, say): every send uses the relay socket.
    Unavailable,
}

/// An open [`PeerSocket`].
struct ConnectedPeer {
    socket: std::net::UdpSocket,
    /// The peer it is connected to.
    peer: SocketAddr,
    /// Whether DF is currently set on the socket.
    dont_fragment: bool,
    /// The other peer sent to last, and how many datagrams in a row went to it.
    other: Option<(SocketAddr, u16)>,
}

/// Datagrams in a row to one other peer after which the peer socket is reconnected to it.
const PEER_SWITCH: u16 = 256;

/// Poller tokens: the relay id, with this bit for its peer socket.
const PEER_SOCKET_TOKEN: u64 = 1 << 32;

/// The [`Host`] of one worker.
pub(crate) struct WorkerHost {
    relay: Arc<RelayConfig>,
    relays: HashMap<RelayId, RelaySocket>,
    /// The readiness set of `relays`.
    poller: Rc<AsyncFd<Poller>>,
    /// RFC 6062 relay listeners: their accept task and local address.
    tcp_relays: HashMap<RelayId, (JoinHandle<()>, SocketAddr)>,
    next_id: u32,
    ledger: Arc<Mutex<QuotaLedger>>,
    /// Relay ports held by every worker of the process.
    ports: Arc<PortsInUse>,
    /// Connected peer sockets the process may still open.
    peer_sockets: Arc<PeerSocketBudget>,
    /// Reserved relay sockets, parked where every worker can claim them.
    parked: Arc<ParkedRelays>,
    /// Reserved sockets just bound, not yet parked (nor polled): the core parks each
    /// right after the bind that made it ([`Host::hold_reservation`]).
    unparked: HashMap<RelayId, BoundUdp>,
    shared: Weak<Shared>,
    rng: u64,
    /// While a receive batch is being handled: relay sockets released during it, closed
    /// only once the batch's sends have left ([`WorkerHost::end_batch`]). A send queued
    /// earlier in the batch names its socket by descriptor; closing at once would let an
    /// Allocate later in the same batch get that descriptor number, and the queued
    /// payload would leave from another allocation's relayed address.
    released: Option<Vec<RelaySocket>>,
}

/// What every task of a worker shares.
pub(crate) struct Shared {
    /// The worker's index (its core's shard).
    pub(crate) index: usize,
    /// Every worker's queue, by index, for handing over what another worker serves.
    pub(crate) workers: Workers,
    /// UDP clients this worker receives but another serves.
    pub(crate) moved: RefCell<Moved>,
    pub(crate) core: RefCell<TurnServer>,
    host: RefCell<WorkerHost>,
    listeners: HashMap<SocketAddr, Rc<UdpSocket>>,
    /// Write queues of this worker's TCP/TLS clients.
    pub(crate) streams: RefCell<HashMap<FiveTuple, mpsc::Sender<Bytes>>>,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) stream_limits: TcpLimits,
    /// RFC 6062 peer data connections.
    pub(crate) peer_conns: RefCell<PeerConns>,
}

impl Shared {
    /// This worker's core's shard.
    pub(crate) fn shard(&self) -> u8 {
        self.index as u8
    }

    /// Hands a client datagram to worker `shard`, and its later datagrams too.
    fn forward_datagram(&self, shard: u8, from: FiveTuple, datagram: &[u8], now: Instant) {
        let worker = usize::from(shard);
        if let Some(queue) = self.workers.get(worker) {
            self.moved.borrow_mut().insert(from, worker, now);
            let _ = queue.send(ToWorker::Datagram {
                from,
                datagram: Bytes::copy_from_slice(datagram),
            });
        }
    }

    /// Serves a datagram another worker handed over: as if it had arrived here, its
    /// answer leaving from this worker's socket on the same local address.
    pub(crate) fn handle_forwarded(&self, from: FiveTuple, datagram: &[u8]) {
        let mut out = vec![0u8; MAX_DATAGRAM + 1024];
        let now = Instant::now();
        let action =
            self.with_core(|core, host| core.handle_client(now, from, datagram, &mut out, host));
        match action {
            ClientAction::Reply(n) | ClientAction::BindData { reply: n, .. } => {
                self.send_to_client(from, &out[..n]);
            }
            ClientAction::ReplyFrom { len, from: src, to } => {
                if let Some(listener) = self.listeners.get(&src) {
                    let _ = listener.try_send_to(&out[..len], to);
                }
            }
            ClientAction::ToPeer {
                relay,
                peer,
                payload,
                dont_fragment,
            } => self.send_to_peer(relay, peer, &datagram[payload], dont_fragment),
            // A third worker's: pass it on (the core never names its own).
            ClientAction::Forward { shard } => self.forward_datagram(shard, from, datagram, now),
            ClientAction::None => {}
        }
    }

    /// Borrows the core and the host together for one call into the core.
    pub(crate) fn with_core<T>(&self, f: impl FnOnce(&mut TurnServer, &mut WorkerHost) -> T) -> T {
        let mut core = self.core.borrow_mut();
        let mut host = self.host.borrow_mut();
        f(&mut core, &mut host)
    }

    /// The socket a relay sends to `peer` from (its [`PeerSocket`] when connected to
    /// `peer`, else the relay socket), after setting its DF option as asked.
    fn relay_fd(
        &self,
        relay: RelayId,
        peer: SocketAddr,
        dont_fragment: bool,
    ) -> Option<(RawFd, Destination)> {
        let mut host = self.host.borrow_mut();
        let host = &mut *host;
        // A peer at our own advertised address: to the local one (no NAT hairpin).
        let peer = host.relay.to_local(peer);
        let r = host.relays.get_mut(&relay)?;
        r.route_peer_socket(relay, peer, host.poller.get_ref(), &host.peer_sockets);
        let (socket, df, connected) = match &mut r.peer_socket {
            PeerSocket::Open(p) if p.peer == peer => (&p.socket, &mut p.dont_fragment, true),
            _ => (&r.socket, &mut r.dont_fragment, false),
        };
        // DONT-FRAGMENT (RFC 8656 §18.9): the socket option follows the request; it
        // changes only when a client switches it.
        if *df != dont_fragment
            && sockopt::set_dont_fragment(socket, peer.is_ipv6(), dont_fragment).is_ok()
        {
            *df = dont_fragment;
        }
        Some((
            socket.as_raw_fd(),
            Destination {
                addr: peer,
                connected,
            },
        ))
    }

    /// The descriptor of the socket a poller token names.
    fn polled_fd(&self, token: u64) -> Option<(RelayId, RawFd)> {
        let relay = RelayId(token as u32);
        let host = self.host.borrow();
        let r = host.relays.get(&relay)?;
        let fd = if token & PEER_SOCKET_TOKEN == 0 {
            r.socket.as_raw_fd()
        } else {
            let PeerSocket::Open(p) = &r.peer_socket else {
                return None;
            };
            p.socket.as_raw_fd()
        };
        Some((relay, fd))
    }

    /// Sends a payload from a relay socket to a peer now, setting DF as asked.
    pub(crate) fn send_to_peer(
        &self,
        relay: RelayId,
        peer: SocketAddr,
        payload: &[u8],
        dont_fragment: bool,
    ) {
        let Some((fd, to)) = self.relay_fd(relay, peer, dont_fragment) else {
            return;
        };
        let name = to.name();
        match send_one(fd, payload, name.as_ref()) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {
                // A queued ICMP error makes the next send fail (the socket's pending
                // error): relay what is queued, then try this datagram once more.
                self.drain_icmp(relay, fd);
                let _ = send_one(fd, payload, name.as_ref());
            }
        }
    }

    /// Reads every ICMP error queued on a relay socket and sends each to the client as a
    /// Data indication with an ICMP attribute (the core checks permission and rate).
    /// Clears the socket's pending error too, so a level-triggered poll does not report
    /// it again.
    fn drain_icmp(&self, relay: RelayId, fd: RawFd) {
        let mut buf = [0u8; 128];
        for _ in 0..64 {
            let Ok(Some(err)) = icmp::read_error(&fd) else {
                let _ = sockopt::take_error(fd);
                return;
            };
            let icmp = Icmp {
                icmp_type: err.icmp_type,
                code: err.icmp_code,
                error_data: err.info,
            };
            let peer = self.host.borrow().relay.to_advertised(err.peer);
            let action = self.core.borrow_mut().handle_peer_icmp(
                Instant::now(),
                relay,
                peer,
                icmp,
                &mut buf,
            );
            if let PeerAction::ToClient { to, range } = action {
                self.send_to_client(to, &buf[range]);
            }
        }
    }

    /// Sends a framed message to a client, over UDP or its stream.
    pub(crate) fn send_to_client(&self, to: FiveTuple, message: &[u8]) {
        if to.transport.is_stream() {
            if let Some(tx) = self.streams.borrow().get(&to) {
                let _ = tx.try_send(Bytes::copy_from_slice(message));
            }
        } else if let Some(listener) = self.listeners.get(&to.server) {
            let _ = listener.try_send_to(message, to.client);
        }
    }
}

impl RelaySocket {
    /// Makes or moves the peer socket for a datagram to `peer` (see [`PeerSocket`]).
    fn route_peer_socket(
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

    fn open_peer_socket(
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
        self.released.get_or_insert_with(Vec::new);
    }

    /// Ends a receive batch, after its sends: closes the relay sockets released during it.
    pub(crate) fn end_batch(&mut self) {
        for r in self.released.take().into_iter().flatten() {
            self.close(r);
        }
    }

    /// Closes a released relay socket and frees its port.
    fn close(&self, r: RelaySocket) {
        // Closing a socket takes it out of the poller too (no other descriptor refers to
        // it): no EPOLL_CTL_DEL needed.
        if let PeerSocket::Open(_) = r.peer_socket {
            self.peer_sockets.give_back();
        }
        drop(r.peer_socket);
        drop(r.socket);
        self.ports.release(r.local.is_ipv6(), r.local.port());
    }

    fn next_random(&mut self) -> u32 {
        // xorshift32: only spreads the starting port.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng as u32
    }

    fn register(&mut self, (socket, local): BoundUdp) -> Option<(RelayId, SocketAddr)> {
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
        .map_err(|_| RelayError::Exhausted)?;
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
            match &mut self.released {
                Some(deferred) => deferred.push(r),
                None => self.close(r),
            }
        }
        if let Some((task, _)) = self.tcp_relays.remove(&relay) {
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
            .map_err(|_| RelayError::Exhausted)?;
        let local = listener.local_addr().map_err(|_| RelayError::Exhausted)?;
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|_| RelayError::Exhausted)?;
        let shared = self.shared.upgrade().ok_or(RelayError::Exhausted)?;
        self.next_id = self.next_id.wrapping_add(1);
        let id = RelayId(self.next_id);
        let task = tokio::task::spawn_local(tcp_relay::accept_loop(
            shared,
            id,
            listener,
            Arc::clone(&self.relay),
        ));
        self.tcp_relays.insert(id, (task, local));
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
        let shared = self.shared.upgrade().ok_or(RelayError::Exhausted)?;
        let id = shared.peer_conns.borrow().new_id(shared.shard());
        // The core answers the Connect for `peer`; the socket dials its local form.
        let to = self.relay.to_local(peer);
        let task = tokio::task::spawn_local(tcp_relay::connect(Rc::clone(&shared), id, local, to));
        shared
            .peer_conns
            .borrow_mut()
            .conns
            .insert(id, PeerConn::Connecting(task.abort_handle()));
        Ok(id)
    }

    fn shard_of(&self, connection: ConnectionId) -> Option<u8> {
        Some(tcp_relay::shard_of(connection))
    }

    fn close_peer_connection(&mut self, connection: ConnectionId) {
        if let Some(shared) = self.shared.upgrade() {
            shared.peer_conns.borrow_mut().close(connection);
        }
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
}

/// Everything a worker thread needs to start.
pub(crate) struct WorkerSetup {
    pub(crate) index: usize,
    pub(crate) core: TurnServer,
    pub(crate) listeners: Vec<std::net::UdpSocket>,
    pub(crate) relay: Arc<RelayConfig>,
    pub(crate) ledger: Arc<Mutex<QuotaLedger>>,
    pub(crate) ports: Arc<PortsInUse>,
    pub(crate) peer_sockets: Arc<PeerSocketBudget>,
    pub(crate) parked: Arc<ParkedRelays>,
    pub(crate) incoming: mpsc::UnboundedReceiver<ToWorker>,
    pub(crate) workers: Workers,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) stream_limits: TcpLimits,
}

/// Runs a worker until `shutdown` flips to true. Call on its own thread.
pub(crate) fn run_worker(setup: WorkerSetup, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            warn!(error = %e, "worker runtime failed to start");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let index = setup.index;
        let Some((shared, poller, mut incoming)) = start(setup) else {
            return;
        };
        let acceptor = Rc::clone(&shared);
        tokio::task::spawn_local(async move {
            while let Some(message) = incoming.recv().await {
                match message {
                    ToWorker::Accepted(conn) => {
                        tokio::task::spawn_local(stream::serve(Rc::clone(&acceptor), conn));
                    }
                    ToWorker::Stream(handed) => {
                        tokio::task::spawn_local(stream::resume(Rc::clone(&acceptor), handed));
                    }
                    ToWorker::Datagram { from, datagram } => {
                        acceptor.handle_forwarded(from, &datagram);
                    }
                }
            }
        });
        for (&addr, socket) in &shared.listeners {
            tokio::task::spawn_local(listener_loop(Rc::clone(&shared), addr, Rc::clone(socket)));
        }
        tokio::task::spawn_local(relay_loop(Rc::clone(&shared), poller));
        tokio::task::spawn_local(timer_loop(Rc::clone(&shared)));
        let _ = shutdown.wait_for(|stop| *stop).await;
        let stats = shared.core.borrow().stats();
        info!(worker = index, ?stats, "worker stopping");
        // Dropping the relay sockets' tasks breaks the Rc cycle through `Shared`.
        let relays: Vec<RelayId> = shared.host.borrow().relays.keys().copied().collect();
        for id in relays {
            shared.host.borrow_mut().release_relay(id);
        }
    });
}

/// A started worker: its shared state, its relay poller and the queue of connections
/// handed to it.
type Started = (
    Rc<Shared>,
    Rc<AsyncFd<Poller>>,
    mpsc::UnboundedReceiver<ToWorker>,
);

/// Builds a worker's shared state from its setup: its listener sockets registered with
/// the current runtime and its relay poller. Returns the state, the poller and the queue
/// of connections handed to this worker; `None` when the poller cannot be made.
fn start(setup: WorkerSetup) -> Option<Started> {
    let mut listeners = HashMap::default();
    for socket in setup.listeners {
        let Ok(addr) = socket.local_addr() else {
            continue;
        };
        match UdpSocket::from_std(socket) {
            Ok(s) => {
                listeners.insert(addr, Rc::new(s));
            }
            Err(e) => warn!(error = %e, "cannot register UDP listener"),
        }
    }
    let seed = (setup.index as u64 + 1).wrapping_mul(0x9E37_79B9) ^ u64::from(std::process::id());
    let poller = match Poller::new().and_then(Poller::register) {
        Ok(p) => Rc::new(p),
        Err(e) => {
            warn!(error = %e, "worker cannot create its relay poller");
            return None;
        }
    };
    let shared = Rc::new_cyclic(|weak| Shared {
        index: setup.index,
        workers: setup.workers,
        moved: RefCell::new(Moved::default()),
        core: RefCell::new(setup.core),
        host: RefCell::new(WorkerHost {
            relay: setup.relay,
            relays: HashMap::default(),
            poller: Rc::clone(&poller),
            tcp_relays: HashMap::default(),
            next_id: 0,
            ledger: setup.ledger,
            ports: setup.ports,
            peer_sockets: setup.peer_sockets,
            parked: setup.parked,
            unparked: HashMap::default(),
            shared: weak.clone(),
            rng: seed | 1,
            released: None,
        }),
        listeners,
        streams: RefCell::new(HashMap::default()),
        tls: setup.tls,
        stream_limits: setup.stream_limits,
        peer_conns: RefCell::new(PeerConns::default()),
    });
    Some((shared, poller, setup.incoming))
}

/// Receives from clients on one listener socket, a `recvmmsg` batch per readiness event.
async fn listener_loop(shared: Rc<Shared>, local: SocketAddr, socket: Rc<UdpSocket>) {
    let mut batch = ClientBatch::new();
    let fd = socket.as_raw_fd();
    loop {
        if let Err(e) = socket.readable().await {
            debug!(error = %e, "udp receive error");
            continue;
        }
        // Drain the socket: batch after batch until it would block.
        loop {
            let n = match socket.try_io(Interest::READABLE, || batch.rx.recv(fd)) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    debug!(error = %e, "udp receive error");
                    break;
                }
            };
            batch.handle(&shared, local, fd, n);
            if n < BATCH {
                break;
            }
            // A full batch: let the worker's other tasks run before the next one.
            tokio::task::yield_now().await;
        }
    }
}

/// The buffers of one listener socket's receive batches, and what a batch sends.
struct ClientBatch {
    rx: RecvBatch,
    /// The core's answer to one datagram. Room for the largest: an RFC 5780 response
    /// echoes the request's PADDING.
    tx: Vec<u8>,
    to_peers: SendBatch,
    /// Answers of one batch, one after the other, sent with one sendmmsg at its end.
    replies: Vec<u8>,
    to_clients: SendBatch,
}

impl ClientBatch {
    fn new() -> Self {
        Self {
            rx: RecvBatch::new(MAX_DATAGRAM),
            tx: vec![0u8; MAX_DATAGRAM + 1024],
            to_peers: SendBatch::new(),
            replies: Vec::with_capacity(BATCH * 256),
            to_clients: SendBatch::new(),
        }
    }

    /// Hands the `n` datagrams received on listener `fd` (bound at `local`) to the core
    /// and sends what they produced: data to peers with one `sendmmsg` per relay socket,
    /// answers with one `sendmmsg`. Relay sockets released by a request of the batch
    /// close only after that (see [`WorkerHost::begin_batch`]).
    fn handle(&mut self, shared: &Shared, local: SocketAddr, fd: RawFd, n: usize) {
        let now = Instant::now();
        shared.host.borrow_mut().begin_batch();
        for i in 0..n {
            let Some((datagram, from)) = self.rx.get(i) else {
                continue;
            };
            let five_tuple = FiveTuple {
                client: from,
                server: local,
                transport: ClientTransport::Udp,
            };
            let moved = shared.moved.borrow_mut().worker_for(&five_tuple, now);
            if let Some(worker) = moved {
                shared.forward_datagram(worker as u8, five_tuple, datagram, now);
                continue;
            }
            match handle_datagram(shared, five_tuple, now, datagram, &mut self.tx) {
                Handled::Done => {}
                Handled::ToPeer {
                    fd: relay_fd,
                    relay,
                    peer,
                    payload,
                } => self.to_peers.push(relay_fd, peer, i, payload, relay.0),
                Handled::Reply(len) => {
                    let at = self.replies.len();
                    self.replies.extend_from_slice(&self.tx[..len]);
                    self.to_clients
                        .push(fd, Destination::to(from), 0, at..at + len, 0);
                }
            }
        }
        self.to_peers.flush(&self.rx, |failed, bytes| {
            // A queued ICMP error makes the next send fail (the socket's pending
            // error): relay what is queued, then try this datagram once more.
            shared.drain_icmp(RelayId(failed.tag), failed.fd);
            let _ = send_one(failed.fd, bytes, failed.to.name().as_ref());
        });
        if !self.to_clients.is_empty() {
            self.to_clients.flush(&self.replies, |_, _| {});
            self.replies.clear();
        }
        shared.host.borrow_mut().end_batch();
    }
}

/// What is left to send after [`handle_datagram`], with the rest of the batch.
enum Handled {
    /// Nothing (or sent already).
    Done,
    /// The answer in `tx[..len]`, to the datagram's source.
    Reply(usize),
    /// Data for a peer: from relay socket `fd` (of `relay`), bytes `payload` of the
    /// datagram.
    ToPeer {
        fd: RawFd,
        relay: RelayId,
        peer: Destination,
        payload: std::ops::Range<usize>,
    },
}

/// Hands one client datagram to the core; answers and data for peers are left for the
/// caller to send with the rest of its batch.
fn handle_datagram(
    shared: &Shared,
    five_tuple: FiveTuple,
    now: Instant,
    datagram: &[u8],
    tx: &mut [u8],
) -> Handled {
    let action =
        shared.with_core(|core, host| core.handle_client(now, five_tuple, datagram, tx, host));
    match action {
        ClientAction::None => Handled::Done,
        ClientAction::Reply(len) => Handled::Reply(len),
        // RFC 5780: answer from another of our addresses and/or to another port.
        ClientAction::ReplyFrom {
            len,
            from: source,
            to,
        } => {
            if let Some(listener) = shared.listeners.get(&source) {
                let _ = listener.try_send_to(&tx[..len], to);
            }
            Handled::Done
        }
        ClientAction::ToPeer {
            relay,
            peer,
            payload,
            dont_fragment,
        } => match shared.relay_fd(relay, peer, dont_fragment) {
            Some((fd, peer)) => Handled::ToPeer {
                fd,
                relay,
                peer,
                payload,
            },
            None => Handled::Done,
        },
        // RFC 6062 data connections exist only on streams; answer and move on.
        ClientAction::BindData { reply, .. } => Handled::Reply(reply),
        // Another worker's client (a moved one, RFC 8016): hand it there.
        ClientAction::Forward { shard } => {
            shared.forward_datagram(shard, five_tuple, datagram, now);
            Handled::Done
        }
    }
}

/// Rounds of the relay poller before letting the worker's other tasks run.
const RELAY_ROUNDS: usize = 4;

/// Receives from peers on every UDP relay socket of the worker: per round, one
/// `epoll_wait` for the ready sockets, one `recvmmsg` per socket into a shared batch, the
/// core's verdict per datagram, and one `sendmmsg` per listener for what goes to clients.
async fn relay_loop(shared: Rc<Shared>, poller: Rc<AsyncFd<Poller>>) {
    let mut rx = RecvBatch::with_room(PEER_HEADROOM, MAX_DATAGRAM, PEER_TAILROOM);
    let mut owners = [RelayId(0); BATCH];
    let mut to_clients = SendBatch::new();
    let mut ready: Vec<Ready> = Vec::with_capacity(MAX_EVENTS);
    loop {
        let mut guard = match poller.readable().await {
            Ok(g) => g,
            Err(e) => {
                warn!(error = %e, "relay poller failed");
                return;
            }
        };
        let mut rounds = 0;
        while rounds < RELAY_ROUNDS {
            rounds += 1;
            if let Err(e) = poller.get_ref().ready(&mut ready) {
                debug!(error = %e, "epoll_wait on relay sockets failed");
            }
            if ready.is_empty() {
                // Nothing is ready: re-arm. A datagram that arrived since the call
                // above has already made the poller readable again under a newer tick,
                // which this does not clear.
                guard.clear_ready();
                break;
            }
            let mut filled = 0;
            for r in &ready {
                let Some((relay, fd)) = shared.polled_fd(r.token) else {
                    continue;
                };
                if r.error {
                    shared.drain_icmp(relay, fd);
                }
                if !r.readable {
                    continue;
                }
                if filled == BATCH {
                    relay_batch(&shared, &mut rx, &owners[..filled], &mut to_clients);
                    filled = 0;
                }
                match rx.recv_at(fd, filled) {
                    Ok(n) => {
                        owners[filled..filled + n].fill(relay);
                        filled += n;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    // An ICMP error for an earlier send surfaces as an error (IP_RECVERR).
                    Err(_) => shared.drain_icmp(relay, fd),
                }
            }
            relay_batch(&shared, &mut rx, &owners[..filled], &mut to_clients);
        }
        drop(guard);
        if rounds == RELAY_ROUNDS {
            // Maybe more to read: let the worker's other tasks run first.
            tokio::task::yield_now().await;
        }
    }
}

/// Hands a batch of peer datagrams (slot `i` came to relay `owners[i]`) to the core and
/// sends what it answers: to UDP clients in one `sendmmsg` per listener, to stream
/// clients through their write queues.
fn relay_batch(
    shared: &Shared,
    rx: &mut RecvBatch,
    owners: &[RelayId],
    to_clients: &mut SendBatch,
) {
    if owners.is_empty() {
        return;
    }
    let now = Instant::now();
    let relays = Arc::clone(&shared.host.borrow().relay);
    {
        let mut core = shared.core.borrow_mut();
        for (i, &relay) in owners.iter().enumerate() {
            let Some((slot, payload, from)) = rx.slot_mut(i) else {
                continue;
            };
            // From another of our relay sockets: the core sees its advertised address.
            let from = relays.to_advertised(from);
            if let PeerAction::ToClient { to, range } =
                core.handle_peer(now, relay, from, slot, payload)
            {
                if to.transport.is_stream() {
                    if let Some(tx) = shared.streams.borrow().get(&to) {
                        let _ = tx.try_send(Bytes::copy_from_slice(&slot[range]));
                    }
                } else if let Some(listener) = shared.listeners.get(&to.server) {
                    to_clients.push(
                        listener.as_raw_fd(),
                        Destination::to(to.client),
                        i,
                        range,
                        0,
                    );
                }
            }
        }
    }
    to_clients.flush(rx, |_, _| {});
}

/// Drives the core's sweep.
async fn timer_loop(shared: Rc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        shared.moved.borrow_mut().expire(now);
        let due = shared
            .core
            .borrow()
            .poll_timeout()
            .is_some_and(|t| t <= now);
        if due {
            shared.with_core(|core, host| core.handle_timeout(now, host));
            // Answers the sweep produced (a Connect that timed out gets its 447).
            loop {
                let Some(t) = shared.core.borrow_mut().poll_transmit() else {
                    break;
                };
                shared.send_to_client(t.to, &t.message);
            }
        }
    }
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
