//! Writing answers: signed with the request's key ([`Answer`]), the 401/438 challenge to
//! a request that did not authenticate, and the refusals ([`Reject`]), including 300 Try
//! Alternate with its ALTERNATE-SERVER (RFC 8489 §10).

use core::net::SocketAddr;

use turnpike_stun::attr::{
    AlternateDomain, AlternateServer, ErrorCodeAttr, Nonce, PasswordAlgorithms, Realm, Software,
};
use turnpike_stun::{
    EncodeError, ErrorCode, IntegrityKey, IntegrityKind, LongTermKey, Message, MessageType,
    MessageWriter, TransactionId,
};

use super::{Reject, Request, TurnServer};
use crate::allocation::{ClientTransport, FiveTuple};
use crate::auth::{AuthReject, OFFERED_ALGORITHMS};

/// How to frame and sign one answer: its type and transaction, the key and integrity
/// attribute the request verified with, and whether the request had FINGERPRINT (the
/// answer then has one too).
pub(crate) struct Answer<'k> {
    pub(crate) ty: MessageType,
    pub(crate) tid: TransactionId,
    pub(crate) key: &'k IntegrityKey,
    pub(crate) kind: IntegrityKind,
    pub(crate) fingerprint: bool,
}

/// The key and framing to sign an answer with: the request's, kept for an answer that
/// is written later (RFC 6062 Connect).
#[derive(Clone, Copy)]
pub(crate) struct Signer {
    pub(crate) key: LongTermKey,
    pub(crate) kind: IntegrityKind,
    pub(crate) fingerprint: bool,
}

impl core::fmt::Debug for Signer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("Signer")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// The signer of a request's answers.
    pub(crate) fn of(req: &Request<'_>) -> Self {
        Self {
            key: req.auth.key,
            kind: req.auth.kind,
            fingerprint: req.msg.has_fingerprint(),
        }
    }
}

impl TurnServer {
    /// How to answer `req` with a message of type `ty`.
    pub(crate) fn answer<'r>(&self, req: &'r Request<'_>, ty: MessageType) -> Answer<'r> {
        Answer {
            ty,
            tid: req.tid(),
            key: &req.auth.integrity,
            kind: req.auth.kind,
            fingerprint: req.msg.has_fingerprint(),
        }
    }

