//! The STUN Binding service (RFC 8489 §6.3): answers a Binding request with the client's
//! reflexive transport address. Sans-IO: a packet and its source in, a response out.
//!
//! # RFC 5780 NAT behaviour discovery (opt-in)
//!
//! With [`BindingConfig::rfc5780`] set, a Binding request that arrived on one of the
//! configured addresses ([`Rfc5780Addresses`]), handed in with
//! [`BindingService::handle_tuple`], is served as RFC 5780 §6.1 says:
//!
//! - the success carries MAPPED-ADDRESS next to XOR-MAPPED-ADDRESS (both the client's
//!   true source address), RESPONSE-ORIGIN (the address the response is sent from) and
//!   OTHER-ADDRESS (the configured address that differs from the receiving one in both
//!   IP and port), with or without any RFC 5780 attribute in the request;
//! - CHANGE-REQUEST picks the response's source among the four addresses (Table 1:
//!   "change IP" swaps A1/A2, "change port" swaps P1/P2);
//! - RESPONSE-PORT sends the response to the client's IP with that port (§7.5);
//! - PADDING in the request is answered with a PADDING of the same length, rounded up to
//!   a multiple of 4 (§6.1, §7.6; see below why not the MTU);
//! - a response that leaves from another address or goes to another port is returned
//!   as [`Response::SendFrom`]; an unchanged one stays [`Response::Send`].
//!
//! Refused with 400: RESPONSE-PORT together with PADDING (§6.1, §7.5, §10), a
//! malformed CHANGE-REQUEST or RESPONSE-PORT, RESPONSE-PORT 0, and over TCP or TLS
//! (when [`Rfc5780Addresses::streams`] is on) RESPONSE-PORT or a CHANGE-REQUEST with a
//! flag set: a connection cannot answer from another address or to another port.
//!
//! Everywhere else (5780 off, a local address outside the set, a stream when `streams`
//! is off, or the address-less [`BindingService::handle`]) the service behaves exactly
//! as without RFC 5780: CHANGE-REQUEST and RESPONSE-PORT are comprehension-required
//! attributes it does not understand, answered with 420 (RFC 5780 §5, §6), and no
//! OTHER-ADDRESS is sent.
//!
//! ## No reflection, no amplification
//!
//! CHANGE-REQUEST and RESPONSE-PORT let a request steer its answer, so with a spoofed
//! source they aim traffic at someone else. The service bounds that:
//! - exactly one response per request, always to the request's source IP (only the
//!   port can change, §7.5), from one of the server's own four addresses;
//! - errors (400, 420) are never redirected: they go back to the request's source, from
//!   the address it arrived on;
//! - without PADDING, a response has a fixed small size (at most 124 bytes plus
//!   SOFTWARE, IPv6 with FINGERPRINT), the usual size of a STUN answer;
//! - PADDING is echoed at the request's own length, never the server's MTU, so a padded
//!   answer exceeds its request by at most that fixed overhead; and PADDING with
//!   RESPONSE-PORT, the combination RFC 5780 §10 calls an amplification attack, is
//!   refused;
//! - nothing is allocated or remembered per request (§10: no memory beyond the
//!   datagram). Rate limiting per source, if wanted, is the runtime's.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use turnpike_stun::attr::{
    ChangeRequest, ErrorCodeAttr, MappedAddress, OtherAddress, Padding, ResponseOrigin,
    ResponsePort, Software, UnknownAttributes, XorMappedAddress,
};
use turnpike_stun::{
    AttrType, Class, DecodeError, Demux, Disposition, EncodeError, ErrorCode, Message, MessageType,
    MessageWriter, Method, TransactionId, demux, peek_header,
};

use crate::allocation::FiveTuple;
use crate::host::Family;

/// Most bytes an error answer of the Binding service may be per byte of its request: it
/// goes to an address nobody proved (UDP sources can be spoofed), so it must not amplify.
pub const MAX_ERROR_AMPLIFICATION: usize = 2;

