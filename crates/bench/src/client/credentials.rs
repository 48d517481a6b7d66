//! Credentials: TURN REST credentials minted from a shared secret or a static username
//! and password, and the long-term key and signature of a request.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use turnpike_stun::attr::{Nonce, PasswordAlgorithmId, Realm, Username};
use turnpike_stun::{EncodeError, IntegrityKey, LongTermKey, MessageWriter};

use super::ClientError;

/// How the client proves who it is.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// TURN REST credentials minted from a shared secret (`<expiry>:<user>`,
    /// base64(HMAC-SHA1(secret, username))), as coturn's `static-auth-secret` and
    /// turnpike's `secrets` accept.
    Rest {
        /// The shared secret.
        secret: String,
        /// The user part of the username.
        user: String,
    },
    /// A fixed username and password (long-term credentials).
    Static {
        /// The username.
        user: String,
        /// The password.
        password: String,
    },
}

impl Credentials {
    /// The username and password to use now (REST credentials expire in one hour).
    pub fn username_password(&self) -> (String, String) {
        match self {
            Self::Rest { secret, user } => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                mint_rest(secret.as_bytes(), user, now + 3600)
            }
            Self::Static { user, password } => (user.clone(), password.clone()),
        }
    }
}

/// Mints a REST credential `(username, password)` valid until `expiry` (unix seconds):
/// username `<expiry>:<user>`, password base64(HMAC-SHA1(secret, username)).
pub fn mint_rest(secret: &[u8], user: &str, expiry: u64) -> (String, String) {
    let username = format!("{expiry}:{user}");
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(username.as_bytes());
    let password = STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

/// The long-term key (MD5) of `username`, `realm` and `password`, ready for
/// MESSAGE-INTEGRITY.
pub(crate) fn long_term_key(
    username: &str,
    realm: &str,
    password: &str,
) -> Result<IntegrityKey, ClientError> {
    LongTermKey::derive(PasswordAlgorithmId::MD5, username, realm, password)
        .map(|k| k.integrity_key())
        .map_err(|e| ClientError::Protocol(format!("key: {e:?}")))
}

/// Signs a request: USERNAME, REALM, NONCE and MESSAGE-INTEGRITY with `key`.
pub(crate) fn sign(
    w: &mut MessageWriter<'_>,
    username: &str,
    realm: &str,
    nonce: &str,
    key: &IntegrityKey,
) -> Result<(), EncodeError> {
    w.put(&Username(username))?;
    w.put(&Realm(realm))?;
    w.put(&Nonce(nonce))?;
    w.put_integrity(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_password_matches_openssl() {
        // printf %s "1379330808:28224511" | openssl dgst -binary -sha1 -hmac secret | base64
        let (u, p) = mint_rest(b"secret", "28224511", 1_379_330_808);
        assert_eq!(u, "1379330808:28224511");
        assert_eq!(p, "Qqq+TxHQcUbGrWixaXf4bkkEZW0=");
    }
}
