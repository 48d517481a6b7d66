//! Stateless nonces: the server keeps nothing per client until a request authenticates.
//!
//! A nonce is `obMatJos2` (the RFC 8489 §9.2 cookie) + 4 characters of security features +
//! base64 of 11 bytes: the expiry (unix seconds, 4 bytes) and the first 7 bytes of
//! HMAC-SHA256(server key, expiry ‖ client IP). 28 characters in all, so the NONCE attribute
//! fills 32 bytes: the 401 a spoofed Allocate gets stays within 3× the request (see
//! `docs/THREAT_MODEL.md`). A 56-bit tag is plenty for what a nonce proves (that this IP
//! got it from us, or from a server sharing our key, lately; the password is checked
//! separately). Checking one is recomputing the MAC: a flood of unauthenticated requests
//! allocates nothing, and any worker — or any server of a fleet sharing the key — can check
//! any nonce.
//!
//! The nonce is bound to the client's IP, not its port, as RFC 5389 §10.2's example nonce
//! (IP and timestamp) was: a browser redirected by a draining server (300, RFC 8489 §10)
//! sends the nonce it had to the sibling, and a home NAT may give that new flow another
//! port; an RFC 6062 data connection reuses its control connection's nonce. Expiry is
//! rounded to 10 s so retransmissions see the same nonce.

use core::net::{IpAddr, SocketAddr};

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use turnpike_stun::nonce_cookie::{NONCE_COOKIE, SecurityFeatures, parse_nonce_cookie};

/// The nonce key of a fleet: derived from its first REST secret, so every server sharing
/// that secret issues and accepts the same nonces (see `TurnServer`'s credentials).
pub fn fleet_nonce_secret(rest_secret: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(rest_secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(b"turnpike nonce key v1");
    mac.finalize().into_bytes().into()
}

/// Length of a nonce this module issues.
pub const NONCE_LEN: usize = 9 + 4 + 15;

/// Bytes of the MAC kept in a nonce.
const TAG_LEN: usize = 7;

/// Bytes encoded after the cookie: the expiry and the tag.
const RAW_LEN: usize = 4 + TAG_LEN;

/// Issues and checks nonces.
#[derive(Clone)]
pub struct NonceKey {
    mac: Hmac<Sha256>,
    features: SecurityFeatures,
}

impl core::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("NonceKey(..)")
    }
}

/// The verdict on a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Ours, for this client, not expired.
    Valid,
    /// Ours but expired, or not ours at all (another key, another client, garbage): the
    /// client gets 438 and a fresh nonce (RFC 8489 §9.2.4).
    Stale,
}

impl NonceKey {
    /// A key from secret bytes (random per process, or shared by a fleet), advertising
    /// `features` in the nonce cookie.
    pub fn new(secret: &[u8], features: SecurityFeatures) -> Self {
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
        Self { mac, features }
    }

    /// The security features advertised.
    pub fn features(&self) -> SecurityFeatures {
        self.features
    }

    fn tag(&self, expiry: u32, client: SocketAddr) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(&expiry.to_be_bytes());
        match client.ip() {
            IpAddr::V4(ip) => mac.update(&ip.octets()),
            IpAddr::V6(ip) => mac.update(&ip.octets()),
        }
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// Issues a nonce for `client`, valid until about `unix_now + lifetime_secs`.
    pub fn issue(&self, client: SocketAddr, unix_now: u64, lifetime_secs: u32) -> String {
        let expiry = ((unix_now + u64::from(lifetime_secs)) / 10 * 10) as u32;
        let mut raw = [0u8; RAW_LEN];
        raw[..4].copy_from_slice(&expiry.to_be_bytes());
        raw[4..].copy_from_slice(&self.tag(expiry, client));
        let mut nonce = String::with_capacity(NONCE_LEN);
        nonce.push_str(NONCE_COOKIE);
        nonce.extend(self.features.encode().iter().map(|&b| char::from(b)));
        STANDARD_NO_PAD.encode_string(raw, &mut nonce);
        nonce
    }

    /// Checks a nonce a client sent back.
    pub fn check(&self, nonce: &str, client: SocketAddr, unix_now: u64) -> NonceCheck {
        if parse_nonce_cookie(nonce) != Some(self.features) {
            return NonceCheck::Stale;
        }
        let Some(body) = nonce.get(NONCE_COOKIE.len() + 4..) else {
            return NonceCheck::Stale;
        };
        let mut raw = [0u8; RAW_LEN];
        match STANDARD_NO_PAD.decode_slice(body, &mut raw) {
            Ok(RAW_LEN) => {}
            _ => return NonceCheck::Stale,
        }
        let expiry = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let tag = self.tag(expiry, client);
        let genuine: bool = turnpike_stun::ct_eq(&tag, &raw[4..]);
        if genuine && u64::from(expiry) >= unix_now {
            NonceCheck::Valid
        } else {
            NonceCheck::Stale
        }
    }
}
