//! The data path: ChannelData and Send indications from clients (RFC 8656 §11.2, §12),
//! datagrams from peers written in place as ChannelData or Data indications (§11.3,
//! §12.4), and ICMP errors relayed as Data indications (§11.5).

use core::net::SocketAddr;
use core::ops::Range;
use std::time::Instant;

use turnpike_stun::attr::{Icmp, XorPeerAddress};
use turnpike_stun::{
    AttrType, ChannelData, Class, Message, MessageType, MessageWriter, Method,
    write_channel_data_header,
};

use super::{ClientAction, PEER_HEADROOM, PEER_TAILROOM, PeerAction, TurnServer, normalise_addr};
use crate::allocation::{Allocation, FiveTuple};
use crate::host::{Family, RelayId};
use crate::table::{AllocationId, AllocationTable};

impl TurnServer {
    pub(crate) fn client_channel_data(
        &mut self,
        now: Instant,
        from: FiveTuple,
        packet: &[u8],
    ) -> ClientAction {
        let Ok(frame) = ChannelData::new_checked(packet) else {
            return ClientAction::None;
        };
        let Some(slot) = self.table.by_five_tuple(&from) else {
            return ClientAction::None;
        };
        let rate = self.config.quotas.bandwidth_bytes_per_sec;
        let Some(alloc) = datagram_relay(&mut self.table, slot, now) else {
            return ClientAction::None;
        };
        let Some(channel) = alloc.active_channel(frame.channel(), now).copied() else {
            self.stats.dropped_no_permission += 1;
            return ClientAction::None;
        };
        let len = frame.data().len();
        let Some(relay) = alloc.relay(Family::of(channel.peer)) else {
            return ClientAction::None;
        };
        if !alloc.has_permission(channel.peer.ip(), now) {
            self.stats.dropped_no_permission += 1;
            return ClientAction::None;
        }
        if !alloc.bucket.take(now, rate, len) {
            self.stats.dropped_bandwidth += 1;
            return ClientAction::None;
        }
        if let Some(b) = &alloc.budget {
            if b.charge(now, len, &self.config.quotas.user_limits())
                .is_err()
            {
                self.stats.dropped_user_budget += 1;
                return ClientAction::None;
            }
        }
        self.stats.to_peer += 1;
        alloc.to_peer.add(len);
        ClientAction::ToPeer {
            relay,
            peer: channel.peer,
            payload: 4..4 + len,
            dont_fragment: alloc.dont_fragment,
        }
    }

    /// Send indication (RFC 8656 §11.2): no authentication; relayed only with a permission.
    pub(crate) fn send_indication(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<&[u8]>,
    ) -> ClientAction {
        let Some(slot) = self.table.by_five_tuple(&from) else {
            return ClientAction::None;
        };
        let (Ok(Some(peer)), Some(data)) = (msg.get::<XorPeerAddress>(), msg.raw(AttrType::DATA))
        else {
            return ClientAction::None;
        };
        let peer = normalise_addr(peer.0);
        let df = msg.raw(AttrType::DONT_FRAGMENT).is_some();
        let rate = self.config.quotas.bandwidth_bytes_per_sec;
        let Some(alloc) = datagram_relay(&mut self.table, slot, now) else {
            return ClientAction::None;
        };
        let Some(relay) = alloc.relay(Family::of(peer)) else {
            return ClientAction::None;
        };
        if !alloc.has_permission(peer.ip(), now) {
            self.stats.dropped_no_permission += 1;
            return ClientAction::None;
        }
        // The permission covers the IP (it passed the whole check); the port may still
        // name one of the server's own services: that part of the check, per datagram.
        if let Err(rule) = self.config.peers.check_own(peer) {
            self.note_peer_denied(from, peer, rule);
            return ClientAction::None;
        }
        let start = data.offset + 4;
        if !alloc.bucket.take(now, rate, data.value.len()) {
            self.stats.dropped_bandwidth += 1;
            return ClientAction::None;
        }
        if let Some(b) = &alloc.budget {
            if b.charge(now, data.value.len(), &self.config.quotas.user_limits())
                .is_err()
            {
                self.stats.dropped_user_budget += 1;
                return ClientAction::None;
            }
        }
        self.stats.to_peer += 1;
        alloc.to_peer.add(data.value.len());
        ClientAction::ToPeer {
            relay,
            peer,
            payload: start..start + data.value.len(),
            dont_fragment: df || alloc.dont_fragment,
        }
    }