/// At most this many unknown attribute types are listed in one 420 response.
const MAX_UNKNOWN_LISTED: usize = 16;

/// Bytes every response fits in, SOFTWARE and PADDING aside: a 420 listing 16 types, or
/// an RFC 5780 success with four IPv6 addresses and FINGERPRINT (124 bytes). See
/// [`BindingConfig::max_response_len`].
pub const RESPONSE_OVERHEAD: usize = 128;

/// Settings of the Binding service.
#[derive(Debug, Clone, Default)]
pub struct BindingConfig {
    /// SOFTWARE attribute to add to responses; `None` sends none (the default: naming the
    /// server and version only helps an attacker).
    pub software: Option<String>,
    /// RFC 5780 NAT behaviour discovery on these addresses; `None` (the default) serves
    /// none of it, and CHANGE-REQUEST and RESPONSE-PORT get 420 (RFC 5780 §5).
    pub rfc5780: Option<Rfc5780Addresses>,
}

impl BindingConfig {
    /// The longest response to a request of `request_len` bytes: the output buffer
    /// needs this much. It is [`RESPONSE_OVERHEAD`] plus the SOFTWARE attribute, plus,
    /// with RFC 5780 on, `request_len` (a PADDING echo is never longer than the request).
    /// A response that does not fit is not sent ([`Ignored::NoRoom`]).
    pub fn max_response_len(&self, request_len: usize) -> usize {
        let software = self
            .software
            .as_ref()
            .map_or(0, |s| 4 + s.len().next_multiple_of(4));
        let padding = if self.rfc5780.is_some() {
            request_len
        } else {
            0
        };
        RESPONSE_OVERHEAD + software + padding
    }
}

/// The addresses of RFC 5780 NAT behaviour discovery (RFC 5780 §6): per address family,
/// a primary IP A1 and an alternate IP A2, and, shared by both families, a primary port
/// P1 and an alternate port P2.
///
/// The runtime listens on all four combinations of each configured family, A1:P1,
/// A1:P2, A2:P1 and A2:P2 ([`Rfc5780Addresses::listen_addresses`]), with sockets that
/// tell which of them a datagram arrived on (bound to the exact address, or with
/// `IP_PKTINFO`), and hands that address in as [`FiveTuple::server`]. The primary
/// A1:P1 is normally the server's usual listener (3478); the other three may be
/// dedicated to Binding, as long as every datagram they receive goes through the same
/// entry point ([`BindingService::handle_tuple`] or `TurnServer::handle_client`).
///
/// A family whose two IPs are equal, unspecified, multicast or (IPv6) IPv4-mapped is
/// ignored, and so is everything when a port is 0 or both ports are equal;
/// [`Rfc5780Addresses::validate`] tells which, for refusing such a configuration at
/// startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "Rfc5780Section"))]
pub struct Rfc5780Addresses {
    /// P1.
    pub primary_port: u16,
    /// P2.
    pub alternate_port: u16,
    /// (A1, A2) for IPv4 clients; `None`: IPv4 clients are served as without RFC 5780.
    pub v4: Option<(Ipv4Addr, Ipv4Addr)>,
    /// (A1, A2) for IPv6 clients; `None`: IPv6 clients are served as without RFC 5780.
    pub v6: Option<(Ipv6Addr, Ipv6Addr)>,
    /// Also serve requests over TCP and TLS whose local address is one of these (the
    /// runtime then accepts that transport on all four addresses, RFC 5780 §6). Over a
    /// stream only OTHER-ADDRESS, RESPONSE-ORIGIN, MAPPED-ADDRESS and PADDING apply;
    /// RESPONSE-PORT and a CHANGE-REQUEST with a flag set get 400. Off by default: the
    /// usual TCP listener on A1:P1 alone must not advertise an OTHER-ADDRESS nobody
    /// accepts connections on.
    pub streams: bool,
}

/// Why an [`Rfc5780Addresses`] serves less than it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rfc5780Error {
    /// Neither family is configured.
    NoAddresses,
    /// A port is 0, or the two ports are equal.
    BadPorts,
    /// The two IPs of this family are equal, unspecified, multicast or IPv4-mapped.
    BadIps(Family),
}

