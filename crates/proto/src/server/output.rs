//! What the core hands back: actions for the runtime, queued transmits, counters, and the
//! reasons a request is refused.

use core::net::SocketAddr;
use core::ops::Range;

use turnpike_stun::ErrorCode;
use turnpike_stun::attr::ConnectionId;

use crate::allocation::FiveTuple;
use crate::host::RelayId;

/// A message the core queued for a client (today only the 447 answer to a Connect whose
/// peer connection timed out); see [`TurnServer::poll_transmit`](crate::TurnServer::poll_transmit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The client's 5-tuple (its control connection).
    pub to: FiveTuple,
    /// The framed STUN message.
    pub message: Vec<u8>,
}

/// What to do after a client packet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum ClientAction {
    /// Nothing.
    None,
    /// Send `out[..n]` back to the client.
    Reply(usize),
    /// A Binding answer under RFC 5780 ([`TurnConfig::rfc5780`](crate::TurnConfig::rfc5780), UDP only): send
    /// `out[..len]` from the server address `from` (one of
    /// [`Rfc5780Addresses::listen_addresses`](crate::Rfc5780Addresses::listen_addresses): use the socket bound there, which may
    /// not be the one the request arrived on) to `to` (the client's IP, with its port or
    /// the RESPONSE-PORT it asked for). Both are canonical (IPv4 as IPv4, never
    /// IPv4-mapped). An answer from the receiving address to the client's own address
    /// stays [`ClientAction::Reply`].
    ReplyFrom {
        /// Length of the response in `out`.
        len: usize,
        /// The server address to send from.
        from: SocketAddr,
        /// The client address to send to.
        to: SocketAddr,
    },
    /// Send `packet[payload]` from relay `relay` to `peer`.
    ToPeer {
        /// The relay socket.
        relay: RelayId,
        /// The peer.
        peer: SocketAddr,
        /// The payload's range in the packet that was handled.
        payload: Range<usize>,
        /// Set DF (DONT-FRAGMENT, RFC 8656 §18.9).
        dont_fragment: bool,
    },
    /// The packet belongs to another core of the runtime: hand it (with its 5-tuple)
    /// to the core whose [`CoreSetup::shard`](crate::CoreSetup::shard) is `shard`, as
    /// if it had arrived there, and on a stream hand that core the connection from this
    /// frame on. The core answers this for a Refresh whose MOBILITY-TICKET another core
    /// issued (RFC 8016: a moved client may reach any core) and for a ConnectionBind
    /// whose CONNECTION-ID another core's host made ([`crate::Host::shard_of`],
    /// RFC 6062 §5.4). Nothing was answered or changed here.
    Forward {
        /// The core to hand the packet to.
        shard: u8,
    },
    /// A ConnectionBind succeeded (RFC 6062 §5.4): send `out[..reply]` (the success
    /// response) on this connection, then stop reading STUN from it and pipe its bytes,
    /// as they come, to and from the peer data connection `connection` (with whatever the
    /// peer sent meanwhile first). Report its end with
    /// [`TurnServer::handle_connection_closed`](crate::TurnServer::handle_connection_closed).
    BindData {
        /// Length of the response in `out`.
        reply: usize,
        /// The peer data connection.
        connection: ConnectionId,
    },
}

/// What to do after a peer datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum PeerAction {
    /// Nothing (no permission, over the bandwidth cap, unknown relay).
    None,
    /// Send `buf[range]` to the client of `to`.
    ToClient {
        /// The allocation's 5-tuple.
        to: FiveTuple,
        /// The framed message in the buffer that was handled.
        range: Range<usize>,
    },
}

/// A reason to refuse a request, mapped to its error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// 300: go to an alternate server (the answer carries ALTERNATE-SERVER).
    TryAlternate,
    /// 400.
    BadRequest,
    /// 400: the channel number is bound (or cooling down) to another peer (RFC 8656
    /// §11.2). Its own reason phrase, because a client that picks numbers at random
    /// (coturn's `turnutils_uclient` does) can hit it by chance and should be able to tell.
    ChannelNumberInUse,
    /// 400: the peer is bound (or cooling down) to another channel number (RFC 8656
    /// §11.2).
    PeerOnAnotherChannel,
    /// 403: peer not allowed by policy.
    Forbidden,
    /// 405: mobility is not enabled (RFC 8016 §3.4).
    MobilityForbidden,
    /// 437: no allocation for this 5-tuple, or one exists already.
    AllocationMismatch,
    /// 440.
    AddressFamilyNotSupported,
    /// 441: not the username that made the allocation.
    WrongCredentials,
    /// 442.
    UnsupportedTransportProtocol,
    /// 443.
    PeerAddressFamilyMismatch,
    /// 446: a connection to that peer exists or is being made (RFC 6062 §5.2).
    ConnectionAlreadyExists,
    /// 447: the connection to the peer failed or timed out (RFC 6062 §5.2).
    ConnectionTimeoutOrFailure,
    /// 486.
    AllocationQuotaReached,
    /// 508.
    InsufficientCapacity,
}

