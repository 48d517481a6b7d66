//! TURN REST API credentials (draft-uberti-behave-turn-rest, as restund and coturn use
//! them): username `<unix-expiry>:<user>`, password base64(HMAC-SHA1(secret, username)).
//!
//! # Which field is the expiry
//!
//! The standard order puts the expiry first, but deployments also use `<user>:<expiry>`
//! (the classic example credential `28224511:1379330808`). The rule: split at the first
//! and at the last `:`; a part is a *plausible timestamp* when it is all ASCII digits and
//! its value is between 1 000 000 000 (September 2001) and 99 999 999 999 (10 or 11
//! digits). If the first part is plausible it is the expiry; otherwise, if the last part
//! is, that is the expiry; otherwise the name is not a REST username. So
//! `28224511:1379330808` has the user `28224511` and expires at 1379330808.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// A REST username split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestUsername<'a> {
    /// Unix time (seconds) after which the credential is refused.
    pub expiry: u64,
    /// The user part (used for per-user quotas and logs).
    pub user: &'a str,
}

fn plausible_timestamp(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: u64 = s.parse().ok()?;
    (1_000_000_000..=99_999_999_999).contains(&v).then_some(v)
}

/// Parses a REST username; `None` if neither end is a plausible timestamp.
pub fn parse_rest_username(username: &str) -> Option<RestUsername<'_>> {
    let (first, rest) = username.split_once(':')?;
    if let Some(expiry) = plausible_timestamp(first) {
        return Some(RestUsername { expiry, user: rest });
    }
    let (user, last) = username.rsplit_once(':')?;
    plausible_timestamp(last).map(|expiry| RestUsername { expiry, user })
}

/// The REST password for `username` under `secret`: base64(HMAC-SHA1(secret, username)).
pub fn rest_password(secret: &[u8], username: &str) -> String {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Mints a REST credential: `(username, password)` valid until `expiry` (unix seconds).
pub fn mint(secret: &[u8], user: &str, expiry: u64) -> (String, String) {
    let username = format!("{expiry}:{user}");
    let password = rest_password(secret, &username);
    (username, password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_orders() {
        assert_eq!(
            parse_rest_username("1700000000:alice"),
            Some(RestUsername {
                expiry: 1_700_000_000,
                user: "alice"
            })
        );
        assert_eq!(
            parse_rest_username("alice:1700000000"),
            Some(RestUsername {
                expiry: 1_700_000_000,
                user: "alice"
            })
        );
        assert_eq!(
            parse_rest_username("28224511:1379330808"),
            Some(RestUsername {
                expiry: 1_379_330_808,
                user: "28224511"
            })
        );
        assert_eq!(parse_rest_username("alice"), None);
        assert_eq!(parse_rest_username("alice:bob"), None);
        assert_eq!(parse_rest_username("12:34"), None);
        assert_eq!(
            parse_rest_username("1700000000:a:b"),
            Some(RestUsername {
                expiry: 1_700_000_000,
                user: "a:b"
            })
        );
    }

    #[test]
    fn password_matches_openssl() {
        // printf %s "1379330808:28224511" | openssl dgst -binary -sha1 -hmac secret | base64
        assert_eq!(
            rest_password(b"secret", "1379330808:28224511"),
            "Qqq+TxHQcUbGrWixaXf4bkkEZW0="
        );
    }
}