impl fmt::Display for Rfc5780Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoAddresses => f.write_str("RFC 5780: no IPv4 or IPv6 addresses"),
            Self::BadPorts => f.write_str("RFC 5780: the two ports must differ and not be 0"),
            Self::BadIps(Family::V4) => f.write_str(
                "RFC 5780: the two IPv4 addresses must differ and be unicast and specified",
            ),
            Self::BadIps(Family::V6) => f.write_str(
                "RFC 5780: the two IPv6 addresses must differ and be unicast, specified \
                 and not IPv4-mapped",
            ),
        }
    }
}

impl std::error::Error for Rfc5780Error {}

/// The addresses around one local address of the set: Da, Dp (where the request
/// arrived) and Ca, Cp (the other ones), RFC 5780 §6.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quad {
    da: IpAddr,
    ca: IpAddr,
    dp: u16,
    cp: u16,
}

impl Quad {
    /// The response's source for these CHANGE-REQUEST flags (RFC 5780 §6.1, Table 1).
    fn source(&self, change: ChangeRequest) -> SocketAddr {
        let ip = if change.change_ip { self.ca } else { self.da };
        let port = if change.change_port { self.cp } else { self.dp };
        SocketAddr::new(ip, port)
    }

    /// OTHER-ADDRESS: Ca:Cp whatever the flags (RFC 5780 §6.1).
    fn other(&self) -> SocketAddr {
        SocketAddr::new(self.ca, self.cp)
    }
}

impl Rfc5780Addresses {
    /// Checks the configuration: `Ok` when every configured family is served.
    ///
    /// # Errors
    ///
    /// The first problem found; the core ignores what it names (see the type's docs).
    pub fn validate(&self) -> Result<(), Rfc5780Error> {
        if self.v4.is_none() && self.v6.is_none() {
            return Err(Rfc5780Error::NoAddresses);
        }
        if !self.ports_ok() {
            return Err(Rfc5780Error::BadPorts);
        }
        if self.v4.is_some() && self.pair(Family::V4).is_none() {
            return Err(Rfc5780Error::BadIps(Family::V4));
        }
        if self.v6.is_some() && self.pair(Family::V6).is_none() {
            return Err(Rfc5780Error::BadIps(Family::V6));
        }
        Ok(())
    }

    /// The addresses the runtime listens on: A1:P1, A1:P2, A2:P1, A2:P2 of IPv4, then of
    /// IPv6, for each family that is configured and valid.
    pub fn listen_addresses(&self) -> Vec<SocketAddr> {
        let mut all = Vec::with_capacity(8);
        if !self.ports_ok() {
            return all;
        }
        for family in [Family::V4, Family::V6] {
            if let Some((a1, a2)) = self.pair(family) {
                for ip in [a1, a2] {
                    for port in [self.primary_port, self.alternate_port] {
                        all.push(SocketAddr::new(ip, port));
                    }
                }
            }
        }
        all
    }

