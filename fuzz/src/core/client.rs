//! Clients of the core fuzz targets: a 5-tuple, a credential, and what the client learnt
//! from the server (REALM, NONCE, PASSWORD-ALGORITHMS), with requests built by
//! `MessageWriter` from attributes the fuzzer picks, unsigned or signed with the long-term
//! key (MD5 or SHA-256, RFC 8489 §9.2), so authenticated paths are reached.

use std::net::SocketAddr;

use arbitrary::Arbitrary;
use turnpike_proto::stun::attr::{
    ConnectionId, Lifetime, MobilityTicket, Nonce, PasswordAlgorithm, PasswordAlgorithmId, Realm,
    ReservationToken, Username, XorPeerAddress,
};
use turnpike_proto::stun::{
    AttrType, Class, EncodeError, LongTermKey, Message, MessageType, MessageWriter, Method,
    TransactionId,
};
use turnpike_proto::{ClientTransport, FiveTuple};

/// A client: where it sends from and who it claims to be.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its 5-tuple.
    pub ft: FiveTuple,
    /// USERNAME.
    pub username: String,
    /// The password it signs with.
    pub password: String,
    /// Whether the password is the right one (a request it signs authenticates).
    pub genuine: bool,
    /// REALM learnt from a 401 or 438.
    pub realm: Option<String>,
    /// NONCE learnt from a 401 or 438.
    pub nonce: Option<String>,
    /// PASSWORD-ALGORITHMS as offered (raw value).
    pub offered: Option<Vec<u8>>,
    tid: u64,
}

impl Client {
    /// A client on `ft`.
    pub fn new(ft: FiveTuple, username: &str, password: &str, genuine: bool, seed: u64) -> Self {
        Self {
            ft,
            username: username.to_owned(),
            password: password.to_owned(),
            genuine,
            realm: None,
            nonce: None,
            offered: None,
            tid: seed << 32,
        }
    }

    /// A fresh transaction ID (unique per client, so no answer is taken from the
    /// retransmission cache by accident).
    pub fn next_tid(&mut self) -> TransactionId {
        self.tid += 1;
        let mut t = [0u8; 12];
        t[4..].copy_from_slice(&self.tid.to_be_bytes());
        TransactionId(t)
    }

    /// Whether the client is on TCP or TLS.
    pub fn is_stream(&self) -> bool {
        self.ft.transport != ClientTransport::Udp
    }

    /// Learns REALM, NONCE and PASSWORD-ALGORITHMS from a 401 or 438 answer.
    pub fn learn(&mut self, msg: &Message<&[u8]>) {
        if let Ok(Some(r)) = msg.get::<Realm>() {
            self.realm = Some(r.0.to_owned());
        }
        if let Ok(Some(n)) = msg.get::<Nonce>() {
            self.nonce = Some(n.0.to_owned());
        }
        if let Some(o) = msg.raw(AttrType::PASSWORD_ALGORITHMS) {
            self.offered = Some(o.value.to_vec());
        }
    }
}

/// One attribute of a request, as the fuzzer picks it. Values that must match server
/// state (tokens, tickets, connection ids) are given by index into what was learnt.
#[derive(Debug, Clone, Arbitrary)]
pub enum Attr {
    /// REQUESTED-TRANSPORT UDP.
    TransportUdp,
    /// REQUESTED-TRANSPORT TCP (RFC 6062).
    TransportTcp,
    /// REQUESTED-TRANSPORT with any protocol byte.
    Transport(u8),
    /// LIFETIME.
    Lifetime(u32),
    /// XOR-PEER-ADDRESS of a peer of the peer table.
    Peer(u8),
    /// CHANNEL-NUMBER (RFC 5766 and RFC 8656 ranges and beyond).
    Channel(u16),
    /// CHANNEL-NUMBER from the valid range 0x4000..=0x400F.
    GoodChannel(u8),
    /// EVEN-PORT with the R bit.
    EvenPort(bool),
    /// RESERVATION-TOKEN: one learnt (by index), or any.
    Token(u8),
    /// RESERVATION-TOKEN with any value.
    RawToken([u8; 8]),
    /// REQUESTED-ADDRESS-FAMILY with a family byte (1, 2 or anything).
    RequestedFamily(u8),
    /// ADDITIONAL-ADDRESS-FAMILY with a family byte.
    AdditionalFamily(u8),
    /// DONT-FRAGMENT.
    DontFragment,
    /// DATA of this many bytes.
    Data(u8),
    /// MOBILITY-TICKET: empty (asking for mobility) when no ticket is learnt at the
    /// index, else that ticket.
    Ticket(u8),
    /// CONNECTION-ID learnt (by index).
    Connection(u8),
    /// CONNECTION-ID with any value.
    RawConnection(u32),
    /// Any attribute.
    Raw(u16, Vec<u8>),
}

/// What a request's attributes may refer to.
pub struct Learnt<'a> {
    /// The peer table.
    pub peers: &'a [SocketAddr],
    /// RESERVATION-TOKENs seen in answers.
    pub tokens: &'a [[u8; 8]],
    /// MOBILITY-TICKETs seen in answers.
    pub tickets: &'a [Vec<u8>],
    /// CONNECTION-IDs seen in answers and indications.
    pub connections: &'a [ConnectionId],
}

