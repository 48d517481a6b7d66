//! RFC 6062 peer data connections of one worker, by CONNECTION-ID: connecting, waiting
//! for their ConnectionBind, or piped to a client data connection. The ids name the
//! worker that made them ([`shard_of`]).

use std::collections::HashMap;

use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use turnpike_proto::stun::attr::ConnectionId;

/// One peer data connection.
pub(crate) enum PeerConn {
    /// The core asked for a connection to a peer; the task that makes it starts right
    /// after the core call (the host's `Start::Connect`).
    Starting,
    /// The relay is connecting to the peer.
    Connecting(AbortHandle),
    /// Connected (either way) and waiting for the client's ConnectionBind.
    Waiting(TcpStream),
    /// Piped to a client data connection by the task behind the handle.
    Bound(AbortHandle),
}

/// The peer connections of one worker.
#[derive(Default)]
pub(crate) struct PeerConns {
    pub(crate) conns: HashMap<ConnectionId, PeerConn>,
}

/// The worker that made a connection id ([`PeerConns::new_id`]).
pub(crate) fn shard_of(id: ConnectionId) -> u8 {
    (id.0 >> 24) as u8
}

impl PeerConns {
    /// A fresh connection id of worker `shard`, never 0 and not in use: the worker in the
    /// top 8 bits (so any worker can hand a ConnectionBind to the one holding the
    /// connection, see [`shard_of`]), 24 random bits below, which a client cannot guess
    /// (the core also checks the ConnectionBind's username).
    pub(crate) fn new_id(&self, shard: u8) -> ConnectionId {
        loop {
            let low = rand::random::<u32>() & 0x00FF_FFFF;
            let id = ConnectionId(u32::from(shard) << 24 | low);
            if id.0 != 0 && !self.conns.contains_key(&id) {
                return id;
            }
        }
    }

    /// Closes a connection in any state.
    pub(crate) fn close(&mut self, id: ConnectionId) {
        match self.conns.remove(&id) {
            Some(PeerConn::Connecting(h) | PeerConn::Bound(h)) => h.abort(),
            Some(PeerConn::Waiting(stream)) => drop(stream),
            Some(PeerConn::Starting) | None => {}
        }
    }
}