    /// Handles a datagram a relay socket received from `from`. The payload is
    /// `buf[payload]`; the buffer must have [`PEER_HEADROOM`] bytes before it and
    /// [`PEER_TAILROOM`] after, so the ChannelData or Data indication header is written in
    /// place and the payload is never moved.
    pub fn handle_peer(
        &mut self,
        now: Instant,
        relay: RelayId,
        from: SocketAddr,
        buf: &mut [u8],
        payload: Range<usize>,
    ) -> PeerAction {
        // The range comes from the runtime, not the wire, but a bad one must not panic
        // (`end + TAILROOM` could overflow) nor yield a reversed output range.
        let fits = payload
            .end
            .checked_add(PEER_TAILROOM)
            .is_some_and(|end| end <= buf.len());
        if payload.start < PEER_HEADROOM || payload.start > payload.end || !fits {
            return PeerAction::None;
        }
        let Some(slot) = self.table.by_relay(relay) else {
            return PeerAction::None;
        };
        let rate = self.config.quotas.bandwidth_bytes_per_sec;
        let Some(alloc) = datagram_relay(&mut self.table, slot, now) else {
            return PeerAction::None;
        };
        let from = normalise_addr(from);
        if !alloc.has_permission(from.ip(), now) {
            self.stats.dropped_no_permission += 1;
            return PeerAction::None;
        }
        let len = payload.len();
        if !alloc.bucket.take(now, rate, len) {
            self.stats.dropped_bandwidth += 1;
            return PeerAction::None;
        }
        if let Some(b) = &alloc.budget {
            if b.charge(now, len, &self.config.quotas.user_limits())
                .is_err()
            {
                self.stats.dropped_user_budget += 1;
                return PeerAction::None;
            }
        }
        let to = alloc.five_tuple;
        let channel = alloc.channel_for_peer(from, now);
        self.stats.to_client += 1;
        alloc.to_client.add(len);
        if let Some(number) = channel {
            let start = payload.start - 4;
            let mut end = payload.end;
            if write_channel_data_header(&mut buf[start..], number, len).is_err() {
                return PeerAction::None;
            }
            if to.transport.is_stream() {
                let padded = start + (4 + len).next_multiple_of(4);
                buf[end..padded].fill(0);
                end = padded;
            }
            return PeerAction::ToClient {
                to,
                range: start..end,
            };
        }
        // Data indication (RFC 8656 §11.3): header, XOR-PEER-ADDRESS, DATA header, all
        // written in front of the payload.
        let addr_len = if from.is_ipv4() { 8 } else { 20 };
        let start = payload.start - (20 + 4 + addr_len + 4);
        let tid = self.random_tid();
        let ty = MessageType::new(Method::DATA, Class::Indication);
        let written = MessageWriter::new(&mut buf[start..], ty, tid).and_then(|mut w| {
            w.put(&XorPeerAddress(from))?;
            w.put_with(AttrType::DATA, len, |_| {})?;
            Ok(w.finish())
        });
        match written {
            Ok(n) => PeerAction::ToClient {
                to,
                range: start..start + n,
            },
            Err(_) => PeerAction::None,
        }
    }