fn pick<T>(items: &[T], i: u8) -> Option<&T> {
    if items.is_empty() {
        None
    } else {
        items.get(usize::from(i) % items.len())
    }
}

impl Attr {
    fn put(&self, w: &mut MessageWriter<'_>, l: &Learnt<'_>) -> Result<(), EncodeError> {
        match self {
            Self::TransportUdp => w.put_raw(AttrType::REQUESTED_TRANSPORT, &[17, 0, 0, 0]),
            Self::TransportTcp => w.put_raw(AttrType::REQUESTED_TRANSPORT, &[6, 0, 0, 0]),
            Self::Transport(p) => w.put_raw(AttrType::REQUESTED_TRANSPORT, &[*p, 0, 0, 0]),
            Self::Lifetime(s) => w.put(&Lifetime(*s)),
            Self::Peer(i) => match pick(l.peers, *i) {
                Some(p) => w.put(&XorPeerAddress(*p)),
                None => Ok(()),
            },
            Self::Channel(n) => {
                let b = n.to_be_bytes();
                w.put_raw(AttrType::CHANNEL_NUMBER, &[b[0], b[1], 0, 0])
            }
            Self::GoodChannel(n) => w.put_raw(AttrType::CHANNEL_NUMBER, &[0x40, *n & 0x0F, 0, 0]),
            Self::EvenPort(r) => w.put_raw(AttrType::EVEN_PORT, &[if *r { 0x80 } else { 0 }]),
            Self::Token(i) => match pick(l.tokens, *i) {
                Some(t) => w.put(&ReservationToken(*t)),
                None => w.put(&ReservationToken([*i; 8])),
            },
            Self::RawToken(t) => w.put(&ReservationToken(*t)),
            Self::RequestedFamily(f) => {
                w.put_raw(AttrType::REQUESTED_ADDRESS_FAMILY, &[*f, 0, 0, 0])
            }
            Self::AdditionalFamily(f) => {
                w.put_raw(AttrType::ADDITIONAL_ADDRESS_FAMILY, &[*f, 0, 0, 0])
            }
            Self::DontFragment => w.put_raw(AttrType::DONT_FRAGMENT, &[]),
            Self::Data(n) => w.put_raw(AttrType::DATA, &vec![0xD5; usize::from(*n)]),
            Self::Ticket(i) => match pick(l.tickets, *i) {
                Some(t) => w.put(&MobilityTicket(t)),
                None => w.put(&MobilityTicket(&[])),
            },
            Self::Connection(i) => match pick(l.connections, *i) {
                Some(c) => w.put(c),
                None => w.put(&ConnectionId(u32::from(*i))),
            },
            Self::RawConnection(c) => w.put(&ConnectionId(*c)),
            Self::Raw(t, v) => w.put_raw(AttrType(*t), v),
        }
    }
}

/// How a signed request carries its credential.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Signing {
    /// SHA-256 password algorithm (RFC 8489 §9.2.4) instead of MD5.
    pub sha256: bool,
    /// Add FINGERPRINT.
    pub fingerprint: bool,
}

/// Builds a request (or, with `class`, an indication) and says whether it was signed.
/// Attributes that do not fit are left out: the message is always well formed.
pub fn build(
    client: &mut Client,
    method: Method,
    class: Class,
    attrs: &[Attr],
    learnt: &Learnt<'_>,
    signing: Option<Signing>,
) -> (Vec<u8>, bool) {
    let tid = client.next_tid();
    let mut buf = vec![0u8; 4096];
    let Ok(mut w) = MessageWriter::new(&mut buf, MessageType::new(method, class), tid) else {
        return (Vec::new(), false);
    };
    for a in attrs {
        // A value too long for the buffer is skipped; the rest still goes in.
        let _ = a.put(&mut w, learnt);
    }
    let signed = signing.is_some_and(|s| sign(&mut w, client, s));
    if signing.is_some_and(|s| s.fingerprint) {
        let _ = w.put_fingerprint();
    }
    let n = w.finish();
    buf.truncate(n);
    (buf, signed)
}

/// Appends USERNAME, REALM, NONCE, the password-algorithm attributes and the integrity
/// attribute. Without a nonce (or a password the key cannot be derived from) the
/// request goes unsigned (false).
fn sign(w: &mut MessageWriter<'_>, client: &Client, s: Signing) -> bool {
    let Some(nonce) = client.nonce.as_deref() else {
        return false;
    };
    let realm = client.realm.as_deref().unwrap_or("");
    let algorithm = if s.sha256 {
        PasswordAlgorithmId::SHA256
    } else {
        PasswordAlgorithmId::MD5
    };
    let Ok(key) = LongTermKey::derive(algorithm, &client.username, realm, &client.password) else {
        return false;
    };
    let ok = w.put(&Username(&client.username)).is_ok()
        && w.put(&Realm(realm)).is_ok()
        && w.put(&Nonce(nonce)).is_ok();
    if !ok {
        return false;
    }
    if s.sha256 {
        let offered = client.offered.clone().unwrap_or_default();
        w.put_raw(AttrType::PASSWORD_ALGORITHMS, &offered).is_ok()
            && w.put(&PasswordAlgorithm::new(algorithm)).is_ok()
            && w.put_integrity_sha256(&key.integrity_key(), 32).is_ok()
    } else {
        w.put_integrity(&key.integrity_key()).is_ok()
    }
}