    /// Whether `local` is one of the [`Rfc5780Addresses::listen_addresses`]
    /// (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, local: SocketAddr) -> bool {
        self.quad(local).is_some()
    }

    /// OTHER-ADDRESS for a request received on `local`: the address that differs from it
    /// in both IP and port. `None` when `local` is not in the set.
    pub fn other_address(&self, local: SocketAddr) -> Option<SocketAddr> {
        self.quad(local).map(|q| q.other())
    }

    /// The source of the response to a request received on `local` with these
    /// CHANGE-REQUEST flags (RFC 5780 §6.1, Table 1). `None` when `local` is not in the
    /// set.
    pub fn response_source(
        &self,
        local: SocketAddr,
        change_ip: bool,
        change_port: bool,
    ) -> Option<SocketAddr> {
        self.quad(local).map(|q| {
            q.source(ChangeRequest {
                change_ip,
                change_port,
            })
        })
    }

    fn ports_ok(&self) -> bool {
        self.primary_port != 0
            && self.alternate_port != 0
            && self.primary_port != self.alternate_port
    }

    /// A1 and A2 of a family, if configured and valid.
    fn pair(&self, family: Family) -> Option<(IpAddr, IpAddr)> {
        let (a1, a2) = match family {
            Family::V4 => self.v4.map(|(a, b)| (IpAddr::V4(a), IpAddr::V4(b)))?,
            Family::V6 => self.v6.map(|(a, b)| (IpAddr::V6(a), IpAddr::V6(b)))?,
        };
        let usable = |ip: IpAddr| {
            !ip.is_unspecified()
                && !ip.is_multicast()
                && match ip {
                    IpAddr::V4(v4) => !v4.is_broadcast(),
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().is_none(),
                }
        };
        (a1 != a2 && usable(a1) && usable(a2)).then_some((a1, a2))
    }

    /// Da, Ca, Dp, Cp for a local address of the set.
    fn quad(&self, local: SocketAddr) -> Option<Quad> {
        if !self.ports_ok() {
            return None;
        }
        let ip = local.ip().to_canonical();
        let family = if ip.is_ipv4() { Family::V4 } else { Family::V6 };
        let (a1, a2) = self.pair(family)?;
        let ca = if ip == a1 {
            a2
        } else if ip == a2 {
            a1
        } else {
            return None;
        };
        let cp = if local.port() == self.primary_port {
            self.alternate_port
        } else if local.port() == self.alternate_port {
            self.primary_port
        } else {
            return None;
        };
        Some(Quad {
            da: ip,
            ca,
            dp: local.port(),
            cp,
        })
    }
}

/// Why a packet got no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Not a STUN message (or one that failed to decode in a way that is never answered).
    NotStun(DecodeError),
    /// FINGERPRINT present and wrong (RFC 8489 §7.3: not STUN after all).
    BadFingerprint,
    /// An indication (a Binding indication is a keepalive, RFC 8489 §6.3.2) or a response.
    NotARequest,
    /// Malformed, and a 400 would have been larger than the request itself; or an error
    /// answer (420, 400) would have been more than [`MAX_ERROR_AMPLIFICATION`] times it.
    WouldAmplify,
    /// The response did not fit the output buffer.
    NoRoom,
}

/// What to do with one received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Send the first `n` bytes of the output buffer back to the source.
    Send(usize),
    /// RFC 5780 only ([`BindingService::handle_tuple`] over UDP): send the first `len`
    /// bytes of the output buffer from the local address `from` to `to`. `from` is one of
    /// [`Rfc5780Addresses::listen_addresses`] (send with the socket bound there), `to`
    /// is the request's source IP with its source port or the RESPONSE-PORT. Both are
    /// canonical: IPv4 as IPv4, never IPv4-mapped. Returned only when `from` is not the
    /// address the request arrived on or `to` is not its source; otherwise the answer is
    /// a plain [`Response::Send`].
    SendFrom {
        /// Length of the response in the output buffer.
        len: usize,
        /// The server address to send from (RESPONSE-ORIGIN).
        from: SocketAddr,
        /// The client address to send to.
        to: SocketAddr,
    },
    /// Send nothing.
    Ignore(Ignored),
}

/// The Binding responder. Holds only configuration: every call is independent, so
/// unauthenticated traffic creates no state.
#[derive(Debug, Clone, Default)]
pub struct BindingService {
    config: BindingConfig,
}

impl BindingService {
    /// A responder with the given configuration.
    pub fn new(config: BindingConfig) -> Self {
        Self { config }
    }

