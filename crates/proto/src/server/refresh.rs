//! Refresh (RFC 8656 §8.2): new lifetimes, deletion (of one half of a dual allocation
//! too, §8.1), and RFC 8016 mobility: a Refresh carrying MOBILITY-TICKET moves its
//! allocation to the 5-tuple it came from (see [`crate::mobility`]).

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;

use turnpike_stun::attr::{AddressFamily, Lifetime, MobilityTicket, RequestedAddressFamily};
use turnpike_stun::ct_eq;

use super::{EndReason, Handled, Reject, Request, TurnServer};
use crate::allocation::Mobility;
use crate::host::{Family, Host};
use crate::mobility::{TICKET_LEN, ticket_place, ticket_subject};
use crate::table::AllocationId;

impl TurnServer {
    /// Refresh (RFC 8656 §8.2): a new lifetime, or 0 to delete; with
    /// REQUESTED-ADDRESS-FAMILY on a dual allocation, 0 deletes that family only; with
    /// MOBILITY-TICKET (RFC 8016), the allocation the ticket names, moved to this
    /// 5-tuple.
    pub(crate) fn refresh(
        &mut self,
        req: &Request<'_>,
        out: &mut [u8],
        host: &mut impl Host,
    ) -> Handled {
        let (now, msg) = (req.now, req.msg);
        let ticket = msg.get::<MobilityTicket>()?;
        let slot = match ticket {
            None => self.allocation_for(req)?,
            Some(_) if !self.config.turn.mobility => return Err(Reject::MobilityForbidden),
            Some(t) => self.allocation_for_ticket(req, t.0)?,
        };
        let requested = msg.get::<Lifetime>()?;
        let delete = requested.is_some_and(|l| l.0 == 0);
        // A user whose traffic budget for the period is spent may delete, not extend.
        let limits = self.config.quotas.user_limits();
        if !delete
            && self.table[slot]
                .budget
                .as_ref()
                .is_some_and(|b| b.spent(now, &limits))
        {
            return Err(Reject::AllocationQuotaReached);
        }
        let mut only_family = None;
        if let Some(family) = msg.get::<RequestedAddressFamily>()? {
            // RFC 8656 §8.2: a family the allocation does not have is a mismatch.
            let fam = match family.0 {
                AddressFamily::IPV4 => Family::V4,
                AddressFamily::IPV6 => Family::V6,
                _ => return Err(Reject::PeerAddressFamilyMismatch),
            };
            let alloc = &self.table[slot];
            if alloc.relay(fam).is_none() {
                return Err(Reject::PeerAddressFamilyMismatch);
            }
            // RFC 8656 §8.1: on a dual allocation, the family names the half to refresh
            // or delete. Deleting one half leaves the other's permissions and channels.
            if alloc.relays.iter().flatten().count() > 1 {
                only_family = Some(fam);
            }
        }
        // Everything is checked: now the allocation may move (RFC 8016 §3.2).
        let mut new_ticket = None;
        if ticket.is_some() {
            self.move_allocation(slot, req.from);
            new_ticket = (!delete).then(|| self.rotate_ticket(slot)).flatten();
        }
        let lifetime = match (delete, only_family) {
            (true, Some(fam)) => {
                self.remove_family(slot, fam, host);
                Duration::ZERO
            }
            (true, None) => {
                self.remove(slot, now, EndReason::Deleted, host);
                Duration::ZERO
            }
            // A refresh of one half of a dual allocation refreshes both: the allocation
            // has one lifetime (a simplification RFC 8656 §8.1 does not forbid, since the
            // client refreshes every half it keeps).
            (false, _) => {
                let mut lifetime = self.granted_lifetime(requested);
                let alloc = &mut self.table[slot];
                if let Some(deadline) = alloc.credential_expires {
                    lifetime = lifetime.min(deadline.saturating_duration_since(now));
                }
                alloc.expires = now + lifetime;
                lifetime
            }
        };
        self.succeed(req, out, |w| {
            w.put(&Lifetime(lifetime.as_secs() as u32))?;
            match &new_ticket {
                Some(t) => w.put(&MobilityTicket(t)),
                None => Ok(()),
            }
        })
    }

