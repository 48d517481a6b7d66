//! What an operator asks of a core: the sessions it holds, ending some of them, revoking
//! a user, draining. None of it is on the packet path: the runtime calls these between
//! packets when its admin interface asks.

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::time::Instant;

use super::{EndReason, TurnServer, quota_user};
use crate::allocation::{Allocation, ClientTransport, FiveTuple, Usage};
use crate::auth::rest::parse_rest_username;
use crate::host::Host;

/// An allocation as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Its number, unique in the process (the core's shard in the top 8 bits).
    pub id: u64,
    /// The USERNAME that made it.
    pub username: Box<str>,
    /// The client's 5-tuple.
    pub five_tuple: FiveTuple,
    /// The relayed addresses the client was given.
    pub relayed: Vec<SocketAddr>,
    /// RFC 6062: TCP relayed addresses.
    pub tcp_relay: bool,
    /// Peer IPs it has a permission for (not expired).
    pub permissions: Vec<IpAddr>,
    /// Channels bound (not expired): number and peer.
    pub channels: Vec<(u16, SocketAddr)>,
    /// Relayed from the client to peers.
    pub to_peer: Usage,
    /// Relayed from peers to the client.
    pub to_client: Usage,
    /// Since it was made.
    pub age: Duration,
    /// Until it expires without a Refresh.
    pub expires_in: Duration,
}

/// Which sessions an operator means; every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Session number.
    pub id: Option<u64>,
    /// A USERNAME as sent, or the user part of TURN REST usernames (`alice` matches
    /// `1700000000:alice`).
    pub user: Option<String>,
    /// A peer IP with a permission or channel.
    pub peer: Option<IpAddr>,
    /// The client's transport.
    pub transport: Option<ClientTransport>,
}

impl SessionFilter {
    fn matches(&self, a: &Allocation, now: Instant) -> bool {
        self.id.is_none_or(|id| a.serial == id)
            && self
                .user
                .as_deref()
                .is_none_or(|u| *a.username == *u || quota_user(&a.username) == u)
            && self.peer.is_none_or(|ip| {
                let ip = crate::policy::normalise(ip);
                a.permissions.iter().any(|p| p.ip == ip && p.expires > now)
                    || a.channels
                        .iter()
                        .any(|c| c.peer.ip() == ip && c.expires > now)
            })
            && self.transport.is_none_or(|t| a.five_tuple.transport == t)
    }
}

/// A revoked user or username: refused with 401 (even with a good password), its live
/// allocations ended, until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// A USERNAME as clients send it (`1700000000:alice`, or a static user), or the user
    /// part of TURN REST usernames (`alice`: every credential minted for her).
    pub name: String,
    /// Unix time the revocation lapses. `None`: for a REST username, its own expiry
    /// (after it the credential is refused anyway); otherwise until lifted.
    pub until: Option<u64>,
}

impl TurnServer {
    /// The sessions `filter` matches, oldest first within the table's order.
    pub fn sessions(&self, now: Instant, filter: &SessionFilter) -> Vec<Session> {
        self.table
            .ids()
            .filter_map(|id| self.table.get(id))
            .filter(|a| a.is_live(now) && filter.matches(a, now))
            .map(|a| Session {
                id: a.serial,
                username: a.username.clone(),
                five_tuple: a.five_tuple,
                relayed: a.relayed.iter().flatten().copied().collect(),
                tcp_relay: a.tcp,
                permissions: a
                    .permissions
                    .iter()
                    .filter(|p| p.expires > now)
                    .map(|p| p.ip)
                    .collect(),
                channels: a
                    .channels
                    .iter()
                    .filter(|c| c.expires > now)
                    .map(|c| (c.number.value(), c.peer))
                    .collect(),
                to_peer: a.to_peer,
                to_client: a.to_client,
                age: now.saturating_duration_since(a.created),
                expires_in: a.expires.saturating_duration_since(now),
            })
            .collect()
    }

    /// Ends the sessions `filter` matches (an empty filter matches all), each with its
    /// accounting record ([`EndReason::Ended`]). Returns how many ended.
    pub fn end_sessions(
        &mut self,
        now: Instant,
        filter: &SessionFilter,
        host: &mut impl Host,
    ) -> usize {
        self.end_where(now, EndReason::Ended, host, |a, now| filter.matches(a, now))
    }

    /// Revokes a user or username: from now on its requests get 401 whatever their
    /// password, and its live allocations end ([`EndReason::Revoked`]). Returns how many
    /// ended. Revoking again replaces the lapse time.
    pub fn revoke(&mut self, now: Instant, revocation: Revocation, host: &mut impl Host) -> usize {
        let until = revocation
            .until
            .or_else(|| parse_rest_username(&revocation.name).map(|r| r.expiry));
        let name: Box<str> = revocation.name.into();
        self.revoked.insert(name.clone(), until);
        self.end_where(now, EndReason::Revoked, host, |a, _| {
            *a.username == *name || quota_user(&a.username) == &*name
        })
    }

    /// Lifts a revocation; whether there was one.
    pub fn unrevoke(&mut self, name: &str) -> bool {
        self.revoked.remove(name).is_some()
    }

    /// The revocations in force at unix time `unix_now`.
    pub fn revocations(&self, unix_now: u64) -> Vec<Revocation> {
        self.revoked
            .iter()
            .filter(|(_, until)| until.is_none_or(|u| u >= unix_now))
            .map(|(name, until)| Revocation {
                name: name.to_string(),
                until: *until,
            })
            .collect()
    }

    /// Whether `username` is revoked at `unix_now`, by itself or by its user part.
    pub(crate) fn is_revoked(&self, username: &str, unix_now: u64) -> bool {
        if self.revoked.is_empty() {
            return false;
        }
        let hit = |name: &str| {
            self.revoked
                .get(name)
                .is_some_and(|until| until.is_none_or(|u| u >= unix_now))
        };
        hit(username) || hit(quota_user(username))
    }

    /// Forgets revocations that lapsed (the sweep calls it).
    pub(crate) fn expire_revocations(&mut self, unix_now: u64) {
        if !self.revoked.is_empty() {
            self.revoked
                .retain(|_, until| until.is_none_or(|u| u >= unix_now));
        }
    }

    /// Starts (true) or stops draining: every new Allocate is answered 300 Try Alternate
    /// with a sibling from `[alternates]`, or 508 Insufficient Capacity where none is
    /// configured for the client's transport and family (RFC 8656 §7.2, RFC 8489 §10).
    /// Existing allocations go on: Refresh, permissions, channels and data as before.
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    /// Whether new Allocates are refused for draining.
    pub fn draining(&self) -> bool {
        self.draining
    }

    fn end_where(
        &mut self,
        now: Instant,
        reason: EndReason,
        host: &mut impl Host,
        which: impl Fn(&Allocation, Instant) -> bool,
    ) -> usize {
        let ids: Vec<_> = self
            .table
            .ids()
            .filter(|&id| self.table.get(id).is_some_and(|a| which(a, now)))
            .collect();
        for &id in &ids {
            self.remove(id, now, reason, host);
        }
        ids.len()
    }

    /// The next session number.
    pub(crate) fn next_serial(&mut self) -> u64 {
        self.serials += 1;
        (u64::from(self.shard) << 56) | (self.serials & ((1 << 56) - 1))
    }
}
