//! The UDP loops of a worker: client datagrams read from the listener sockets in
//! `recvmmsg` batches, peer datagrams read from every relay socket the poller names, and
//! what each batch produces sent with `sendmmsg`.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Instant;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;
use tracing::{debug, warn};
use turnpike_proto::server::{PEER_HEADROOM, PEER_TAILROOM};
use turnpike_proto::{ClientAction, ClientTransport, FiveTuple, PeerAction, RelayId};
use turnpike_udp::{BATCH, Destination, MAX_EVENTS, Poller, Ready, RecvBatch, SendBatch, send_one};

use super::MAX_DATAGRAM;
use crate::shared::Shared;

/// Receives from clients on one listener socket, a `recvmmsg` batch per readiness event.
pub(super) async fn listener_loop(shared: Rc<Shared>, local: SocketAddr, socket: Rc<UdpSocket>) {
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
pub(super) struct ClientBatch {
    pub(super) rx: RecvBatch,
    /// The core's answer to one datagram. Room for the largest: an RFC 5780 response
    /// echoes the request's PADDING.
    pub(super) tx: Vec<u8>,
    pub(super) to_peers: SendBatch,
    /// Answers of one batch, one after the other, sent with one sendmmsg at its end.
    pub(super) replies: Vec<u8>,
    pub(super) to_clients: SendBatch,
}

impl ClientBatch {
    pub(super) fn new() -> Self {
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
    pub(super) fn handle(&mut self, shared: &Shared, local: SocketAddr, fd: RawFd, n: usize) {
        let now = Instant::now();
        shared.host.borrow_mut().begin_batch();
        for i in 0..n {
            let Some((datagram, from)) = self.rx.get(i) else {
                continue;
            };
            if shared.moved_any.get() && forward_moved(shared, local, from, datagram, now) {
                continue;
            }
            match handle_datagram(shared, local, now, datagram, from, &mut self.tx) {
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
        shared.drain_events();
    }
}

/// Hands a datagram from a 5-tuple that another worker serves (a moved client) to that
/// worker; false if `from` is not one.
#[cold]
fn forward_moved(
    shared: &Shared,
    local: SocketAddr,
    from: SocketAddr,
    datagram: &[u8],
    now: Instant,
) -> bool {
    let five_tuple = FiveTuple {
        client: from,
        server: local,
        transport: ClientTransport::Udp,
    };
    let moved = shared.moved.borrow_mut().worker_for(&five_tuple, now);
    match moved {
        Some(worker) => {
            shared.forward_datagram(worker as u8, five_tuple, datagram, now);
            true
        }
        None => false,
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
    local: SocketAddr,
    now: Instant,
    datagram: &[u8],
    from: SocketAddr,
    tx: &mut [u8],
) -> Handled {
    let five_tuple = FiveTuple {
        client: from,
        server: local,
        transport: ClientTransport::Udp,
    };
    let action = shared
        .with_core_quiet(|core, host| core.handle_client(now, five_tuple, datagram, tx, host));
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
pub(super) async fn relay_loop(shared: Rc<Shared>, poller: Rc<AsyncFd<Poller>>) {
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
    let relays = &shared.relay;
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
                    // Dropped and counted when the client's queue is full.
                    shared.push_to_stream(&to, &slot[range]);
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