    /// The allocation a MOBILITY-TICKET names (RFC 8016 §3.2), checked: genuine and
    /// current (400 otherwise), live (400: the ticket names nothing any more), the same
    /// user (441), and a move that is possible (437 onto another allocation's 5-tuple,
    /// 400 for a TCP allocation onto UDP).
    fn allocation_for_ticket(
        &self,
        req: &Request<'_>,
        ticket: &[u8],
    ) -> Result<AllocationId, Reject> {
        let from = &req.from;
        let place = self.ticket_key.open(ticket).ok_or(Reject::BadRequest)?;
        // Another core's ticket reaches this only from a 5-tuple that has an allocation
        // here (otherwise it was handed to that core, `owner_elsewhere`): moving onto it
        // is a 437, as for this core's own tickets below.
        let (shard, slot) = ticket_subject(place);
        if shard != self.shard {
            return Err(Reject::AllocationMismatch);
        }
        let slot = AllocationId(slot);
        let alloc = self
            .table
            .get(slot)
            .filter(|a| a.is_live(req.now))
            .filter(|a| {
                a.mobility
                    .as_ref()
                    .is_some_and(|m| ct_eq(&m.ticket, ticket))
            })
            .ok_or(Reject::BadRequest)?;
        if *alloc.username != *req.auth.username {
            return Err(Reject::WrongCredentials);
        }
        if alloc.five_tuple != *from {
            if self.table.by_five_tuple(from).is_some() || self.data_clients.contains_key(from) {
                return Err(Reject::AllocationMismatch);
            }
            if alloc.tcp && !from.transport.is_stream() {
                return Err(Reject::BadRequest);
            }
        }
        Ok(slot)
    }

    /// Moves an allocation to a new 5-tuple (a no-op if it is there already).
    fn move_allocation(&mut self, slot: AllocationId, to: crate::allocation::FiveTuple) {
        if self.table.move_to(slot, to) {
            self.stats.mobility_moves += 1;
        }
    }

    /// Replaces an allocation's ticket with a new one, which it returns: the old one is
    /// dead from now on.
    fn rotate_ticket(&mut self, slot: AllocationId) -> Option<[u8; TICKET_LEN]> {
        let nonce = self.next_random();
        let alloc = self.table.get_mut(slot)?;
        let m = alloc.mobility.get_or_insert_with(|| {
            Box::new(Mobility {
                ticket: [0; TICKET_LEN],
                generation: 0,
            })
        });
        m.generation = m.generation.wrapping_add(1);
        let place = ticket_place(self.shard, slot.slot())?;
        m.ticket = self.ticket_key.mint(place, m.generation, nonce);
        Some(m.ticket)
    }

    /// Deletes one half of a dual allocation: its relay, and the permissions, channels
    /// and peer connections of its family (RFC 8656 §8.1).
    fn remove_family(&mut self, slot: AllocationId, family: Family, host: &mut impl Host) {
        let Some(relay) = self.table.remove_relay(slot, family) else {
            return;
        };
        let Some(alloc) = self.table.get_mut(slot) else {
            return;
        };
        let of_family = |ip: IpAddr| Family::of(SocketAddr::new(ip, 0)) == family;
        alloc.permissions.retain(|p| !of_family(p.ip));
        alloc.channels.retain(|c| !of_family(c.peer.ip()));
        let mut gone = Vec::new();
        alloc.connections.retain(|id| {
            let same = self
                .connections
                .get(id)
                .is_some_and(|c| of_family(c.peer.ip()));
            if same {
                gone.push(*id);
            }
            !same
        });
        host.release_relay(relay);
        for id in gone {
            self.forget_connection(id);
            host.close_peer_connection(id);
        }
    }
}
