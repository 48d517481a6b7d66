//! RFC 6062 TCP relays in a worker: the relay listener that accepts peers, connections
//! the relay opens to peers, and the byte pipe between a peer connection and the client
//! data connection bound to it. The protocol decisions are the core's
//! ([`turnpike_proto::server::tcp_relay`]); this module only owns sockets.
//!
//! Peer connections wait in the host's `PeerConns` until a ConnectionBind claims them; a bound pair
//! is copied in both directions by one task whose abort handle is kept, so the core can
//! close it (allocation gone, RFC 6062 §5.5).

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::debug;
use turnpike_proto::budget::{OverBudget, UserBudget, UserLimits};
use turnpike_proto::server::tcp_relay::CONNECT_TIMEOUT;
use turnpike_proto::stun::attr::ConnectionId;
use turnpike_proto::{FiveTuple, PeerAction, RelayId};

use crate::host::Start;
use crate::peer_conns::PeerConn;
use crate::relay::{RelayConfig, tcp_socket};
use crate::shared::Shared;

/// Accepts peers on a TCP relay until aborted (ConnectionAttempt, RFC 6062 §5.3).
/// A connection from another relay of this server is reported with its advertised
/// address ([`RelayConfig::to_advertised`]).
pub(crate) async fn accept_loop(
    shared: Rc<Shared>,
    relay: RelayId,
    listener: TcpListener,
    relays: Arc<RelayConfig>,
) {
    let mut out = [0u8; 256];
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let peer = relays.to_advertised(peer);
        let id = shared.host.borrow().peer_conns.new_id(shared.shard());
        let action = shared.core.borrow_mut().handle_peer_connection(
            Instant::now(),
            relay,
            peer,
            id,
            &mut out,
        );
        match action {
            PeerAction::ToClient { to, range } => {
                shared
                    .host
                    .borrow_mut()
                    .peer_conns
                    .conns
                    .insert(id, PeerConn::Waiting(stream));
                shared.send_to_client(to, &out[range]);
            }
            // No permission, over the limit: close it.
            PeerAction::None => drop(stream),
        }
    }
}

/// How long a connect that found its 4-tuple taken waits before reporting the failure.
const SIMULTANEOUS_OPEN_GRACE: Duration = Duration::from_millis(250);

/// Opens a connection from the relayed address `local` to `peer` (RFC 6062 §5.2) and
/// reports the outcome to the core, which answers the Connect.
pub(crate) async fn connect(
    shared: Rc<Shared>,
    id: ConnectionId,
    local: SocketAddr,
    peer: SocketAddr,
) {
    let attempt = async {
        let socket = tcp_socket(local)?;
        socket.bind(&local.into())?;
        let socket = tokio::net::TcpSocket::from_std_stream(socket.into());
        socket.connect(peer).await
    };
    let result = tokio::time::timeout(CONNECT_TIMEOUT, attempt).await;
    let stream = match result {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "connect to peer failed");
            // The 4-tuple is taken: the peer (another relay of this server, say) has
            // just connected to this relay itself. Give the accept loop a moment to
            // report that connection, which then answers the Connect; this failure,
            // reported after it, finds nothing to answer.
            if matches!(
                e.kind(),
                std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::AddrInUse
            ) {
                tokio::time::sleep(SIMULTANEOUS_OPEN_GRACE).await;
            }
            None
        }
        Err(_) => None,
    };
    let mut out = [0u8; 256];
    let action = shared.core.borrow_mut().handle_peer_connected(
        Instant::now(),
        id,
        stream.is_some(),
        &mut out,
    );
    {
        let mut host = shared.host.borrow_mut();
        match (&stream, &action) {
            (Some(_), PeerAction::ToClient { .. }) => {}
            _ => {
                host.peer_conns.conns.remove(&id);
            }
        }
    }
    if let PeerAction::ToClient { to, range } = action {
        if let Some(s) = stream {
            shared
                .host
                .borrow_mut()
                .peer_conns
                .conns
                .insert(id, PeerConn::Waiting(s));
        }
        // The Connect's answer (RFC 6062 §5.2): never dropped for a full queue.
        shared.send_answer_to_client(to, &out[range]);
    }
}

