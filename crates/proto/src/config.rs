//! The core's configuration: the `turnserver.toml` sections the core reads, as typed
//! values ([`TurnConfig`]), and what only the runtime can give it ([`CoreSetup`]).
//!
//! The file's schema is these types: with the `serde` feature they deserialize straight
//! from their TOML sections (`[turn]`, `[peers]`, `[quotas]`, `[alternates]`, `[stun]`,
//! `[rfc5780]`); a missing key takes the value of the type's `Default`, the one default
//! each option has. A runtime shares one `Arc<TurnConfig>` between its cores and may swap
//! in a new one at run time ([`crate::TurnServer::reconfigure`]).

use core::net::SocketAddr;
use core::time::Duration;
use std::time::Instant;

use crate::allocation::ClientTransport;
use crate::binding::Rfc5780Addresses;
use crate::policy::PeerPolicy;
use crate::quota::Quotas;

/// The sections of the configuration the core reads.
#[derive(Debug, Clone, Default)]
pub struct TurnConfig {
    /// `[turn]`: authentication, lifetimes, optional RFCs.
    pub turn: TurnSection,
    /// `[peers]`: which peers may be relayed to.
    pub peers: PeerPolicy,
    /// `[quotas]`: quotas and the bandwidth cap.
    pub quotas: Quotas,
    /// `[alternates]`: ALTERNATE-SERVER redirection (RFC 8489 §10).
    pub alternates: Alternates,
    /// `[stun]`: the Binding service.
    pub stun: StunSection,
    /// `[rfc5780]`: NAT behaviour discovery for Binding requests received on these
    /// addresses (see [`crate::binding`]); answers that leave from another of them or go
    /// to another port come out as
    /// [`ClientAction::ReplyFrom`](crate::ClientAction::ReplyFrom). `None` (the
    /// default): off, CHANGE-REQUEST and RESPONSE-PORT get 420.
    pub rfc5780: Option<Rfc5780Addresses>,
}

/// `[turn]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct TurnSection {
    /// REALM (RFC 8489 §14.9). Default `turnpike`.
    pub realm: String,
    /// TURN REST shared secrets; all are accepted (rotation). None by default.
    pub secrets: Vec<String>,
    /// Static long-term users. None by default.
    pub users: Vec<StaticUser>,
    /// Longest allocation lifetime granted. Default one hour.
    #[cfg_attr(feature = "serde", serde(rename = "max_lifetime_secs", with = "secs"))]
    pub max_lifetime: Duration,
    /// How long a nonce stays valid. Default 10 minutes.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "nonce_lifetime_secs", with = "secs")
    )]
    pub nonce_lifetime: Duration,
    /// End an allocation when its REST credential expires. Off by default.
    pub strict_expiry: bool,
    /// Refuse channel numbers above 0x4FFF with 400, as RFC 8656 §12 says. Off by default:
    /// RFC 5766 allowed 0x4000..=0x7FFF and deployed clients (coturn's `turnutils_uclient`)
    /// still pick numbers there.
    pub strict_channel_numbers: bool,
    /// RFC 8016 mobility: hand out MOBILITY-TICKETs and let a Refresh carrying one move
    /// its allocation to a new 5-tuple. Off by default (405 Mobility Forbidden).
    pub mobility: bool,
    /// RFC 6062 TCP relays (REQUESTED-TRANSPORT TCP, Connect, ConnectionBind), when the
    /// host supports them too ([`crate::Host::supports_tcp_relay`]). On by default.
    pub tcp_relay: bool,
    /// ICMP Data indications relayed per allocation per second (RFC 8656 §11.5); the
    /// excess is dropped. 0 = unlimited. Default 10.
    pub icmp_per_second: u32,
}

impl Default for TurnSection {
    fn default() -> Self {
        Self {
            realm: "turnpike".into(),
            secrets: Vec::new(),
            users: Vec::new(),
            max_lifetime: Duration::from_secs(3600),
            nonce_lifetime: Duration::from_secs(600),
            strict_expiry: false,
            strict_channel_numbers: false,
            mobility: false,
            tcp_relay: true,
            icmp_per_second: 10,
        }
    }
}