    /// Handles one packet received from `source` and writes any response into `out`
    /// (which should hold at least 128 bytes plus the SOFTWARE value). It knows not where
    /// the packet arrived, so it never serves RFC 5780 (see
    /// [`BindingService::handle_tuple`]) and never returns [`Response::SendFrom`].
    ///
    /// Rules, in order:
    /// - not STUN by its first byte, header or framing: ignored;
    /// - a request with malformed attributes: 400, but only if the answer is no larger
    ///   than the request (no amplification of garbage);
    /// - FINGERPRINT present and wrong: ignored (RFC 8489 §7.3);
    /// - indications and responses: ignored;
    /// - comprehension-required attributes the server does not understand: 420 with
    ///   UNKNOWN-ATTRIBUTES (RFC 8489 §6.3.1.1);
    /// - a request for another method: 400 (this service relays nothing);
    /// - a Binding request: success with XOR-MAPPED-ADDRESS.
    ///
    /// FINGERPRINT is added to a response when the request carried one.
    pub fn handle(&self, packet: &[u8], source: SocketAddr, out: &mut [u8]) -> Response {
        self.respond(packet, source, None, out)
    }

    /// Handles one packet received on a 5-tuple: from `from.client`, on the local address
    /// `from.server`, over `from.transport`. As [`BindingService::handle`], and in
    /// addition serves RFC 5780 (see the module docs) when it is configured and
    /// `from.server` is one of its addresses (over TCP and TLS only with
    /// [`Rfc5780Addresses::streams`]). `out` needs
    /// [`BindingConfig::max_response_len`] bytes.
    pub fn handle_tuple(&self, packet: &[u8], from: FiveTuple, out: &mut [u8]) -> Response {
        let served = self.config.rfc5780.as_ref().and_then(|addrs| {
            let stream = from.transport.is_stream();
            if stream && !addrs.streams {
                return None;
            }
            let quad = addrs.quad(from.server)?;
            Some(Served { quad, stream })
        });
        self.respond(packet, from.client, served, out)
    }

    fn respond(
        &self,
        packet: &[u8],
        source: SocketAddr,
        served: Option<Served>,
        out: &mut [u8],
    ) -> Response {
        if demux(packet) != Demux::Stun {
            return Response::Ignore(Ignored::NotStun(DecodeError::NotStun));
        }
        let msg = match Message::new_checked(packet) {
            Ok(msg) => msg,
            Err(err) => return self.malformed(packet, err, out),
        };
        if msg.verify_fingerprint().is_err() {
            return Response::Ignore(Ignored::BadFingerprint);
        }
        let ty = msg.message_type();
        if ty.class != Class::Request {
            return Response::Ignore(Ignored::NotARequest);
        }
        let tid = msg.transaction_id();
        let fingerprint = msg.has_fingerprint();

        let mut unknown = [AttrType(0); MAX_UNKNOWN_LISTED];
        let mut n_unknown = 0;
        for ty in msg
            .effective_attributes()
            .map(|a| a.ty)
            .filter(|&t| !understood(t, served.is_some()))
        {
            if n_unknown < MAX_UNKNOWN_LISTED && !unknown[..n_unknown].contains(&ty) {
                unknown[n_unknown] = ty;
                n_unknown += 1;
            }
        }
        let result = if n_unknown > 0 {
            self.error(
                out,
                ty,
                tid,
                ErrorCode::UNKNOWN_ATTRIBUTE,
                Some(&unknown[..n_unknown]),
                fingerprint,
            )
        } else if ty.method != Method::BINDING {
            self.error(out, ty, tid, ErrorCode::BAD_REQUEST, None, fingerprint)
        } else if let Some(served) = served {
            match plan(&msg, source, served) {
                Some(plan) => {
                    return match self.success_5780(out, tid, source, &plan, fingerprint) {
                        Ok(n) => plan.response(n, source),
                        Err(_) => Response::Ignore(Ignored::NoRoom),
                    };
                }
                None => self.error(out, ty, tid, ErrorCode::BAD_REQUEST, None, fingerprint),
            }
        } else {
            self.success(out, tid, source, fingerprint)
        };
        match result {
            // An error answer goes to an address nobody proved: never more than twice
            // the request (a success is as large as RFC 8489 makes it).
            Ok(n) if n_unknown > 0 || ty.method != Method::BINDING => {
                if n <= packet.len() * MAX_ERROR_AMPLIFICATION {
                    Response::Send(n)
                } else {
                    Response::Ignore(Ignored::WouldAmplify)
                }
            }
            Ok(n) => Response::Send(n),
            Err(_) => Response::Ignore(Ignored::NoRoom),
        }
    }