/// Pipes a client data connection and its peer connection until either side closes,
/// then tells the core (RFC 6062 §5.5). `early` is what the client sent after its
/// ConnectionBind in the same read.
pub(crate) async fn pipe<S>(
    shared: Rc<Shared>,
    id: ConnectionId,
    client: FiveTuple,
    mut client_stream: S,
    early: Vec<u8>,
) where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let peer = match shared.host.borrow_mut().peer_conns.conns.remove(&id) {
        Some(PeerConn::Waiting(stream)) => Some(stream),
        _ => None,
    };
    if let Some(mut peer) = peer {
        let budget = shared.core.borrow().connection_budget(id);
        let task = tokio::task::spawn_local(async move {
            match budget {
                None => {
                    if !early.is_empty() && peer.write_all(&early).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client_stream, &mut peer).await;
                }
                Some((budget, limits)) => {
                    let (client_read, client_write) = tokio::io::split(client_stream);
                    let (peer_read, mut peer_write) = peer.into_split();
                    let metered = Metered {
                        budget: &budget,
                        limits,
                    };
                    if !early.is_empty()
                        && (metered.charge(early.len()).await.is_err()
                            || peer_write.write_all(&early).await.is_err())
                    {
                        return;
                    }
                    // As copy_bidirectional: an end of stream is passed on as a shutdown
                    // and the other direction goes on; an error (or the budget spent)
                    // ends both.
                    let _ = tokio::try_join!(
                        metered.copy(client_read, peer_write),
                        metered.copy(peer_read, client_write)
                    );
                }
            }
        });
        shared
            .host
            .borrow_mut()
            .peer_conns
            .conns
            .insert(id, PeerConn::Bound(task.abort_handle()));
        let _ = task.await;
        shared.host.borrow_mut().peer_conns.conns.remove(&id);
    }
    let now = Instant::now();
    shared.with_core(|core, host| {
        core.handle_peer_connection_closed(now, id);
        core.handle_connection_closed(now, client, host);
    });
}

/// A copy that charges the user's traffic budget for each read (RFC 6062 data is the
/// user's traffic as much as datagrams are): over the rate it waits for the next window
/// (TCP backpressure, nothing lost), spent it ends the copy, which closes the pair.
struct Metered<'a> {
    budget: &'a UserBudget,
    limits: UserLimits,
}

impl Metered<'_> {
    /// Waits until `len` bytes fit the budget; `Err` once the period's bytes are spent.
    async fn charge(&self, len: usize) -> Result<(), OverBudget> {
        loop {
            let now = Instant::now();
            match self.budget.charge_stream(now, len, &self.limits) {
                Ok(()) => return Ok(()),
                Err(OverBudget::Rate) => {
                    tokio::time::sleep(self.budget.next_window(now)).await;
                }
                Err(OverBudget::Spent) => {
                    debug!(
                        "a user's traffic budget is spent: closing its RFC 6062 data connection"
                    );
                    return Err(OverBudget::Spent);
                }
            }
        }
    }

    /// Copies `from` to `to` until `from` ends, either fails, or the budget is spent.
    async fn copy(
        &self,
        mut from: impl AsyncRead + Unpin,
        mut to: impl AsyncWrite + Unpin,
    ) -> std::io::Result<()> {
        // A read never asks for more than one second's bytes, so it can always pass.
        let cap = match self.limits.bytes_per_sec {
            0 => COPY_CHUNK,
            rate => usize::try_from(rate)
                .unwrap_or(COPY_CHUNK)
                .clamp(1, COPY_CHUNK),
        };
        let mut buf = vec![0u8; cap];
        loop {
            let n = from.read(&mut buf).await?;
            if n == 0 {
                return to.shutdown().await;
            }
            self.charge(n)
                .await
                .map_err(|_| std::io::Error::other("traffic budget spent"))?;
            to.write_all(&buf[..n]).await?;
        }
    }
}

/// The largest read of a metered copy.
const COPY_CHUNK: usize = 16 * 1024;

/// Starts what the host was asked for during a core call (a TCP relay's accept loop, a
/// connection to a peer), unless the core has taken it back since.
pub(crate) fn start(shared: &Rc<Shared>, start: Start) {
    match start {
        Start::Accept { relay, listener } => {
            let mut host = shared.host.borrow_mut();
            let relays = Arc::clone(&host.relay);
            if let Some((task, _)) = host.tcp_relays.get_mut(&relay) {
                let spawned = tokio::task::spawn_local(accept_loop(
                    Rc::clone(shared),
                    relay,
                    listener,
                    relays,
                ));
                *task = Some(spawned.abort_handle());
            }
        }
        Start::Connect { id, local, peer } => {
            let mut host = shared.host.borrow_mut();
            if let Some(conn) = host.peer_conns.conns.get_mut(&id) {
                if matches!(conn, PeerConn::Starting) {
                    let spawned =
                        tokio::task::spawn_local(connect(Rc::clone(shared), id, local, peer));
                    *conn = PeerConn::Connecting(spawned.abort_handle());
                }
            }
        }
    }
}
