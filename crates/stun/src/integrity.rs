//! MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT over the bytes as they are,
//! and the long-term key derivation of RFC 8489 §9.2.2.
//!
//! Verification never re-encodes a message: it hashes the received bytes with the length
//! field patched, exactly as RFC 8489 §14.5–§14.7 describe, and compares in constant time.

use core::fmt;

use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::attr::PasswordAlgorithmId;

/// The XOR constant of FINGERPRINT, "STUN" in ASCII (RFC 8489 §14.7).
pub const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// Length of a MESSAGE-INTEGRITY value.
pub const SHA1_MAC_LEN: usize = 20;

/// Longest MESSAGE-INTEGRITY-SHA256 value.
pub const SHA256_MAC_LEN: usize = 32;

/// A key for MESSAGE-INTEGRITY and MESSAGE-INTEGRITY-SHA256, with the HMAC inner and outer
/// pad states computed once.
///
/// Building one costs four hash compressions; every message checked or signed with it
/// afterwards saves them. Keep it beside the credential it came from (a cache entry per
/// user, a nonce-lifetime cache, ...). Holds no heap memory.
#[derive(Clone)]
pub struct IntegrityKey {
    sha1: Hmac<Sha1>,
    sha256: Hmac<Sha256>,
}

impl IntegrityKey {
    /// Prepares a key: the short-term password bytes, or a long-term key from
    /// [`LongTermKey`].
    pub fn new(key: &[u8]) -> Self {
        // `new_from_slice` accepts any key length for HMAC: it cannot fail.
        let sha1 = <Hmac<Sha1> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        let sha256 = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        Self { sha1, sha256 }
    }

    /// HMAC-SHA1 over `parts`, concatenated.
    pub(crate) fn sha1(&self, parts: [&[u8]; 3]) -> [u8; SHA1_MAC_LEN] {
        let mut mac = self.sha1.clone();
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// HMAC-SHA256 over `parts`, concatenated.
    pub(crate) fn sha256(&self, parts: [&[u8]; 3]) -> [u8; SHA256_MAC_LEN] {
        let mut mac = self.sha256.clone();
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for IntegrityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IntegrityKey(..)")
    }
}

/// Whether two byte strings are equal, in time that depends only on their lengths (which
/// are public: MAC and token sizes). The one comparison of secrets in the workspace: the
/// codec's integrity checks and the core's nonces, tickets and tokens all use it.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// CRC-32 of `parts` XOR [`FINGERPRINT_XOR`].
pub(crate) fn fingerprint(parts: [&[u8]; 3]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize() ^ FINGERPRINT_XOR
}

/// Why a long-term key could not be derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The realm or password is not valid under the OpaqueString profile (RFC 8265 §4.2),
    /// for instance empty or containing a control character.
    NotOpaqueString,
    /// The algorithm is neither MD5 nor SHA-256.
    UnsupportedAlgorithm,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotOpaqueString => f.write_str("not a valid OpaqueString (RFC 8265)"),
            Self::UnsupportedAlgorithm => f.write_str("unsupported password algorithm"),
        }
    }
}

impl std::error::Error for KeyError {}

/// A long-term credential key (RFC 8489 §9.2.2).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum LongTermKey {
    /// MD5(username ":" OpaqueString(realm) ":" OpaqueString(password)).
    Md5([u8; 16]),
    /// SHA-256 of the same string.
    Sha256([u8; 32]),
}

impl LongTermKey {
    /// Derives the key with the given algorithm (RFC 8489 §9.2.2). The username is used as
    /// received; realm and password are prepared with OpaqueString (RFC 8265 §4.2).
    pub fn derive(
        algorithm: PasswordAlgorithmId,
        username: &str,
        realm: &str,
        password: &str,
    ) -> Result<Self, KeyError> {
        let realm = opaque_string(realm)?;
        let password = opaque_string(password)?;
        let parts: [&[u8]; 5] = [
            username.as_bytes(),
            b":",
            realm.as_bytes(),
            b":",
            password.as_bytes(),
        ];
        match algorithm {
            PasswordAlgorithmId::MD5 => {
                let mut h = Md5::new();
                parts.iter().for_each(|p| h.update(p));
                Ok(Self::Md5(h.finalize().into()))
            }
            PasswordAlgorithmId::SHA256 => {
                let mut h = Sha256::new();
                parts.iter().for_each(|p| h.update(p));
                Ok(Self::Sha256(h.finalize().into()))
            }
            _ => Err(KeyError::UnsupportedAlgorithm),
        }
    }

    /// The key bytes, the HMAC key of MESSAGE-INTEGRITY(-SHA256).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Md5(k) => k,
            Self::Sha256(k) => k,
        }
    }

    /// The prepared HMAC key.
    pub fn integrity_key(&self) -> IntegrityKey {
        IntegrityKey::new(self.as_bytes())
    }
}

impl fmt::Debug for LongTermKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Md5(_) => "LongTermKey::Md5(..)",
            Self::Sha256(_) => "LongTermKey::Sha256(..)",
        })
    }
}

/// USERHASH value: SHA-256(username ":" OpaqueString(realm)) (RFC 8489 §14.4).
pub fn userhash(username: &str, realm: &str) -> Result<[u8; 32], KeyError> {
    let realm = opaque_string(realm)?;
    let mut h = Sha256::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    Ok(h.finalize().into())
}

/// Prepares and enforces a string with the PRECIS OpaqueString profile (RFC 8265 §4.2).
///
/// Printable ASCII is returned as is without allocating: the profile maps nothing there.
pub fn opaque_string(s: &str) -> Result<std::borrow::Cow<'_, str>, KeyError> {
    if !s.is_empty() && s.bytes().all(|b| (0x20..=0x7E).contains(&b)) {
        return Ok(std::borrow::Cow::Borrowed(s));
    }
    use precis_profiles::precis_core::profile::Profile;
    let profile = precis_profiles::OpaqueString::new();
    let prepared = profile.enforce(s).map_err(|_| KeyError::NotOpaqueString)?;
    // Enforcement must be idempotent (RFC 8264 §7): normalisation can produce a code
    // point that is only valid in context (U+0387 becomes U+00B7 MIDDLE DOT, allowed only
    // between two "l"), so the result is checked once more.
    match profile.enforce(prepared.as_ref()) {
        Ok(again) if again == prepared => Ok(prepared),
        _ => Err(KeyError::NotOpaqueString),
    }
}
