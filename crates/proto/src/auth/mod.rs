//! Long-term credentials (RFC 8489 §9.2) for TURN: static users and TURN REST shared
//! secrets, at the same time and with several secrets at once (rotation), stateless
//! nonces, and the RFC 8489 additions (PASSWORD-ALGORITHM(S), MESSAGE-INTEGRITY-SHA256,
//! USERHASH, the nonce cookie). Classic RFC 5389 clients keep working: they ignore what
//! they do not know and get MD5 keys and MESSAGE-INTEGRITY.

pub mod nonce;
pub mod rest;

use core::net::SocketAddr;
use std::collections::HashMap;

use turnpike_stun::attr::{
    Nonce, PasswordAlgorithm, PasswordAlgorithmId, PasswordAlgorithms, Realm, Userhash, Username,
};
use turnpike_stun::nonce_cookie::SecurityFeatures;
use turnpike_stun::{IntegrityKey, IntegrityKind, LongTermKey, Message, userhash};

use self::nonce::{NonceCheck, NonceKey};
use self::rest::{parse_rest_username, rest_password};
use crate::config::{StaticUser, UserCredential};

/// The password algorithms offered in a 401, in order of preference (RFC 8489 §14.11).
pub const OFFERED_ALGORITHMS: [PasswordAlgorithm<'static>; 2] = [
    PasswordAlgorithm::new(PasswordAlgorithmId::SHA256),
    PasswordAlgorithm::new(PasswordAlgorithmId::MD5),
];

/// Why a request did not authenticate; each maps to one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthReject {
    /// No integrity attribute: 401 with REALM, NONCE, PASSWORD-ALGORITHMS.
    Challenge,
    /// Integrity present but USERNAME/USERHASH, REALM or NONCE missing, or the password
    /// algorithm negotiation broken (RFC 8489 §9.2.4): 400.
    BadRequest,
    /// The nonce is expired or not ours: 438 with a fresh one.
    StaleNonce,
    /// The credentials are not good: 401. Why, for logs and metrics (the client is told
    /// no more than 401).
    Unauthenticated(AuthFailure),
}

/// Why credentials were refused (a bounded set: it labels a metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthFailure {
    /// Neither a static user nor a username of the TURN REST form.
    UnknownUser,
    /// A REST credential past its expiry.
    Expired,
    /// The integrity check failed: wrong password, or no secret made this credential.
    BadIntegrity,
    /// The integrity check failed and the request named another realm than ours (the
    /// key is derived with the realm, RFC 8489 §9.2.2, so it cannot match).
    WrongRealm,
    /// A USERHASH that names none of the static users (RFC 8489 §14.4).
    BadUserhash,
    /// The credential is good but the operator revoked it.
    Revoked,
    /// A static user configured with its MD5 key only, and the client picked SHA-256
    /// (RFC 8489 §9.2.2): the SHA-256 key needs the password, which the server does not
    /// have.
    Md5KeyOnly,
    /// The nonce was expired or not ours (answered 438, not 401).
    StaleNonce,
    /// Integrity present but USERNAME, REALM or NONCE missing, or the password
    /// algorithm negotiation broken (answered 400).
    Malformed,
}

impl AuthFailure {
    /// Every reason, in label order.
    pub const ALL: [Self; 9] = [
        Self::UnknownUser,
        Self::Expired,
        Self::BadIntegrity,
        Self::WrongRealm,
        Self::BadUserhash,
        Self::Revoked,
        Self::Md5KeyOnly,
        Self::StaleNonce,
        Self::Malformed,
    ];

    /// A short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::Expired => "expired",
            Self::BadIntegrity => "bad_integrity",
            Self::WrongRealm => "wrong_realm",
            Self::BadUserhash => "bad_userhash",
            Self::Revoked => "revoked",
            Self::Md5KeyOnly => "md5_key_only",
            Self::StaleNonce => "stale_nonce",
            Self::Malformed => "malformed",
        }
    }

    /// Its index in [`AuthFailure::ALL`].
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

impl AuthReject {
    /// The failure a refusal counts as, `None` for the challenge (a client's normal first
    /// step, not a failure).
    pub fn failure(self) -> Option<AuthFailure> {
        match self {
            Self::Challenge => None,
            Self::BadRequest => Some(AuthFailure::Malformed),
            Self::StaleNonce => Some(AuthFailure::StaleNonce),
            Self::Unauthenticated(f) => Some(f),
        }
    }
}

