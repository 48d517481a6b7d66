//! CreatePermission (RFC 8656 §9) and ChannelBind (RFC 8656 §11.2): which peers an
//! allocation may exchange data with, and the channels that carry it.

use core::net::{IpAddr, SocketAddr};
use std::time::Instant;

use turnpike_stun::ChannelNumber;
use turnpike_stun::attr::XorPeerAddress;

use super::{CHANNEL_COOLDOWN, CHANNEL_LIFETIME, Handled, PERMISSION_LIFETIME, Reject, Request};
use super::{TurnServer, normalise_addr};
use crate::allocation::{ChannelBinding, FiveTuple, Permission, push_lean};
use crate::host::Family;
use crate::table::AllocationId;

impl TurnServer {
    /// Checks a peer address for a permission or channel: policy (403) and family (443).
    pub(crate) fn check_peer(
        &mut self,
        from: FiveTuple,
        slot: AllocationId,
        peer: SocketAddr,
    ) -> Result<SocketAddr, Reject> {
        let peer = normalise_addr(peer);
        // Policy first: a denied peer is 403 whatever the relay's family (a 443 would
        // tell a prober the address was acceptable).
        if let Err(rule) = self.config.peers.check(peer) {
            self.note_peer_denied(from, peer, rule);
            return Err(Reject::Forbidden);
        }
        let alloc = self.table.get(slot).ok_or(Reject::AllocationMismatch)?;
        if alloc.relay(Family::of(peer)).is_none() {
            return Err(Reject::PeerAddressFamilyMismatch);
        }
        Ok(peer)
    }

    /// Installs or refreshes permissions for `ips` all together, or none.
    fn install_permissions(
        &mut self,
        slot: AllocationId,
        ips: &[IpAddr],
        now: Instant,
    ) -> Result<(), Reject> {
        let max = self.config.quotas.permissions_per_allocation as usize;
        let alloc = self.table.get_mut(slot).ok_or(Reject::AllocationMismatch)?;
        let new = ips
            .iter()
            .enumerate()
            .filter(|(i, ip)| {
                !alloc.permissions.iter().any(|p| p.ip == **ip) && !ips[..*i].contains(ip)
            })
            .count();
        if max != 0 && alloc.permissions.len() + new > max {
            return Err(Reject::InsufficientCapacity);
        }
        for &ip in ips {
            match alloc.permissions.iter_mut().find(|p| p.ip == ip) {
                Some(p) => p.expires = now + PERMISSION_LIFETIME,
                None => push_lean(
                    &mut alloc.permissions,
                    Permission {
                        ip,
                        expires: now + PERMISSION_LIFETIME,
                    },
                ),
            }
        }
        Ok(())
    }

    /// CreatePermission (RFC 8656 §9.2): every XOR-PEER-ADDRESS is checked before any is
    /// installed.
    pub(crate) fn create_permission(&mut self, req: &Request<'_>, out: &mut [u8]) -> Handled {
        let (now, msg) = (req.now, req.msg);
        let slot = self.allocation_for(req)?;
        let mut ips: Vec<IpAddr> = Vec::new();
        for peer in msg.get_all::<XorPeerAddress>() {
            let peer = self.check_peer(req.from, slot, peer?.0)?;
            ips.push(peer.ip());
            if ips.len() > 64 {
                return Err(Reject::BadRequest);
            }
        }
        if ips.is_empty() {
            return Err(Reject::BadRequest);
        }
        self.install_permissions(slot, &ips, now)?;
        self.succeed(req, out, |_| Ok(()))
    }

    /// ChannelBind (RFC 8656 §11.2): binds or refreshes a channel and the peer's
    /// permission.
    pub(crate) fn channel_bind(&mut self, req: &Request<'_>, out: &mut [u8]) -> Handled {
        let (now, msg) = (req.now, req.msg);
        let slot = self.allocation_for(req)?;
        // Channels carry datagrams; a TCP allocation (RFC 6062) relays none.
        if self.table[slot].tcp {
            return Err(Reject::BadRequest);
        }
        let number = msg.get::<ChannelNumber>()?.ok_or(Reject::BadRequest)?;
        if self.config.turn.strict_channel_numbers && !number.is_rfc8656() {
            return Err(Reject::BadRequest);
        }
        let peer = msg.get::<XorPeerAddress>()?.ok_or(Reject::BadRequest)?;
        let peer = self.check_peer(req.from, slot, peer.0)?;
        let max = self.config.quotas.channels_per_allocation as usize;
        {
            let alloc = &self.table[slot];
            // Rebind rules: a number (even one cooling down after expiry) stays with its
            // peer, and a peer with its number. One pass checks both and counts the
            // bindings still held, for the quota a new number would count against.
            let (mut held, mut exists) = (0, false);
            for c in alloc
                .channels
                .iter()
                .filter(|c| c.expires + CHANNEL_COOLDOWN > now)
            {
                match (c.number == number, c.peer == peer) {
                    (true, false) => return Err(Reject::ChannelNumberInUse),
                    (false, true) => return Err(Reject::PeerOnAnotherChannel),
                    (same_number, _) => exists |= same_number,
                }
                held += 1;
            }
            if !exists && max != 0 && held >= max {
                return Err(Reject::InsufficientCapacity);
            }
        }
        self.install_permissions(slot, &[peer.ip()], now)?;
        let alloc = &mut self.table[slot];
        alloc
            .channels
            .retain(|c| c.expires + CHANNEL_COOLDOWN > now);
        match alloc.channels.iter_mut().find(|c| c.number == number) {
            Some(c) => c.expires = now + CHANNEL_LIFETIME,
            None => push_lean(
                &mut alloc.channels,
                ChannelBinding {
                    number,
                    peer,
                    expires: now + CHANNEL_LIFETIME,
                },
            ),
        }
        self.succeed(req, out, |_| Ok(()))
    }
}