    /// Writes an answer: `body`, SOFTWARE, the integrity attribute the client used, and
    /// FINGERPRINT if the request had one.
    pub(crate) fn write_answer(
        &self,
        out: &mut [u8],
        answer: &Answer<'_>,
        body: impl FnOnce(&mut MessageWriter<'_>) -> Result<(), EncodeError>,
    ) -> Result<usize, EncodeError> {
        let mut w = MessageWriter::new(out, answer.ty, answer.tid)?;
        body(&mut w)?;
        if let Some(s) = self.config.stun.software() {
            w.put(&Software(s))?;
        }
        match answer.kind {
            IntegrityKind::Sha1 => w.put_integrity(answer.key)?,
            IntegrityKind::Sha256 { .. } => w.put_integrity_sha256(answer.key, 32)?,
        }
        if answer.fingerprint {
            w.put_fingerprint()?;
        }
        Ok(w.finish())
    }

    /// The success answer to `req` with `body`; a request whose answer cannot be written
    /// is refused with 400.
    pub(crate) fn succeed(
        &self,
        req: &Request<'_>,
        out: &mut [u8],
        body: impl FnOnce(&mut MessageWriter<'_>) -> Result<(), EncodeError>,
    ) -> Result<usize, Reject> {
        self.write_answer(out, &self.answer(req, req.success()), body)
            .map_err(|_| Reject::BadRequest)
    }

    /// [`Self::write_answer`] with a kept [`Signer`].
    pub(crate) fn write_signed(
        &self,
        out: &mut [u8],
        ty: MessageType,
        tid: TransactionId,
        signer: &Signer,
        body: impl FnOnce(&mut MessageWriter<'_>) -> Result<(), EncodeError>,
    ) -> Result<usize, EncodeError> {
        let key = signer.key.integrity_key();
        let answer = Answer {
            ty,
            tid,
            key: &key,
            kind: signer.kind,
            fingerprint: signer.fingerprint,
        };
        self.write_answer(out, &answer, body)
    }

    /// The error answer for a refused request: 300 with an alternate of the client's
    /// transport and family (508 when there is none), else the reason's code.
    pub(crate) fn refuse(
        &mut self,
        req: &Request<'_>,
        out: &mut [u8],
        reject: Reject,
    ) -> Result<usize, EncodeError> {
        let answer = self.answer(req, req.error());
        let counted = if reject == Reject::TryAlternate && !self.has_alternate(&req.from) {
            Reject::InsufficientCapacity
        } else {
            reject
        };
        self.stats.refused[counted.index()] += 1;
        if reject != Reject::TryAlternate {
            return self.write_answer(out, &answer, |w| {
                w.put(&ErrorCodeAttr {
                    code: reject.code(),
                    reason: reject.reason(),
                })
            });
        }
        let Some(alternate) = self.next_alternate(&req.from) else {
            return self.write_answer(out, &answer, |w| {
                w.put(&ErrorCodeAttr::new(ErrorCode::INSUFFICIENT_CAPACITY))
            });
        };
        self.stats.redirected += 1;
        let domain = (req.from.transport == ClientTransport::Tls)
            .then_some(self.config.alternates.domain.as_deref())
            .flatten();
        self.write_answer(out, &answer, |w| {
            w.put(&ErrorCodeAttr::new(ErrorCode::TRY_ALTERNATE))?;
            w.put(&AlternateServer(alternate))?;
            match domain {
                Some(d) => w.put(&AlternateDomain(d)),
                None => Ok(()),
            }
        })
    }

    /// The alternate server for a client, round-robin over those of its transport and
    /// address family (RFC 8489 §10: the ALTERNATE-SERVER "MUST contain an IP address of
    /// the same address family as the source IP address of the request message").
    fn next_alternate(&mut self, from: &FiveTuple) -> Option<SocketAddr> {
        let v4 = from.client.ip().to_canonical().is_ipv4();
        let list = self.config.alternates.for_transport(from.transport);
        let same = |a: &&SocketAddr| a.ip().to_canonical().is_ipv4() == v4;
        let count = list.iter().filter(same).count();
        if count == 0 {
            return None;
        }
        let pick = (self.alternate_turn % count as u64) as usize;
        self.alternate_turn = self.alternate_turn.wrapping_add(1);
        list.iter().filter(same).nth(pick).copied()
    }

    /// Whether a 300 could be sent to this client.
    pub(crate) fn has_alternate(&self, from: &FiveTuple) -> bool {
        let v4 = from.client.ip().to_canonical().is_ipv4();
        self.config
            .alternates
            .for_transport(from.transport)
            .iter()
            .any(|a| a.ip().to_canonical().is_ipv4() == v4)
    }

    /// 401 / 438 / 400 to a request that did not authenticate. 401 and 438 carry REALM,
    /// a fresh NONCE and PASSWORD-ALGORITHMS (RFC 8489 §9.2.4); nothing is signed.
    pub(crate) fn auth_error(
        &self,
        out: &mut [u8],
        msg: &Message<&[u8]>,
        client: SocketAddr,
        unix_now: u64,
        reject: AuthReject,
    ) -> Result<usize, EncodeError> {
        let code = match reject {
            AuthReject::Challenge | AuthReject::Unauthenticated(_) => ErrorCode::UNAUTHENTICATED,
            AuthReject::StaleNonce => ErrorCode::STALE_NONCE,
            AuthReject::BadRequest => ErrorCode::BAD_REQUEST,
        };
        let mut w = MessageWriter::new(out, msg.message_type().error(), msg.transaction_id())?;
        // No reason phrase: the answer goes to an unproven address and must stay small.
        w.put(&ErrorCodeAttr::terse(code))?;
        if reject != AuthReject::BadRequest {
            w.put(&Realm(self.credentials.realm()))?;
            let nonce = self.credentials.issue_nonce(client, unix_now);
            w.put(&Nonce(&nonce))?;
            w.put(&PasswordAlgorithms::List(&OFFERED_ALGORITHMS))?;
        }
        if let Some(s) = self.config.stun.software() {
            w.put(&Software(s))?;
        }
        if msg.has_fingerprint() {
            w.put_fingerprint()?;
        }
        Ok(w.finish())
    }
}
