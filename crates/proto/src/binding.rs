//! The STUN Binding service (RFC 8489 §6.3): answers a Binding request with the client's
//! reflexive transport address. Sans-IO: a packet and its source in, a response out.

use core::net::SocketAddr;

use turnpike_stun::attr::{ErrorCodeAttr, Software, UnknownAttributes, XorMappedAddress};
use turnpike_stun::{
    AttrType, Class, DecodeError, Demux, Disposition, EncodeError, ErrorCode, Message, MessageType,
    MessageWriter, Method, TransactionId, demux, peek_header,
};

/// At most this many unknown attribute types are listed in one 420 response.
const MAX_UNKNOWN_LISTED: usize = 16;

/// Settings of the Binding service.
#[derive(Debug, Clone, Default)]
pub struct BindingConfig {
    /// SOFTWARE attribute to add to responses; `None` sends none (the default: naming the
    /// server and version only helps an attacker).
    pub software: Option<String>,
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
    /// Malformed, and a 400 would have been larger than the request itself.
    WouldAmplify,
    /// The response did not fit the output buffer.
    NoRoom,
}

/// What to do with one received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Send the first `n` bytes of the output buffer back to the source.
    Send(usize),
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
    /// (which should hold at least 128 bytes plus the SOFTWARE value).
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
            .filter(|&t| !understood(t))
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
        } else {
            self.success(out, tid, source, fingerprint)
        };
        match result {
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
        w.put(&ErrorCodeAttr::new(code))?;
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

/// Whether the Binding service understands an attribute type. Comprehension-optional
/// types are always fine. CHANGE-REQUEST and RESPONSE-PORT are known to the codec but
/// RFC 5780 is not served here, so a client asking for it learns so from a 420
/// (RFC 5780 §7.2).
fn understood(ty: AttrType) -> bool {
    if !ty.is_comprehension_required() {
        return true;
    }
    ty.is_known() && ty != AttrType::CHANGE_REQUEST && ty != AttrType::RESPONSE_PORT
}