    /// Handles an ICMP error about a datagram relay `relay` sent to `peer` (RFC 8656
    /// §11.5): the runtime read it from the relay socket's error queue and passes the
    /// destination of the failed datagram (`peer`, port 0 if the system did not say) and
    /// the ICMP message as received (`icmp`: type and code of the family of `peer`, ICMPv4
    /// for an IPv4 or IPv4-mapped peer, ICMPv6 otherwise; `error_data` the next-hop MTU
    /// for "fragmentation needed" (ICMPv4 3/4) and "packet too big" (ICMPv6 2), which is
    /// sent as 0 for every other type, as RFC 8656 §18.13 requires).
    ///
    /// Only ICMPv4 types 3 (destination unreachable) and 11 (time exceeded) and ICMPv6
    /// types 1, 2 and 3 are relayed; the allocation needs a permission for the peer's
    /// IP (ports are not compared); and at most [`TurnSection::icmp_per_second`](crate::TurnSection::icmp_per_second) are
    /// relayed per allocation and second. The message is a Data indication with
    /// XOR-PEER-ADDRESS and ICMP and no DATA, always, channel or not (ChannelData cannot
    /// carry it). It is written at the start of `buf`, which needs
    /// [`ICMP_INDICATION_MAX`](super::ICMP_INDICATION_MAX) bytes.
    pub fn handle_peer_icmp(
        &mut self,
        now: Instant,
        relay: RelayId,
        peer: SocketAddr,
        icmp: Icmp,
        buf: &mut [u8],
    ) -> PeerAction {
        let Icmp {
            icmp_type,
            code: icmp_code,
            error_data,
        } = icmp;
        let Some(slot) = self.table.by_relay(relay) else {
            return PeerAction::None;
        };
        let Some(alloc) = datagram_relay(&mut self.table, slot, now) else {
            return PeerAction::None;
        };
        let peer = normalise_addr(peer);
        let v4 = peer.is_ipv4();
        // RFC 8656 §11.5: "the type is either 3 or 11 for an ICMPv4 [RFC0792] packet or
        // either 1, 2, or 3 for an ICMPv6 [RFC4443] packet".
        let relayable = if v4 {
            matches!(icmp_type, 3 | 11)
        } else {
            matches!(icmp_type, 1..=3)
        };
        let ours = alloc.relay(Family::of(peer)) == Some(relay);
        if !relayable || !ours || !alloc.has_permission(peer.ip(), now) {
            self.stats.icmp_dropped += 1;
            return PeerAction::None;
        }
        if !alloc
            .icmp_bucket
            .take(now, u64::from(self.config.turn.icmp_per_second), 1)
        {
            self.stats.icmp_dropped += 1;
            return PeerAction::None;
        }
        let to = alloc.five_tuple;
        // RFC 8656 §18.13: the MTU for ICMPv6 "packet too big" and ICMPv4 "fragmentation
        // needed", otherwise "the Error Data field MUST be set to zero".
        let mtu = if v4 {
            icmp_type == 3 && icmp_code == 4
        } else {
            icmp_type == 2
        };
        let icmp = Icmp {
            icmp_type,
            code: icmp_code,
            error_data: if mtu { error_data } else { 0 },
        };
        let tid = self.random_tid();
        let ty = MessageType::new(Method::DATA, Class::Indication);
        let written = MessageWriter::new(buf, ty, tid).and_then(|mut w| {
            w.put(&XorPeerAddress(peer))?;
            w.put(&icmp)?;
            Ok(w.finish())
        });
        match written {
            Ok(n) => {
                self.stats.icmp_relayed += 1;
                PeerAction::ToClient { to, range: 0..n }
            }
            Err(_) => PeerAction::None,
        }
    }
}

/// The allocation `id` names if it may relay datagrams now: a dead allocation the sweep
/// has not reached yet relays nothing, and a TCP allocation (RFC 6062) relays no
/// datagrams. A free function over the table, so callers can still update other fields
/// of the server.
fn datagram_relay(
    table: &mut AllocationTable,
    id: AllocationId,
    now: Instant,
) -> Option<&mut Allocation> {
    table.get_mut(id).filter(|a| a.is_live(now) && !a.tcp)
}
