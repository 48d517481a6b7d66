//! What every task of a worker shares: its core and host, its listener sockets, its
//! stream clients' write queues, and the ways out (to a client, to a peer, to another
//! worker).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio_rustls::TlsAcceptor;
use turnpike_proto::stun::attr::Icmp;
use turnpike_proto::{ClientAction, Event, FiveTuple, HashMap, PeerAction, RelayId, TurnServer};
use turnpike_udp::{Destination, icmp, send_one, sockopt};

use crate::counters::WorkerCounters;
use crate::handoff::{Moved, ToWorker, Workers};
use crate::notices::Budget;
use crate::relay::RelayConfig;
use crate::stream::{NotQueued, StreamQueue};
use crate::tcp::TcpLimits;

use crate::host::{PEER_SOCKET_TOKEN, PeerSocket, WorkerHost};

/// Linux's "message too long": a datagram larger than the path allows with DF set.
const EMSGSIZE: i32 = 90;

/// Largest UDP payload.
pub(crate) const MAX_DATAGRAM: usize = 65_535;

/// What every task of a worker shares.
pub(crate) struct Shared {
    /// The worker's index (its core's shard).
    pub(crate) index: usize,
    /// Every worker's queue, by index, for handing over what another worker serves.
    pub(crate) workers: Workers,
    /// UDP clients this worker receives but another serves.
    pub(crate) moved: RefCell<Moved>,
    /// Whether `moved` holds anything: the one check a datagram pays while it is empty.
    pub(crate) moved_any: Cell<bool>,
    /// Whether the timer waits for a deadline (else it waits to be woken).
    pub(crate) timer_armed: Cell<bool>,
    /// Where relay sockets are bound, and the 1:1 NAT mapping (the host's, shared).
    pub(crate) relay: Arc<RelayConfig>,
    pub(crate) core: RefCell<TurnServer>,
    /// Wakes the timer when the core gets a deadline while it had none.
    pub(crate) timer: tokio::sync::Notify,
    pub(crate) host: RefCell<WorkerHost>,
    pub(crate) listeners: HashMap<SocketAddr, Rc<UdpSocket>>,
    /// Write queues of this worker's TCP/TLS clients.
    pub(crate) streams: RefCell<HashMap<FiveTuple, StreamQueue>>,
    /// The TLS acceptor for new connections (a reload may replace it).
    pub(crate) tls: RefCell<Option<TlsAcceptor>>,
    pub(crate) stream_limits: TcpLimits,
    /// The runtime's counters of this worker.
    pub(crate) counters: WorkerCounters,
    /// Lines about refused credentials, written within a budget.
    pub(crate) auth_notices: Budget,
    /// Lines about denied peers, written within a budget.
    pub(crate) peer_notices: Budget,
}

impl Shared {
    /// This worker's core's shard.
    pub(crate) fn shard(&self) -> u8 {
        self.index as u8
    }

    /// Hands a client datagram to worker `shard`, and its later datagrams too.
    pub(crate) fn forward_datagram(
        &self,
        shard: u8,
        from: FiveTuple,
        datagram: &[u8],
        now: Instant,
    ) {
        let worker = usize::from(shard);
        if let Some(queue) = self.workers.get(worker) {
            self.moved.borrow_mut().insert(from, worker, now);
            self.moved_any.set(true);
            let _ = queue.send(ToWorker::Datagram {
                from,
                datagram: Bytes::copy_from_slice(datagram),
            });
        }
    }