impl Reject {
    /// Every reason, in label order.
    pub const ALL: [Self; 15] = [
        Self::TryAlternate,
        Self::BadRequest,
        Self::ChannelNumberInUse,
        Self::PeerOnAnotherChannel,
        Self::Forbidden,
        Self::MobilityForbidden,
        Self::AllocationMismatch,
        Self::AddressFamilyNotSupported,
        Self::WrongCredentials,
        Self::UnsupportedTransportProtocol,
        Self::PeerAddressFamilyMismatch,
        Self::ConnectionAlreadyExists,
        Self::ConnectionTimeoutOrFailure,
        Self::AllocationQuotaReached,
        Self::InsufficientCapacity,
    ];

    /// Its index in [`Reject::ALL`].
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    /// The STUN error code.
    pub fn code(self) -> ErrorCode {
        match self {
            Self::TryAlternate => ErrorCode::TRY_ALTERNATE,
            Self::BadRequest | Self::ChannelNumberInUse | Self::PeerOnAnotherChannel => {
                ErrorCode::BAD_REQUEST
            }
            Self::Forbidden => ErrorCode::FORBIDDEN,
            Self::MobilityForbidden => ErrorCode::MOBILITY_FORBIDDEN,
            Self::AllocationMismatch => ErrorCode::ALLOCATION_MISMATCH,
            Self::AddressFamilyNotSupported => ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED,
            Self::WrongCredentials => ErrorCode::WRONG_CREDENTIALS,
            Self::UnsupportedTransportProtocol => ErrorCode::UNSUPPORTED_TRANSPORT_PROTOCOL,
            Self::PeerAddressFamilyMismatch => ErrorCode::PEER_ADDRESS_FAMILY_MISMATCH,
            Self::ConnectionAlreadyExists => ErrorCode::CONNECTION_ALREADY_EXISTS,
            Self::ConnectionTimeoutOrFailure => ErrorCode::CONNECTION_TIMEOUT_OR_FAILURE,
            Self::AllocationQuotaReached => ErrorCode::ALLOCATION_QUOTA_REACHED,
            Self::InsufficientCapacity => ErrorCode::INSUFFICIENT_CAPACITY,
        }
    }

    /// The reason phrase: the code's usual one, or what exactly went wrong where the code
    /// alone would leave a client guessing.
    pub fn reason(self) -> &'static str {
        match self {
            Self::ChannelNumberInUse => "Channel number bound to another peer",
            Self::PeerOnAnotherChannel => "Peer bound to another channel number",
            other => other.code().reason(),
        }
    }
}

impl From<turnpike_stun::DecodeError> for Reject {
    fn from(_: turnpike_stun::DecodeError) -> Self {
        Self::BadRequest
    }
}

/// Why an allocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The client deleted it (Refresh with lifetime 0).
    Deleted,
    /// Its lifetime ran out without a Refresh.
    Expired,
    /// Its REST credential ran out (`strict_expiry`).
    CredentialExpired,
    /// The TCP or TLS connection it was made on closed (RFC 8656 §3.1).
    ConnectionClosed,
    /// An operator ended it ([`TurnServer::end_sessions`](crate::TurnServer::end_sessions)).
    Ended,
    /// An operator revoked its user ([`TurnServer::revoke`](crate::TurnServer::revoke)).
    Revoked,
}

impl EndReason {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::Expired => "expired",
            Self::CredentialExpired => "credential expired",
            Self::ConnectionClosed => "connection closed",
            Self::Ended => "ended by operator",
            Self::Revoked => "revoked",
        }
    }
}

/// The accounting record of an allocation that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationRecord {
    /// The USERNAME that made it.
    pub username: Box<str>,
    /// The client's 5-tuple (its last one, for a moved client).
    pub five_tuple: FiveTuple,
    /// The relayed addresses the client was given (one or two families).
    pub relayed: Vec<SocketAddr>,
    /// How long it lived.
    pub duration: core::time::Duration,
    /// Relayed from the client to peers.
    pub to_peer: crate::allocation::Usage,
    /// Relayed from peers to the client.
    pub to_client: crate::allocation::Usage,
    /// Why it ended.
    pub reason: EndReason,
}

/// Something the core reports for the runtime to log or count; see
/// [`TurnServer::poll_event`](crate::TurnServer::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An allocation ended: its accounting record.
    AllocationEnded(Box<AllocationRecord>),
    /// A request's credentials were refused (not the 401 challenge every client gets
    /// first). At most [`MAX_QUEUED_NOTICES`](crate::server::MAX_QUEUED_NOTICES) of these
    /// and [`Event::PeerDenied`] wait at once: a flood cannot grow the queue.
    AuthFailed {
        /// The client's 5-tuple.
        from: FiveTuple,
        /// The USERNAME it sent, if any (cut to 64 bytes).
        username: Option<Box<str>>,
        /// Why.
        reason: crate::auth::AuthFailure,
    },
    /// A peer address was refused by the `[peers]` policy (403).
    PeerDenied {
        /// The client's 5-tuple.
        from: FiveTuple,
        /// The peer it asked for.
        peer: SocketAddr,
        /// The rule that refused it.
        rule: crate::policy::DenyRule,
    },
}