    fn malformed(&self, packet: &[u8], err: DecodeError, out: &mut [u8]) -> Response {
        let header = peek_header(packet);
        let (Disposition::BadRequest, Some((ty, tid))) = (err.disposition(), header) else {
            return Response::Ignore(Ignored::NotStun(err));
        };
        if ty.class != Class::Request {
            return Response::Ignore(Ignored::NotStun(err));
        }
        match self.error(out, ty, tid, ErrorCode::BAD_REQUEST, None, false) {
            Ok(n) if n <= packet.len() => Response::Send(n),
            Ok(_) => Response::Ignore(Ignored::WouldAmplify),
            Err(_) => Response::Ignore(Ignored::NoRoom),
        }
    }

    fn success(
        &self,
        out: &mut [u8],
        tid: TransactionId,
        source: SocketAddr,
        fingerprint: bool,
    ) -> Result<usize, EncodeError> {
        // A v4 client reached through a dual-stack socket shows up as ::ffff:a.b.c.d;
        // report the address it actually has.
        let source = SocketAddr::new(source.ip().to_canonical(), source.port());
        let mut w = MessageWriter::new(out, MessageType::BINDING_SUCCESS, tid)?;
        w.put(&XorMappedAddress(source))?;
        self.finish(w, fingerprint)
    }

    /// An RFC 5780 success (§6.1): XOR-MAPPED-ADDRESS and MAPPED-ADDRESS (the true
    /// source), RESPONSE-ORIGIN, OTHER-ADDRESS, and PADDING when asked for.
    fn success_5780(
        &self,
        out: &mut [u8],
        tid: TransactionId,
        source: SocketAddr,
        plan: &Plan,
        fingerprint: bool,
    ) -> Result<usize, EncodeError> {
        let source = SocketAddr::new(source.ip().to_canonical(), source.port());
        let mut w = MessageWriter::new(out, MessageType::BINDING_SUCCESS, tid)?;
        w.put(&XorMappedAddress(source))?;
        w.put(&MappedAddress(source))?;
        w.put(&ResponseOrigin(plan.from))?;
        w.put(&OtherAddress(plan.other))?;
        if let Some(len) = plan.padding {
            w.put_with(AttrType::PADDING, len, |v| v.fill(0))?;
        }
        self.finish(w, fingerprint)
    }

    fn error(
        &self,
        out: &mut [u8],
        request: MessageType,
        tid: TransactionId,
        code: ErrorCode,
        unknown: Option<&[AttrType]>,
        fingerprint: bool,
    ) -> Result<usize, EncodeError> {
        let mut w = MessageWriter::new(out, request.error(), tid)?;
        // No reason phrase: the answer goes to an unproven address and must stay small.
        w.put(&ErrorCodeAttr::terse(code))?;
        if let Some(list) = unknown {
            w.put(&UnknownAttributes::List(list))?;
        }
        self.finish(w, fingerprint)
    }

    fn finish(&self, mut w: MessageWriter<'_>, fingerprint: bool) -> Result<usize, EncodeError> {
        if let Some(software) = &self.config.software {
            w.put(&Software(software))?;
        }
        if fingerprint {
            w.put_fingerprint()?;
        }
        Ok(w.finish())
    }
}

/// RFC 5780 applies to this request: where it arrived, and whether over a stream.
#[derive(Debug, Clone, Copy)]
struct Served {
    quad: Quad,
    stream: bool,
}

/// How an RFC 5780 success is sent and what it says.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Where the request arrived (Da:Dp).
    local: SocketAddr,
    /// The response's source (RESPONSE-ORIGIN).
    from: SocketAddr,
    /// The response's destination.
    to: SocketAddr,
    /// OTHER-ADDRESS.
    other: SocketAddr,
    /// Length of the PADDING value to send.
    padding: Option<usize>,
}

