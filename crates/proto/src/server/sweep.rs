//! Time and teardown: the once-a-second sweep that removes what expired, a client
//! connection that closed, and the one place an allocation is torn down ([`TurnServer::remove`]).

use std::time::Instant;

use super::{
    AllocationRecord, CHANNEL_COOLDOWN, EndReason, Event, SWEEP_INTERVAL, TurnServer, quota_user,
};
use crate::allocation::FiveTuple;
use crate::host::Host;
use crate::table::{AllocationId, trim_map};

impl TurnServer {
    /// The next thing the core reports (an allocation's accounting record when it ends),
    /// if any. Call after any handler until it returns `None`; the queue holds one entry
    /// per allocation ended since.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether [`TurnServer::poll_event`] has something.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Expires allocations, permissions, channels, reservations and cached responses.
    pub fn handle_timeout(&mut self, now: Instant, host: &mut impl Host) {
        match self.next_sweep {
            Some(t) if t <= now => {}
            _ => return,
        }
        for id in self.table.ids() {
            let a = &mut self.table[id];
            a.permissions.retain(|p| p.expires > now);
            a.channels.retain(|c| c.expires + CHANNEL_COOLDOWN > now);
            if a.cached.as_ref().is_some_and(|c| c.until <= now) {
                a.cached = None;
            }
            let live = a.is_live(now);
            if live {
                self.sync_offload(id, now, host);
            } else {
                // A lifetime capped by the credential ends with the credential.
                let a = &self.table[id];
                let reason = match a.credential_expires {
                    Some(c) if c <= now && c <= a.expires => EndReason::CredentialExpired,
                    _ => EndReason::Expired,
                };
                self.remove(id, now, reason, host);
            }
        }
        if self.reservations_until.is_some() {
            host.expire_reservations(now);
            self.reservations_until = self.reservations_until.filter(|&u| u > now);
        }
        self.table.expire_answers(now);
        let unix_now = self.unix_now(now);
        self.expire_revocations(unix_now);
        self.sweep_connections(now, host);
        // Give memory back once a table is mostly empty (an idle server holds nothing).
        self.table.trim();
        trim_map(&mut self.connections);
        trim_map(&mut self.data_clients);
        let busy = !self.table.is_idle()
            || self.reservations_until.is_some()
            || !self.connections.is_empty();
        self.next_sweep = busy.then(|| now + SWEEP_INTERVAL);
    }

    /// A TCP or TLS client connection closed. If an allocation was made over it, the
    /// allocation is deleted, with its relays, its quota slot and its peer data
    /// connections (RFC 8656 §3.1 and §5: over TCP or TLS the allocation lives as long
    /// as the connection it was made on; RFC 6062 §5.5). If it was
    /// an RFC 6062 client data connection, its peer data connection is closed
    /// ([`Host::close_peer_connection`]). Anything else does nothing.
    pub fn handle_connection_closed(
        &mut self,
        now: Instant,
        five_tuple: FiveTuple,
        host: &mut impl Host,
    ) {
        if let Some(id) = self.table.by_five_tuple(&five_tuple) {
            self.remove(id, now, EndReason::ConnectionClosed, host);
        }
        if let Some(id) = self.data_clients.get(&five_tuple).copied() {
            self.forget_connection(id);
            host.close_peer_connection(id);
        }
        self.table.forget_answer(&five_tuple);
    }

    /// Tears an allocation down: out of the table, its peer data connections closed, its
    /// relays and quota slot given back to the host, its accounting record queued
    /// ([`TurnServer::poll_event`]).
    pub(crate) fn remove(
        &mut self,
        id: AllocationId,
        now: Instant,
        reason: EndReason,
        host: &mut impl Host,
    ) {
        let Some(mut alloc) = self.table.remove(id) else {
            return;
        };
        // What the kernel relayed belongs in the record like the rest.
        if let Some((to_peer, to_client)) =
            Self::end_offload(alloc.offloaded.take(), alloc.serial, host)
        {
            alloc.to_peer.absorb(to_peer);
            alloc.to_client.absorb(to_client);
        }
        self.stats.record_end(&alloc, reason, now);
        self.events
            .push_back(Event::AllocationEnded(Box::new(AllocationRecord {
                relayed: alloc.relayed.iter().flatten().copied().collect(),
                duration: now.saturating_duration_since(alloc.created),
                five_tuple: alloc.five_tuple,
                to_peer: alloc.to_peer,
                to_client: alloc.to_client,
                reason,
                username: alloc.username.clone(),
            })));
        // RFC 6062 §5.5: "If the allocation associated with a data connection expires,
        // the data connection MUST be closed."
        for connection in &alloc.connections {
            self.forget_connection(*connection);
            host.close_peer_connection(*connection);
        }
        for &relay in alloc.relays.iter().flatten() {
            host.release_relay(relay);
        }
        host.release_allocation(quota_user(&alloc.username));
    }
}
