//! RFC 6062 TCP allocations: the protocol core. The runtime owns every socket; the core
//! decides, keeps the (bounded) state, and writes every message.
//!
//! # Turning it on
//!
//! REQUESTED-TRANSPORT TCP (6) is served only when [`crate::TurnSection::tcp_relay`] is
//! set *and* the host says it can ([`Host::supports_tcp_relay`]); otherwise it is a 442,
//! as it always was. Then, in RFC 6062 §5.1's order: a client that is not on TCP or TLS
//! gets 400; DONT-FRAGMENT, EVEN-PORT or RESERVATION-TOKEN get 400; the relayed address
//! is a TCP listener ([`Host::bind_tcp_relay`], both families with
//! ADDITIONAL-ADDRESS-FAMILY) and the response has no RESERVATION-TOKEN. A TCP
//! allocation takes CreatePermission and Refresh as usual; ChannelBind is a 400, and
//! Send indications, ChannelData, peer datagrams and ICMP are dropped: it relays no
//! datagrams.
//!
//! # Connections and their states
//!
//! Every peer data connection has a CONNECTION-ID chosen by the host (so a runtime with
//! several cores can route a ConnectionBind by it) and one entry in the core's table:
//!
//! ```text
//!            Connect ok                     peer connected            ConnectionBind
//! (client) ──────────────► Connecting ──────────────────► AwaitingBind ────────────► Bound
//!                           │ failed / 30 s: 447            ▲   │ 30 s: closed      │ either side
//!                           ▼                               │   ▼                   ▼ closes: gone
//!                          gone       peer connects to the relay (with a permission)
//! ```
//!
//! - **Connect** (RFC 6062 §5.2) on the control connection: the allocation must exist
//!   (437), be the caller's (441) and be a TCP allocation (400); XOR-PEER-ADDRESS must be
//!   present and valid (400), of a relayed family (443) and allowed by the peer policy
//!   (403). A connection to the same peer address that is connecting, awaiting its bind
//!   or bound is a 446. Over [`crate::quota::Quotas::tcp_connections_per_allocation`]: 508.
//!   Then [`Host::connect_peer`] starts the connection and names it; the request gets
//!   no answer yet. No permission is needed: RFC 6062 §5.2 only has the policy check
//!   (403). The request's transaction ID and signing key are kept with the entry.
//! - [`TurnServer::handle_peer_connected`] reports the outcome. Success: the Connect
//!   success response with CONNECTION-ID, and the connection waits for its bind. Failure:
//!   447 and the entry is gone. If neither came within [`CONNECT_TIMEOUT`] (30 s, "at
//!   least 30 seconds"), the sweep answers 447 through [`TurnServer::poll_transmit`] and
//!   tells the host to give up ([`Host::close_peer_connection`]).
//! - **ConnectionAttempt** (RFC 6062 §5.3): [`TurnServer::handle_peer_connection`]
//!   reports a peer that connected to a TCP relay. Without a permission for the peer's
//!   IP (or over the connection limit, or with an id already in use) the answer is
//!   [`PeerAction::None`]: close it. Otherwise the entry waits for its bind and the
//!   ConnectionAttempt indication (XOR-PEER-ADDRESS, CONNECTION-ID) goes to the client.
//! - **ConnectionBind** (RFC 6062 §5.4) arrives on a new TCP or TLS connection and is
//!   authenticated like any request: a UDP client, a 5-tuple that has an allocation (or is
//!   a data connection already), a missing CONNECTION-ID, or one that names no connection
//!   awaiting its bind all get 400; a username other than the allocation's gets 441 (RFC
//!   6062 does not say; the alternative would let any user of the realm take over a
//!   connection whose id it guessed). Success answers with
//!   [`ClientAction::BindData`](crate::ClientAction::BindData):
//!   from then on the runtime pipes bytes between the two connections, with no STUN
//!   framing, starting with what the peer sent before the bind.
//! - Without a ConnectionBind within [`CONNECTION_BIND_TIMEOUT`] (30 s) of the Connect
//!   success or the ConnectionAttempt, the sweep closes the peer connection.
//! - A bound pair ends when either side closes: the runtime closes the other side and
//!   reports it ([`TurnServer::handle_connection_closed`] for the client data
//!   connection, [`TurnServer::handle_peer_connection_closed`] for the peer one). When
//!   the allocation goes (expiry, Refresh 0, its control connection closed), every one of
//!   its connections is closed through [`Host::close_peer_connection`] (RFC 6062 §5.5).
//!
//! # Bounds
//!
//! The table holds at most `tcp_connections_per_allocation` entries per allocation, and
//! allocations are bounded by the quotas; a pending Connect keeps about 80 bytes (id,
//! peer, transaction ID, key), and the queue of timed-out Connect answers at most one
//! message per pending Connect. Nothing is kept for a ConnectionBind that fails.