impl Plan {
    fn response(&self, len: usize, source: SocketAddr) -> Response {
        let source = SocketAddr::new(source.ip().to_canonical(), source.port());
        if self.from == self.local && self.to == source {
            Response::Send(len)
        } else {
            Response::SendFrom {
                len,
                from: self.from,
                to: self.to,
            }
        }
    }
}

/// The RFC 5780 part of a Binding request (§6.1, §7.2, §7.5, §7.6): `None` for a 400.
fn plan(msg: &Message<&[u8]>, source: SocketAddr, served: Served) -> Option<Plan> {
    let change = msg.get::<ChangeRequest>().ok()?.unwrap_or_default();
    let port = msg.get::<ResponsePort>().ok()?;
    // PADDING's value is free-form; the answer's is as long, rounded up to 4 (§7.6).
    let padding = msg
        .get::<Padding>()
        .ok()?
        .map(|p| p.0.len().next_multiple_of(4));
    // "If the Request also contains the RESPONSE-PORT attribute the server MUST return an
    // error response of type 400" (§6.1); §10: this prevents an amplification attack.
    if port.is_some() && padding.is_some() {
        return None;
    }
    // A connection answers on itself: no other source, no other port.
    if served.stream && (port.is_some() || change.change_ip || change.change_port) {
        return None;
    }
    // Nothing can be sent to port 0.
    if port == Some(ResponsePort(0)) {
        return None;
    }
    let ip = source.ip().to_canonical();
    Some(Plan {
        local: SocketAddr::new(served.quad.da, served.quad.dp),
        from: served.quad.source(change),
        // "transmitted to the source IP address of the Binding Request and the port
        // contained in RESPONSE-PORT" (§7.5).
        to: SocketAddr::new(ip, port.map_or_else(|| source.port(), |p| p.0)),
        other: served.quad.other(),
        padding,
    })
}

/// Whether the Binding service understands an attribute type. Comprehension-optional
/// types are always fine. CHANGE-REQUEST and RESPONSE-PORT are known to the codec but
/// understood only where RFC 5780 is served; elsewhere a client asking for it learns
/// so from a 420 (RFC 5780 §5, §6).
fn understood(ty: AttrType, rfc5780: bool) -> bool {
    if !ty.is_comprehension_required() {
        return true;
    }
    ty.is_known() && (rfc5780 || (ty != AttrType::CHANGE_REQUEST && ty != AttrType::RESPONSE_PORT))
}

/// `[rfc5780]` as written in the file: two IPv4 and/or two IPv6 addresses of this host
/// (primary, alternate) and the two ports; it becomes an [`Rfc5780Addresses`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Rfc5780Section {
    /// A1 and A2 of one or both families.
    pub ips: Vec<IpAddr>,
    /// P1 and P2.
    pub ports: [u16; 2],
    /// Serve it over TCP and TLS too (see [`Rfc5780Addresses::streams`]). Off by default.
    #[cfg_attr(feature = "serde", serde(default))]
    pub streams: bool,
}

impl TryFrom<Rfc5780Section> for Rfc5780Addresses {
    type Error = String;

    fn try_from(r: Rfc5780Section) -> Result<Self, String> {
        let v4: Vec<_> = r
            .ips
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            })
            .collect();
        let v6: Vec<_> = r
            .ips
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V6(v6) => Some(*v6),
                IpAddr::V4(_) => None,
            })
            .collect();
        let pair = |n: usize| n == 0 || n == 2;
        if !pair(v4.len()) || !pair(v6.len()) || r.ips.is_empty() {
            return Err(
                "ips must hold two IPv4 and/or two IPv6 addresses of this host (primary, alternate)"
                    .into(),
            );
        }
        let set = Self {
            primary_port: r.ports[0],
            alternate_port: r.ports[1],
            v4: (v4.len() == 2).then(|| (v4[0], v4[1])),
            v6: (v6.len() == 2).then(|| (v6[0], v6[1])),
            streams: r.streams,
        };
        set.validate().map_err(|e| e.to_string())?;
        Ok(set)
    }
}