    /// Serves a datagram another worker handed over: as if it had arrived here, its
    /// answer leaving from this worker's socket on the same local address.
    /// `out` is the caller's answer buffer, kept across datagrams (room for the largest
    /// answer: `MAX_DATAGRAM` + 1024).
    pub(crate) fn handle_forwarded(&self, from: FiveTuple, datagram: &[u8], out: &mut [u8]) {
        let now = Instant::now();
        let action =
            self.with_core(|core, host| core.handle_client(now, from, datagram, out, host));
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

    /// Borrows the core and the host together for one call into the core, then logs what
    /// the core reported.
    pub(crate) fn with_core<T>(&self, f: impl FnOnce(&mut TurnServer, &mut WorkerHost) -> T) -> T {
        let out = self.with_core_quiet(f);
        self.drain_events();
        out
    }

    /// Logs what the core reported (allocations that ended). A UDP receive batch calls
    /// it once at its end rather than after each datagram.
    pub(crate) fn drain_events(&self) {
        let mut core = self.core.borrow_mut();
        while let Some(event) = core.poll_event() {
            self.log_event(&event);
        }
    }

    /// [`Self::with_core`] without logging the core's events: the caller drains them
    /// ([`Self::drain_events`]) after its batch.
    pub(crate) fn with_core_quiet<T>(
        &self,
        f: impl FnOnce(&mut TurnServer, &mut WorkerHost) -> T,
    ) -> T {
        let mut core = self.core.borrow_mut();
        let mut host = self.host.borrow_mut();
        let out = f(&mut core, &mut host);
        // The core got a deadline while the timer waits for none: wake it.
        if !self.timer_armed.get() && core.poll_timeout().is_some() {
            self.timer_armed.set(true);
            self.timer.notify_one();
        }
        out
    }

    /// The socket a relay sends to `peer` from (its [`PeerSocket`] when connected to
    /// `peer`, else the relay socket), after setting its DF option as asked.
    pub(crate) fn relay_fd(
        &self,
        relay: RelayId,
        peer: SocketAddr,
        dont_fragment: bool,
    ) -> Option<(RawFd, Destination)> {
        let mut host = self.host.borrow_mut();
        let host = &mut *host;
        // A peer at our own advertised address: to the local one (no NAT hairpin).
        let peer = if self.relay.external.is_empty() {
            peer
        } else {
            self.relay.to_local(peer)
        };
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
    pub(crate) fn polled_fd(&self, token: u64) -> Option<(RelayId, RawFd)> {
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
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                WorkerCounters::bump(&self.counters.udp_send_blocked);
            }
            Err(e) if e.raw_os_error() == Some(EMSGSIZE) => {
                WorkerCounters::bump(&self.counters.too_big);
            }
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
    pub(crate) fn drain_icmp(&self, relay: RelayId, fd: RawFd) {
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
            let peer = self.relay.to_advertised(err.peer);
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

    /// Sends a framed message to a client, over UDP or its stream, without waiting: on a
    /// stream a full write queue drops it ([`Self::push_to_stream`]). For data relayed
    /// from peers and indications; an answer to a stream client's request that is made
    /// outside its read task goes through [`Self::send_answer_to_client`].
    pub(crate) fn send_to_client(&self, to: FiveTuple, message: &[u8]) {
        if to.transport.is_stream() {
            self.push_to_stream(&to, message);
        } else if let Some(listener) = self.listeners.get(&to.server) {
            if listener.try_send_to(message, to.client).is_err() {
                WorkerCounters::bump(&self.counters.udp_send_blocked);
            }
        }
    }

    /// Queues a message for a stream client without waiting. A full queue (the client
    /// does not read; by count or by bytes, see [`StreamQueue`]) drops it and counts it as
    /// `stream_queue_full`; a client gone since is not counted.
    pub(crate) fn push_to_stream(&self, to: &FiveTuple, message: &[u8]) {
        if let Some(queue) = self.streams.borrow().get(to) {
            if queue.try_push(message) == Err(NotQueued::Full) {
                WorkerCounters::bump(&self.counters.stream_queue_full);
            }
        }
    }

    /// Sends an answer to a client's request that is made outside the client's read task
    /// (a Connect's outcome, an answer the timer produced). Over UDP as
    /// [`Self::send_to_client`]; on a stream it is never dropped for a full queue while
    /// the client reads (TCP clients do not retransmit, RFC 8489 §6.2.2): a task waits for
    /// room, up to the write timeout (`[tcp] idle_timeout_secs`), after which the writer
    /// has given up on the client anyway. Call from the worker's `LocalSet`.
    pub(crate) fn send_answer_to_client(&self, to: FiveTuple, message: &[u8]) {
        if !to.transport.is_stream() {
            self.send_to_client(to, message);
            return;
        }
        let Some(queue) = self.streams.borrow().get(&to).cloned() else {
            return;
        };
        if queue.try_push(message) == Err(NotQueued::Full) {
            let wait = self.stream_limits.idle_timeout;
            let message = message.to_vec();
            tokio::task::spawn_local(async move {
                let _ = tokio::time::timeout(wait, queue.push(&message)).await;
            });
        }
    }
}

impl Shared {
    /// Logs what the core reports: one accounting line per allocation at its end (target
    /// `turnpike::session`, level info); refused credentials and denied peers (targets
    /// `turnpike::auth` and `turnpike::peers`, level warn) within their budgets.
    fn log_event(&self, event: &Event) {
        match event {
            Event::AllocationEnded(r) => {
                let relayed: Vec<String> = r.relayed.iter().map(ToString::to_string).collect();
                tracing::info!(
                    target: "turnpike::session",
                    user = %r.username,
                    client = %r.five_tuple.client,
                    server = %r.five_tuple.server,
                    transport = r.five_tuple.transport.as_str(),
                    relayed = %relayed.join(","),
                    duration_ms = r.duration.as_millis() as u64,
                    to_peer_packets = r.to_peer.packets,
                    to_peer_bytes = r.to_peer.bytes,
                    to_client_packets = r.to_client.packets,
                    to_client_bytes = r.to_client.bytes,
                    reason = r.reason.as_str(),
                    "allocation ended"
                );
            }
            Event::AuthFailed {
                from,
                username,
                reason,
            } => {
                if let Some(held_back) = self.auth_notices.take(Instant::now()) {
                    tracing::warn!(
                        target: "turnpike::auth",
                        client = %from.client,
                        transport = from.transport.as_str(),
                        user = username.as_deref().unwrap_or(""),
                        reason = reason.as_str(),
                        held_back,
                        "authentication failed"
                    );
                }
            }
            Event::PeerDenied { from, peer, rule } => {
                if let Some(held_back) = self.peer_notices.take(Instant::now()) {
                    tracing::warn!(
                        target: "turnpike::peers",
                        client = %from.client,
                        peer = %peer,
                        rule = rule.as_str(),
                        held_back,
                        "peer denied"
                    );
                }
            }
            _ => tracing::debug!(?event, "core event"),
        }
    }
}