use core::net::SocketAddr;
use core::time::Duration;
use std::time::Instant;

use turnpike_stun::attr::{ConnectionId, ErrorCodeAttr, XorPeerAddress};
use turnpike_stun::{Class, ErrorCode, MessageType, MessageWriter, Method, TransactionId};

use super::respond::Signer;
use super::{Outcome, PeerAction, Reject, Request, Transmit, TurnServer, normalise_addr};
use crate::allocation::FiveTuple;
use crate::host::{Family, Host, RelayId};
use crate::table::AllocationId;

/// How long a Connect waits for its peer connection before the client gets 447 (RFC
/// 6062 §5.2: "The timeout value MUST be at least 30 seconds").
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a peer data connection waits for its ConnectionBind (RFC 6062 §5.2, §5.3:
/// "If no ConnectionBind request associated with this peer data connection is received
/// after 30 seconds, the peer data connection MUST be closed").
pub const CONNECTION_BIND_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes `out` needs for [`TurnServer::handle_peer_connected`] and
/// [`TurnServer::handle_peer_connection`]; 512 is plenty.
pub const TCP_MESSAGE_MAX: usize = 512;

/// One peer data connection.
#[derive(Debug)]
pub(crate) struct PeerConnection {
    /// The allocation it belongs to.
    pub(crate) slot: AllocationId,
    /// The peer (normalised).
    pub(crate) peer: SocketAddr,
    pub(crate) state: State,
}

#[derive(Debug)]
pub(crate) enum State {
    /// The host is connecting for a Connect whose answer is pending.
    Connecting {
        until: Instant,
        tid: TransactionId,
        signer: Signer,
    },
    /// Connected; waits for a ConnectionBind.
    AwaitingBind { until: Instant },
    /// Piped to the client data connection `client`.
    Bound { client: FiveTuple },
}

impl TurnServer {
    /// Connect (RFC 6062 §5.2); see the module docs.
    pub(super) fn connect(
        &mut self,
        req: &Request<'_>,
        host: &mut impl Host,
    ) -> Result<Outcome, Reject> {
        let (now, msg) = (req.now, req.msg);
        let slot = self.allocation_for(req)?;
        if !self.table[slot].tcp {
            return Err(Reject::BadRequest);
        }
        let peer = msg.get::<XorPeerAddress>()?.ok_or(Reject::BadRequest)?;
        let peer = self.check_peer(req.from, slot, peer.0)?;
        let alloc = &self.table[slot];
        // "If the server is currently processing a Connect request for this allocation
        // with the same XOR-PEER-ADDRESS" or already did and "the resulting client and
        // peer data connections are either pending or active": 446. Inbound connections
        // from that address count too (the TCP 4-tuple would be the same).
        let exists = alloc
            .connections
            .iter()
            .filter_map(|id| self.connections.get(id))
            .any(|c| c.peer == peer);
        if exists {
            return Err(Reject::ConnectionAlreadyExists);
        }
        let limit = self.config.quotas.tcp_connections_per_allocation as usize;
        if limit != 0 && alloc.connections.len() >= limit {
            return Err(Reject::InsufficientCapacity);
        }
        let relay = alloc
            .relay(Family::of(peer))
            .ok_or(Reject::PeerAddressFamilyMismatch)?;
        let id = match host.connect_peer(relay, peer) {
            Ok(id) if !self.connections.contains_key(&id) => id,
            // A host that reuses a live id breaks its contract; the client is told the
            // connection failed and the other connection is left alone.
            Ok(_) | Err(_) => return Err(Reject::ConnectionTimeoutOrFailure),
        };
        self.connections.insert(
            id,
            PeerConnection {
                slot,
                peer,
                state: State::Connecting {
                    until: now + CONNECT_TIMEOUT,
                    tid: msg.transaction_id(),
                    signer: Signer::of(req),
                },
            },
        );
        self.table[slot].connections.push(id);
        self.schedule_sweep(now);
        Ok(Outcome::Deferred)
    }

    /// ConnectionBind (RFC 6062 §5.4); see the module docs.
    pub(super) fn connection_bind(
        &mut self,
        req: &Request<'_>,
        out: &mut [u8],
    ) -> Result<Outcome, Reject> {
        let (now, from, msg) = (req.now, req.from, req.msg);
        // "If the client connection transport is not TCP or TLS, the server MUST return
        // a 400 (Bad Request) error."
        if !from.transport.is_stream()
            || self.table.by_five_tuple(&from).is_some()
            || self.data_clients.contains_key(&from)
        {
            return Err(Reject::BadRequest);
        }
        // "If the request does not contain the CONNECTION-ID attribute, or if this
        // attribute does not refer to an existing pending connection, the server MUST
        // return a 400 (Bad Request) error."
        let id = msg.get::<ConnectionId>()?.ok_or(Reject::BadRequest)?;
        let conn = self.connections.get(&id).ok_or(Reject::BadRequest)?;
        if !matches!(conn.state, State::AwaitingBind { until } if until > now) {
            return Err(Reject::BadRequest);
        }
        let alloc = self
            .table
            .get(conn.slot)
            .filter(|a| a.is_live(now))
            .ok_or(Reject::BadRequest)?;
        if *alloc.username != *req.auth.username {
            return Err(Reject::WrongCredentials);
        }
        let n = self.succeed(req, out, |_| Ok(()))?;
        if let Some(conn) = self.connections.get_mut(&id) {
            conn.state = State::Bound { client: from };
        }
        self.data_clients.insert(from, id);
        Ok(Outcome::BindData(n, id))
    }

    /// The host finished opening the peer connection `connection` it started for a
    /// Connect ([`Host::connect_peer`]): `connected` says whether it succeeded.
    ///
    /// The answer to the Connect (success with CONNECTION-ID, or 447) is written into
    /// `out` ([`TCP_MESSAGE_MAX`] bytes) and returned as [`PeerAction::ToClient`] for the
    /// allocation's control connection. After a success the connection waits up to
    /// [`CONNECTION_BIND_TIMEOUT`] for its ConnectionBind; keep it open and buffer what the
    /// peer sends. [`PeerAction::None`] means the core does not know the connection (its
    /// allocation went, it timed out) or no longer wants it: close it; the core keeps
    /// nothing under that id afterwards.
    pub fn handle_peer_connected(
        &mut self,
        now: Instant,
        connection: ConnectionId,
        connected: bool,
        out: &mut [u8],
    ) -> PeerAction {
        let Some(conn) = self.connections.get(&connection) else {
            return PeerAction::None;
        };
        let State::Connecting { tid, signer, .. } = conn.state else {
            // An outcome for a connection that is not connecting: the host named two
            // connections alike (the Connect's own attempt, forgotten when the peer's
            // connection answered it, and a later one). `None` makes the runtime close
            // this id, so the core forgets it too rather than wait for a bind on a
            // connection that is gone.
            self.forget_connection(connection);
            return PeerAction::None;
        };
        let Some(to) = self.table.get(conn.slot).map(|a| a.five_tuple) else {
            self.forget_connection(connection);
            return PeerAction::None;
        };
        let ty = MessageType::new(Method::CONNECT, Class::Success);
        let written = if connected {
            self.write_signed(out, ty, tid, &signer, |w| w.put(&connection))
        } else {
            self.write_signed(out, ty.error(), tid, &signer, |w| {
                w.put(&ErrorCodeAttr::new(
                    ErrorCode::CONNECTION_TIMEOUT_OR_FAILURE,
                ))
            })
        };
        match written {
            Ok(n) if connected => {
                if let Some(c) = self.connections.get_mut(&connection) {
                    c.state = State::AwaitingBind {
                        until: now + CONNECTION_BIND_TIMEOUT,
                    };
                }
                self.stats.peer_connections += 1;
                PeerAction::ToClient { to, range: 0..n }
            }
            Ok(n) => {
                self.forget_connection(connection);
                PeerAction::ToClient { to, range: 0..n }
            }
            Err(_) => {
                self.forget_connection(connection);
                PeerAction::None
            }
        }
    }

    /// A peer connected to the TCP relay `relay` from `peer`; the runtime accepted it and
    /// named it `connection` (unique among this core's live connections).
    ///
    /// If the allocation is connecting to that very peer (a Connect under way: two relays
    /// connecting to each other at once), this connection answers that Connect: the
    /// Connect success with this CONNECTION-ID is written into `out` instead of a
    /// ConnectionAttempt, and the relay's own attempt is forgotten.
    ///
    /// Otherwise, with a permission for the peer's IP (RFC 6062 §5.3), the ConnectionAttempt
    /// indication is written into `out` ([`TCP_MESSAGE_MAX`] bytes) and returned as
    /// [`PeerAction::ToClient`]; keep the connection and buffer what the peer sends until
    /// the ConnectionBind (at most [`CONNECTION_BIND_TIMEOUT`]). [`PeerAction::None`]:
    /// close it ("the server MUST close the connection with the peer immediately after it
    /// has been accepted").
    pub fn handle_peer_connection(
        &mut self,
        now: Instant,
        relay: RelayId,
        peer: SocketAddr,
        connection: ConnectionId,
        out: &mut [u8],
    ) -> PeerAction {
        if self.connections.contains_key(&connection) {
            return PeerAction::None;
        }
        let Some(slot) = self.table.by_relay(relay) else {
            return PeerAction::None;
        };
        let limit = self.config.quotas.tcp_connections_per_allocation as usize;
        let peer = normalise_addr(peer);
        let Some(alloc) = self.table.get(slot).filter(|a| a.is_live(now) && a.tcp) else {
            return PeerAction::None;
        };
        let ours = alloc.relay(Family::of(peer)) == Some(relay);
        // The peer connected while this allocation's Connect to it is under way (two
        // relays connecting to each other at once, as two TURN clients of one server do):
        // the connection exists, and the relay's own attempt may fail because its
        // 4-tuple is taken. This connection answers the Connect.
        let pending = alloc
            .connections
            .iter()
            .find(|id| {
                self.connections
                    .get(id)
                    .is_some_and(|c| c.peer == peer && matches!(c.state, State::Connecting { .. }))
            })
            .copied();
        if let (true, Some(pending)) = (ours, pending) {
            return self.adopt(now, pending, connection, out);
        }
        let full = limit != 0 && alloc.connections.len() >= limit;
        if !ours || full || !alloc.has_permission(peer.ip(), now) {
            return PeerAction::None;
        }
        let to = alloc.five_tuple;
        let tid = self.random_tid();
        let ty = MessageType::new(Method::CONNECTION_ATTEMPT, Class::Indication);
        let written = MessageWriter::new(out, ty, tid).and_then(|mut w| {
            w.put(&XorPeerAddress(peer))?;
            w.put(&connection)?;
            Ok(w.finish())
        });
        let Ok(n) = written else {
            return PeerAction::None;
        };
        self.await_bind(now, slot, peer, connection);
        PeerAction::ToClient { to, range: 0..n }
    }

    /// Keeps a peer connection that came in (or answered a Connect) until its
    /// ConnectionBind, at most [`CONNECTION_BIND_TIMEOUT`].
    fn await_bind(
        &mut self,
        now: Instant,
        slot: AllocationId,
        peer: SocketAddr,
        connection: ConnectionId,
    ) {
        self.connections.insert(
            connection,
            PeerConnection {
                slot,
                peer,
                state: State::AwaitingBind {
                    until: now + CONNECTION_BIND_TIMEOUT,
                },
            },
        );
        self.table[slot].connections.push(connection);
        self.stats.peer_connections += 1;
        self.schedule_sweep(now);
    }

    /// Answers the Connect `pending` with the peer's own connection `connection` (see
    /// [`TurnServer::handle_peer_connection`]): the Connect success carries its
    /// CONNECTION-ID, the connection waits for its ConnectionBind, and the relay's own
    /// attempt is forgotten (its outcome, when reported, finds nothing and is closed).
    fn adopt(
        &mut self,
        now: Instant,
        pending: ConnectionId,
        connection: ConnectionId,
        out: &mut [u8],
    ) -> PeerAction {
        let Some(conn) = self.connections.get(&pending) else {
            return PeerAction::None;
        };
        let State::Connecting { tid, signer, .. } = conn.state else {
            return PeerAction::None;
        };
        let (slot, peer) = (conn.slot, conn.peer);
        let Some(to) = self.table.get(slot).map(|a| a.five_tuple) else {
            return PeerAction::None;
        };
        let ty = MessageType::new(Method::CONNECT, Class::Success);
        let Ok(n) = self.write_signed(out, ty, tid, &signer, |w| w.put(&connection)) else {
            return PeerAction::None;
        };
        self.forget_connection(pending);
        self.await_bind(now, slot, peer, connection);
        PeerAction::ToClient { to, range: 0..n }
    }

    /// The traffic budget of the user whose allocation the peer data connection
    /// `connection` belongs to, with the limits to charge it against, when budgets are
    /// configured: the runtime charges what it pipes, as the core charges datagrams
    /// ([`crate::budget::UserBudget::charge_stream`]).
    pub fn connection_budget(
        &self,
        connection: ConnectionId,
    ) -> Option<(
        std::sync::Arc<crate::budget::UserBudget>,
        crate::budget::UserLimits,
    )> {
        let conn = self.connections.get(&connection)?;
        let budget = self.table.get(conn.slot)?.budget.clone()?;
        Some((budget, self.config.quotas.user_limits()))
    }

    /// A peer data connection closed (or broke). The runtime closes the client data
    /// connection bound to it, if any. If it was still connecting for a Connect, the
    /// client gets its 447 through [`TurnServer::poll_transmit`] (a runtime should rather
    /// report that with [`TurnServer::handle_peer_connected`]). Unknown ids are ignored.
    pub fn handle_peer_connection_closed(&mut self, now: Instant, connection: ConnectionId) {
        let _ = now;
        if let Some(t) = self.connect_failure(connection) {
            self.transmits.push_back(t);
        }
        self.forget_connection(connection);
    }

    /// The 447 for a connection still connecting, addressed to its control connection.
    fn connect_failure(&self, connection: ConnectionId) -> Option<Transmit> {
        let conn = self.connections.get(&connection)?;
        let State::Connecting { tid, signer, .. } = conn.state else {
            return None;
        };
        let to = self.table.get(conn.slot)?.five_tuple;
        let mut buf = vec![0u8; TCP_MESSAGE_MAX];
        let ty = MessageType::new(Method::CONNECT, Class::Error);
        let n = self
            .write_signed(&mut buf, ty, tid, &signer, |w| {
                w.put(&ErrorCodeAttr::new(
                    ErrorCode::CONNECTION_TIMEOUT_OR_FAILURE,
                ))
            })
            .ok()?;
        buf.truncate(n);
        Some(Transmit { to, message: buf })
    }

    /// Drops a connection from every table (not from the host).
    pub(super) fn forget_connection(&mut self, id: ConnectionId) {
        let Some(conn) = self.connections.remove(&id) else {
            return;
        };
        if let State::Bound { client } = conn.state {
            self.data_clients.remove(&client);
        }
        if let Some(a) = self.table.get_mut(conn.slot) {
            a.connections.retain(|c| *c != id);
        }
    }

    /// Times out Connects (447) and connections that waited too long for their bind.
    pub(super) fn sweep_connections(&mut self, now: Instant, host: &mut impl Host) {
        let policy = &self.config.peers;
        // Expired, or to a peer the policy in force refuses (a reload changed it: a bound
        // connection is piped by the runtime without asking the core, so it is closed).
        let expired: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| {
                policy.check(c.peer).is_err()
                    || match c.state {
                        State::Connecting { until, .. } | State::AwaitingBind { until } => {
                            until <= now
                        }
                        State::Bound { .. } => false,
                    }
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(t) = self.connect_failure(id) {
                self.transmits.push_back(t);
            }
            self.forget_connection(id);
            host.close_peer_connection(id);
        }
    }
}