/// A request that proved its credentials.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The USERNAME as sent (or the static user a USERHASH named).
    pub username: String,
    /// The key that verified the request; responses are signed with it.
    pub key: LongTermKey,
    /// `key` prepared for HMAC (kept from the verification, so signing the response
    /// does not prepare it again).
    pub integrity: IntegrityKey,
    /// Which integrity attribute the client used; the response uses the same.
    pub kind: IntegrityKind,
    /// Unix expiry of a REST credential.
    pub expiry: Option<u64>,
}

/// A static user's keys: SHA-256 only when the password is known.
struct UserKeys {
    md5: LongTermKey,
    sha256: Option<LongTermKey>,
}

/// Everything needed to check credentials.
pub struct Credentials {
    realm: String,
    secrets: Vec<Vec<u8>>,
    users: HashMap<String, UserKeys>,
    userhashes: HashMap<[u8; 32], String>,
    nonce: NonceKey,
    nonce_lifetime: u32,
    /// Long-term keys of REST usernames that authenticated lately, so that a client's
    /// next requests (Refresh, CreatePermission, ChannelBind) skip the password HMAC and
    /// the key derivation. Only a key that verified a request gets in, and the map is
    /// emptied when it reaches [`REST_KEY_CACHE`] entries: it cannot grow unbounded.
    rest_keys: HashMap<(String, PasswordAlgorithmId), LongTermKey>,
}

/// Most REST keys kept in [`Credentials`]' cache: the users of the last moments (a
/// client's Allocate, then its CreatePermission and ChannelBind come within a second),
/// small enough to be nothing next to the allocations (~10 KB when full).
const REST_KEY_CACHE: usize = 64;

impl core::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Credentials")
            .field("realm", &self.realm)
            .field("secrets", &self.secrets.len())
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

/// A static user whose password or realm cannot be prepared (RFC 8265 OpaqueString).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadUser(pub String);