/// One static long-term user (`[turn] users`): a name and either a password or the
/// MD5 long-term key itself.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "UserEntry"))]
pub struct StaticUser {
    /// The username.
    pub name: String,
    /// What proves it.
    pub credential: UserCredential,
}

/// How a static user proves itself.
#[derive(Clone, PartialEq, Eq)]
pub enum UserCredential {
    /// A password (an RFC 8265 OpaqueString): keys for both MD5 and SHA-256 are derived.
    Password(String),
    /// The MD5 long-term key, MD5(name ":" realm ":" password) (RFC 8489 §9.2.2,
    /// RFC 5389 §15.4), as coturn's `turnadmin -k` prints it. Only MESSAGE-INTEGRITY with
    /// the MD5 password algorithm can be checked with it: the SHA-256 key needs the
    /// password, so a client that picks SHA-256 is refused (401).
    Md5Key(Md5Key),
}

/// A 16-byte MD5 long-term key, written `"0x"` and 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Md5Key(pub [u8; 16]);

/// Why a text is not an [`Md5Key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadMd5Key;

impl core::fmt::Display for BadMd5Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("an MD5 key is \"0x\" and 32 hex digits (as `turnadmin -k` prints it)")
    }
}

impl std::error::Error for BadMd5Key {}

impl core::str::FromStr for Md5Key {
    type Err = BadMd5Key;

    fn from_str(text: &str) -> Result<Self, BadMd5Key> {
        let hex = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .ok_or(BadMd5Key)?;
        if hex.len() != 32 || !hex.is_ascii() {
            return Err(BadMd5Key);
        }
        let mut key = [0u8; 16];
        for (byte, pair) in key.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let pair = core::str::from_utf8(pair).map_err(|_| BadMd5Key)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| BadMd5Key)?;
        }
        Ok(Self(key))
    }
}

impl core::fmt::Display for Md5Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("0x")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl core::fmt::Debug for Md5Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // A key is as good as a password: it stays out of logs.
        f.write_str("Md5Key(..)")
    }
}

impl StaticUser {
    /// A user with a password.
    pub fn with_password(name: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            credential: UserCredential::Password(password.into()),
        }
    }

    /// A user with an MD5 long-term key.
    pub fn with_md5_key(name: impl Into<String>, key: Md5Key) -> Self {
        Self {
            name: name.into(),
            credential: UserCredential::Md5Key(key),
        }
    }
}

/// A `[turn] users` entry as written: `{ name, password }` or `{ name, key = "0x…" }`.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    password: Option<String>,
    key: Option<String>,
}

#[cfg(feature = "serde")]
impl TryFrom<UserEntry> for StaticUser {
    type Error = String;

    fn try_from(entry: UserEntry) -> Result<Self, String> {
        match (entry.password, entry.key) {
            (Some(password), None) => Ok(Self::with_password(entry.name, password)),
            (None, Some(key)) => match key.parse() {
                Ok(key) => Ok(Self::with_md5_key(entry.name, key)),
                Err(e @ BadMd5Key) => Err(format!("user {:?}: {e}", entry.name)),
            },
            (Some(_), Some(_)) => Err(format!(
                "user {:?}: give either password or key, not both",
                entry.name
            )),
            (None, None) => Err(format!("user {:?}: needs a password or a key", entry.name)),
        }
    }
}

impl core::fmt::Debug for StaticUser {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The password or key stays out of logs.
        let kind = match self.credential {
            UserCredential::Password(_) => "password",
            UserCredential::Md5Key(_) => "md5 key",
        };
        f.debug_struct("StaticUser")
            .field("name", &self.name)
            .field("credential", &kind)
            .finish()
    }
}

/// `[stun]`: the Binding service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct StunSection {
    /// SOFTWARE in responses; none by default (an empty string is none too).
    pub software: Option<String>,
}

