//! Requests as the engine sends them: credentials minted and long-term keys derived once
//! per credential and realm ([`Signer`]), and each step encoded, signed and fingerprinted.

use std::rc::Rc;
use std::time::Instant;

use turnpike_stun::attr::{Lifetime, RequestedTransport, TransportProtocol, XorPeerAddress};
use turnpike_stun::{
    ChannelNumber, Class, EncodeError, IntegrityKey, MessageType, MessageWriter, TransactionId,
};

use super::{CHANNEL, EngineConfig, EngineError, REMINT_AFTER, REQ_MAX, Step};
use crate::client::{Credentials, long_term_key, sign};

/// A minted credential with its prepared long-term key for one realm.
#[derive(Debug)]
pub struct Signer {
    username: String,
    pub(super) realm: String,
    pub(super) key: IntegrityKey,
}

/// Mints credentials and derives long-term keys, once per credential and realm.
#[derive(Debug)]
pub(super) struct SignerCache {
    pub(super) credentials: Credentials,
    pub(super) current: Option<(Rc<Signer>, Instant)>,
}

impl SignerCache {
    pub(super) fn get(&mut self, realm: &str, now: Instant) -> Result<Rc<Signer>, EngineError> {
        if let Some((s, at)) = &self.current {
            let fresh = matches!(self.credentials, Credentials::Static { .. })
                || now.duration_since(*at) < REMINT_AFTER;
            if s.realm == realm && fresh {
                return Ok(Rc::clone(s));
            }
        }
        let (username, password) = self.credentials.username_password();
        let key = long_term_key(&username, realm, &password)?;
        let s = Rc::new(Signer {
            username,
            realm: realm.to_owned(),
            key,
        });
        self.current = Some((Rc::clone(&s), now));
        Ok(s)
    }
}

/// Encodes one request of `step` into `req`.
pub(super) fn encode(
    req: &mut Vec<u8>,
    step: Step,
    tid: TransactionId,
    signer: Option<&Signer>,
    nonce: &str,
    cfg: &EngineConfig,
) -> Result<(), EngineError> {
    let peer = || {
        cfg.peer
            .ok_or_else(|| EngineError::Protocol(format!("{:?} needs a peer", step.method())))
    };
    let enc = |e: EncodeError| EngineError::Protocol(format!("encode: {e:?}"));
    req.resize(REQ_MAX, 0);
    let ty = MessageType::new(step.method(), Class::Request);
    let mut w = MessageWriter::new(req, ty, tid).map_err(enc)?;
    match step {
        Step::Allocate => {
            w.put(&RequestedTransport(TransportProtocol::UDP))
                .map_err(enc)?;
            if let Some(l) = cfg.lifetime {
                w.put(&Lifetime(l)).map_err(enc)?;
            }
        }
        Step::Permission => w.put(&XorPeerAddress(peer()?)).map_err(enc)?,
        Step::ChannelBind => {
            let channel = ChannelNumber::new(CHANNEL).unwrap_or(ChannelNumber::MIN);
            w.put(&channel).map_err(enc)?;
            w.put(&XorPeerAddress(peer()?)).map_err(enc)?;
        }
        Step::Refresh => w.put(&Lifetime(cfg.lifetime.unwrap_or(600))).map_err(enc)?,
        Step::Delete => w.put(&Lifetime(0)).map_err(enc)?,
    }
    if let Some(sg) = signer {
        sign(&mut w, &sg.username, &sg.realm, nonce, &sg.key).map_err(enc)?;
    }
    w.put_fingerprint().map_err(enc)?;
    let n = w.finish();
    req.truncate(n);
    Ok(())
}