impl Credentials {
    /// Prepares credentials: keys of static users are derived once here.
    ///
    /// # Errors
    ///
    /// A static user whose password is not a valid OpaqueString.
    pub fn new(
        realm: String,
        secrets: Vec<Vec<u8>>,
        users: &[StaticUser],
        nonce_secret: &[u8],
        nonce_lifetime_secs: u32,
    ) -> Result<Self, BadUser> {
        let mut map = HashMap::new();
        let mut hashes = HashMap::new();
        for user in users {
            let name = &user.name;
            let keys = match &user.credential {
                UserCredential::Password(password) => {
                    let derive = |alg| {
                        LongTermKey::derive(alg, name, &realm, password)
                            .map_err(|_| BadUser(name.clone()))
                    };
                    UserKeys {
                        md5: derive(PasswordAlgorithmId::MD5)?,
                        sha256: Some(derive(PasswordAlgorithmId::SHA256)?),
                    }
                }
                // The key was made for some realm; if not ours, it simply never verifies.
                UserCredential::Md5Key(key) => UserKeys {
                    md5: LongTermKey::Md5(key.0),
                    sha256: None,
                },
            };
            map.insert(name.clone(), keys);
            if let Ok(h) = userhash(name, &realm) {
                hashes.insert(h, name.clone());
            }
        }
        // USERHASH can only name static users: a REST username cannot be recovered from
        // its hash, so username anonymity is advertised only when static users exist.
        let mut features = SecurityFeatures::PASSWORD_ALGORITHMS;
        if !map.is_empty() {
            features = features.union(SecurityFeatures::USERNAME_ANONYMITY);
        }
        Ok(Self {
            nonce: NonceKey::new(nonce_secret, features),
            realm,
            secrets,
            users: map,
            userhashes: hashes,
            nonce_lifetime: nonce_lifetime_secs,
            rest_keys: HashMap::new(),
        })
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// A fresh nonce for `client`.
    pub fn issue_nonce(&self, client: SocketAddr, unix_now: u64) -> String {
        self.nonce.issue(client, unix_now, self.nonce_lifetime)
    }

    /// Checks a request's long-term credentials, in the order RFC 8489 §9.2.4 gives.
    ///
    /// # Errors
    ///
    /// The [`AuthReject`] that says how to answer.
    pub fn authenticate(
        &mut self,
        msg: &Message<&[u8]>,
        client: SocketAddr,
        unix_now: u64,
    ) -> Result<Authenticated, AuthReject> {
        if !msg.has_integrity() && !msg.has_integrity_sha256() {
            return Err(AuthReject::Challenge);
        }
        let bad = |_| AuthReject::BadRequest;
        let username = msg.get::<Username>().map_err(bad)?;
        let hash = msg.get::<Userhash>().map_err(bad)?;
        let realm = msg.get::<Realm>().map_err(bad)?;
        let nonce = msg.get::<Nonce>().map_err(bad)?;
        let (Some(_), Some(nonce)) = (realm, nonce) else {
            return Err(AuthReject::BadRequest);
        };
        if username.is_none() && hash.is_none() {
            return Err(AuthReject::BadRequest);
        }
        if self.nonce.check(nonce.0, client, unix_now) != NonceCheck::Valid {
            return Err(AuthReject::StaleNonce);
        }
        let algorithm = self.negotiated_algorithm(msg)?;

        let username: String = match (username, hash) {
            (Some(u), _) => u.0.to_owned(),
            (None, Some(h)) => self
                .userhashes
                .get(h.0)
                .cloned()
                .ok_or(AuthReject::Unauthenticated(AuthFailure::BadUserhash))?,
            (None, None) => return Err(AuthReject::BadRequest),
        };

        let realm_differs = realm.is_some_and(|r| r.0 != self.realm);
        let bad_integrity = AuthReject::Unauthenticated(if realm_differs {
            AuthFailure::WrongRealm
        } else {
            AuthFailure::BadIntegrity
        });
        let verify = |key: LongTermKey| {
            let integrity = key.integrity_key();
            msg.verify_integrity(&integrity)
                .ok()
                .map(|kind| (key, integrity, kind))
        };
        if let Some(user) = self.users.get(&username) {
            let key = if algorithm == PasswordAlgorithmId::SHA256 {
                user.sha256
                    .ok_or(AuthReject::Unauthenticated(AuthFailure::Md5KeyOnly))?
            } else {
                user.md5
            };
            let (key, integrity, kind) = verify(key).ok_or(bad_integrity)?;
            return Ok(Authenticated {
                username,
                key,
                integrity,
                kind,
                expiry: None,
            });
        }
        let expiry = parse_rest_username(&username)
            .ok_or(AuthReject::Unauthenticated(AuthFailure::UnknownUser))?
            .expiry;
        if expiry < unix_now {
            return Err(AuthReject::Unauthenticated(AuthFailure::Expired));
        }
        let cache_key = (username, algorithm);
        let cached = self.rest_keys.get(&cache_key).copied();
        let verified = cached.and_then(verify).or_else(|| {
            self.secrets.iter().find_map(|secret| {
                let password = rest_password(secret, &cache_key.0);
                LongTermKey::derive(algorithm, &cache_key.0, &self.realm, &password)
                    .ok()
                    .and_then(verify)
            })
        });
        let Some((key, integrity, kind)) = verified else {
            return Err(bad_integrity);
        };
        if cached.is_none() {
            if self.rest_keys.len() >= REST_KEY_CACHE {
                self.rest_keys.clear();
            }
            self.rest_keys.insert(cache_key.clone(), key);
        }
        Ok(Authenticated {
            expiry: Some(expiry),
            username: cache_key.0,
            key,
            integrity,
            kind,
        })
    }

    /// RFC 8489 §9.2.4: with our nonce cookie's password-algorithms bit set, a request
    /// carries both PASSWORD-ALGORITHMS (exactly as offered) and PASSWORD-ALGORITHM (one
    /// of them), or neither (MD5). Anything else is a bid-down attempt: 400.
    fn negotiated_algorithm(
        &self,
        msg: &Message<&[u8]>,
    ) -> Result<PasswordAlgorithmId, AuthReject> {
        let bad = |_| AuthReject::BadRequest;
        let offered = msg.get::<PasswordAlgorithms>().map_err(bad)?;
        let chosen = msg.get::<PasswordAlgorithm>().map_err(bad)?;
        match (offered, chosen) {
            (None, None) => Ok(PasswordAlgorithmId::MD5),
            (Some(list), Some(alg)) => {
                let same = list.iter().eq(OFFERED_ALGORITHMS.iter().copied());
                if same
                    && alg.params.is_empty()
                    && OFFERED_ALGORITHMS
                        .iter()
                        .any(|o| o.algorithm == alg.algorithm)
                {
                    Ok(alg.algorithm)
                } else {
                    Err(AuthReject::BadRequest)
                }
            }
            _ => Err(AuthReject::BadRequest),
        }
    }
}