impl StunSection {
    /// The SOFTWARE value to send, if any.
    pub fn software(&self) -> Option<&str> {
        self.software.as_deref().filter(|s| !s.is_empty())
    }
}

/// `[alternates]`: ALTERNATE-SERVER targets, per client transport: a UDP client is
/// redirected to a UDP address, a TLS client to a TLS one. Each list may hold IPv4 and
/// IPv6 addresses; a client only ever gets one of its own family (RFC 8489 §10). Empty
/// lists (the default): never redirect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Alternates {
    /// For clients over UDP.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::addr_syntax::serde_addr::list")
    )]
    pub udp: Vec<SocketAddr>,
    /// For clients over TCP.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::addr_syntax::serde_addr::list")
    )]
    pub tcp: Vec<SocketAddr>,
    /// For clients over TLS.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::addr_syntax::serde_addr::list")
    )]
    pub tls: Vec<SocketAddr>,
    /// ALTERNATE-DOMAIN sent with a 300 to TLS clients (RFC 8489 §14.16): the name the
    /// alternates' certificates are for. None by default.
    pub domain: Option<String>,
    /// Redirect every new Allocate to an alternate (draining); see also
    /// [`TurnServer::set_redirect`](crate::TurnServer::set_redirect). Off by default.
    pub redirect: bool,
}

impl Alternates {
    /// The list for a client transport.
    pub fn for_transport(&self, transport: ClientTransport) -> &[SocketAddr] {
        match transport {
            ClientTransport::Udp => &self.udp,
            ClientTransport::Tcp => &self.tcp,
            ClientTransport::Tls => &self.tls,
        }
    }
}

/// What the runtime gives a core besides the file: keys, time and which core it is.
/// There is no default: the nonce secret keys nonces, reservation tokens and mobility
/// tickets, so it must come from a real random source (or be shared by a fleet).
#[derive(Clone)]
pub struct CoreSetup {
    /// Key of the stateless nonces, RESERVATION-TOKENs and MOBILITY-TICKETs; random per
    /// process unless a fleet shares it. Any length; 32 random bytes are plenty.
    pub nonce_secret: Vec<u8>,
    /// Wall-clock anchor.
    pub time_base: TimeBase,
    /// Seed of the core's random numbers (transaction IDs of Data indications, tokens).
    pub rng_seed: u64,
    /// This core's index among the cores of one runtime (0 to 255). It goes into
    /// MOBILITY-TICKETs, so a ticket that reaches another core is sent back to this one
    /// ([`ClientAction::Forward`](crate::ClientAction::Forward)).
    pub shard: u8,
}

impl core::fmt::Debug for CoreSetup {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The secret stays out of logs.
        f.debug_struct("CoreSetup")
            .field("time_base", &self.time_base)
            .field("shard", &self.shard)
            .finish_non_exhaustive()
    }
}

impl CoreSetup {
    /// A setup with `nonce_secret`, time anchored at `time_base`, seed 0, shard 0.
    pub fn new(nonce_secret: impl Into<Vec<u8>>, time_base: TimeBase) -> Self {
        Self {
            nonce_secret: nonce_secret.into(),
            time_base,
            rng_seed: 0,
            shard: 0,
        }
    }
}

/// A wall-clock anchor: `unix_secs` was the time at `instant`. The core derives the
/// current unix time (for REST credential expiry and nonces) from `now`.
#[derive(Debug, Clone, Copy)]
pub struct TimeBase {
    /// A monotonic instant.
    pub instant: Instant,
    /// Unix seconds at that instant.
    pub unix_secs: u64,
}

/// Durations written as whole seconds (`*_secs` keys).
#[cfg(feature = "serde")]
pub mod secs {
    use core::time::Duration;

    /// Reads whole seconds.
    ///
    /// # Errors
    ///
    /// Not an unsigned integer.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(Duration::from_secs)
    }
}
