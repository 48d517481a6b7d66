//! The map ABI shared with `bpf/turn_offload.h`, byte for byte.
//!
//! IPs are 16 bytes, IPv4 as IPv4-mapped IPv6 (`::ffff:a.b.c.d`); ports and channel
//! numbers are in network byte order; every other field is in host order. Both sides
//! assert the sizes at compile time (`_Static_assert` in the header, `const` asserts
//! here), so a field added on one side only fails the build.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The IPv4-mapped IPv6 form of `ip` as 16 bytes (RFC 4291 §2.5.5.2).
pub fn mapped(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address `mapped` stands for (an IPv4-mapped address becomes IPv4 again).
pub fn unmapped(ip: [u8; 16]) -> IpAddr {
    Ipv6Addr::from(ip).to_canonical()
}

/// `FWD` key: a ChannelData datagram from a client to a server address.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FwdKey {
    /// The client's IP (mapped).
    pub client_ip: [u8; 16],
    /// The server address the client sends to (mapped).
    pub server_ip: [u8; 16],
    /// The client's port, network byte order.
    pub client_port: u16,
    /// The server's port, network byte order.
    pub server_port: u16,
    /// The channel number (0x4000–0x4FFF, RFC 8656 §12, or up to 0x7FFF as RFC 5766 allowed), network byte order.
    pub channel: u16,
    /// Zero.
    pub pad: u16,
}

impl FwdKey {
    /// The key of ChannelData on `channel` from `client` to `server`.
    pub fn new(client: SocketAddr, server: SocketAddr, channel: u16) -> Self {
        Self {
            client_ip: mapped(client.ip()),
            server_ip: mapped(server.ip()),
            client_port: client.port().to_be(),
            server_port: server.port().to_be(),
            channel: channel.to_be(),
            pad: 0,
        }
    }
}

/// `REV` key: a datagram from a peer to a relayed address.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RevKey {
    /// The peer's IP (mapped).
    pub peer_ip: [u8; 16],
    /// The relayed address's IP (mapped).
    pub relay_ip: [u8; 16],
    /// The peer's port, network byte order.
    pub peer_port: u16,
    /// The relayed port, network byte order.
    pub relay_port: u16,
    /// Zero.
    pub pad: u32,
}

impl RevKey {
    /// The key of datagrams from `peer` to `relay`.
    pub fn new(peer: SocketAddr, relay: SocketAddr) -> Self {
        Self {
            peer_ip: mapped(peer.ip()),
            relay_ip: mapped(relay.ip()),
            peer_port: peer.port().to_be(),
            relay_port: relay.port().to_be(),
            pad: 0,
        }
    }
}

/// `Route` flag: set the IPv4 Don't Fragment bit (RFC 8656 §7.2 DONT-FRAGMENT).
pub const ROUTE_DONT_FRAGMENT: u8 = 0x01;
/// `Route` flag: the way out is a veth ([`crate::egress::Egress::veth`]); at XDP a frame
/// going back out of the veth it came in by is redirected, not sent with `XDP_TX`,
/// whose frames a veth delivers only when its peer runs an XDP program of its own.
pub const ROUTE_VETH: u8 = 0x02;

/// What a matched datagram becomes: the value of `FWD` and `REV`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// New source IP (mapped): the relayed address (FWD) or the server address (REV).
    pub src_ip: [u8; 16],
    /// New destination IP (mapped): the peer (FWD) or the client (REV).
    pub dst_ip: [u8; 16],
    /// New source port, network byte order.
    pub src_port: u16,
    /// New destination port, network byte order.
    pub dst_port: u16,
    /// REV: the channel number to prepend, network byte order; FWD: 0.
    pub channel: u16,
    /// [`ROUTE_DONT_FRAGMENT`], [`ROUTE_VETH`].
    pub flags: u8,
    /// Zero.
    pub pad: u8,
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) at or after which the datagram passes
    /// to user space untouched; see [`crate::BpfClock`].
    pub deadline_ns: u64,
    /// The `ALLOCS` entry charged; a missing one passes the datagram to user space.
    pub alloc: u32,
    /// The output interface of the route to `dst` ([`crate::egress`]); 0 passes the
    /// datagram to user space.
    pub ifindex: u32,
    /// That path's MTU (whole IP datagram); a larger result passes to user space.
    pub mtu: u32,
    /// The user's traffic budget: its `USERS` index + 1 ([`crate::UserSlots`]); 0: none.
    pub user: u32,
    /// The next hop on `ifindex` (mapped): the route's gateway, or the destination on a
    /// link ([`crate::egress::Egress::next_hop`]); the program hands it to
    /// `bpf_redirect_neigh`, which then resolves only the neighbour. Zero: it looks the
    /// route up per packet.
    pub next_hop: [u8; 16],
    /// The allocation's bandwidth cap, bytes per second (0: none): the rate its `ALLOCS`
    /// bucket refills at. Routes carry it, so a new cap replaces the routes and never
    /// rewrites `ALLOCS`, whose counters the program updates.
    pub rate: u64,
}

impl Route {
    /// A route sending from `src` to `dst` by `egress`; `channel` is 0 for FWD routes.
    pub fn new(
        src: SocketAddr,
        dst: SocketAddr,
        channel: u16,
        dont_fragment: bool,
        deadline_ns: u64,
        alloc: u32,
        egress: crate::egress::Egress,
    ) -> Self {
        Self {
            src_ip: mapped(src.ip()),
            dst_ip: mapped(dst.ip()),
            src_port: src.port().to_be(),
            dst_port: dst.port().to_be(),
            channel: channel.to_be(),
            flags: if dont_fragment {
                ROUTE_DONT_FRAGMENT
            } else {
                0
            } | if egress.veth { ROUTE_VETH } else { 0 },
            pad: 0,
            deadline_ns,
            alloc,
            ifindex: egress.ifindex,
            mtu: egress.mtu,
            user: 0,
            next_hop: mapped(egress.next_hop),
            rate: 0,
        }
    }
}

/// `NEIGH` key: a next hop on an output interface (a [`Route`]'s `ifindex` and
/// `next_hop`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NeighKey {
    /// The output interface.
    pub ifindex: u32,
    /// The next hop (mapped).
    pub ip: [u8; 16],
}

impl NeighKey {
    /// The key of next hop `ip` on interface `ifindex`.
    pub fn new(ifindex: u32, ip: IpAddr) -> Self {
        Self {
            ifindex,
            ip: mapped(ip),
        }
    }
}

/// `NEIGH` value: the Ethernet addresses the XDP program writes for a next hop.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neigh {
    /// The next hop's link-layer address (the kernel's neighbour entry).
    pub dst: [u8; 6],
    /// The output interface's own address.
    pub src: [u8; 6],
}

/// The value of `ALLOCS`: one allocation's token bucket and counters.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AllocState {
    /// `struct bpf_spin_lock`; the kernel never copies it to or from user space.
    pub lock: u32,
    /// Zero.
    pub pad: u32,
    /// The cap the bucket was created with (its first fill, [`crate::Offload::insert_alloc`]);
    /// the program refills at its routes' [`Route::rate`].
    pub rate: u64,
    /// Whole tokens (bytes) in the bucket; its burst is `rate` (one second's worth).
    pub tokens: u64,
    /// The BPF-clock time the tokens stand for.
    pub last_ns: u64,
    /// The counters (application bytes: ChannelData payloads, peer UDP payloads).
    pub counters: AllocCounters,
}

/// Datagrams and application bytes the program relayed for one allocation.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AllocCounters {
    /// Datagrams relayed client → peer.
    pub to_peer_packets: u64,
    /// Their ChannelData payload bytes.
    pub to_peer_bytes: u64,
    /// Datagrams relayed peer → client.
    pub to_client_packets: u64,
    /// Their UDP payload bytes (without the 4-byte ChannelData header).
    pub to_client_bytes: u64,
}

// SAFETY: `FwdKey` is `repr(C)`, made of integers and byte arrays with no padding
// (16+16+2+2+2+2 = 40, asserted below), so every bit pattern is valid and it has no
// uninitialised bytes.
unsafe impl aya::Pod for FwdKey {}
// SAFETY: as `FwdKey`: `repr(C)`, integers and byte arrays, 16+16+2+2+4 = 40 bytes,
// no padding.
unsafe impl aya::Pod for RevKey {}
// SAFETY: `repr(C)`, integers and byte arrays laid out without implicit padding
// (the u64s sit at offsets 40 and 80, the explicit `pad` field fills the gap), 88 bytes.
unsafe impl aya::Pod for Route {}
// SAFETY: `repr(C)`, a u32 then a byte array: 4+16 = 20 bytes, alignment 4, no
// padding.
unsafe impl aya::Pod for NeighKey {}
// SAFETY: `repr(C)`, two byte arrays: 12 bytes, alignment 1, no padding.
unsafe impl aya::Pod for Neigh {}
// SAFETY: `repr(C)`, u32, u32 then u64s (including `AllocCounters`, itself four
// u64s): no implicit padding, 64 bytes, any bit pattern valid.
unsafe impl aya::Pod for AllocState {}

const _: () = assert!(size_of::<FwdKey>() == 40);
const _: () = assert!(size_of::<RevKey>() == 40);
const _: () = assert!(size_of::<Route>() == 88);
const _: () = assert!(core::mem::offset_of!(Route, rate) == 80);
const _: () = assert!(core::mem::offset_of!(Route, deadline_ns) == 40);
const _: () = assert!(size_of::<AllocState>() == 64);
const _: () = assert!(size_of::<NeighKey>() == 20);
const _: () = assert!(size_of::<Neigh>() == 12);
const _: () = assert!(core::mem::offset_of!(AllocState, counters) == 32);

/// Indices of the `STATS` per-CPU array (`enum turn_stat` in the header).
pub mod stat {
    /// Datagrams relayed client → peer.
    pub const TO_PEER_PACKETS: u32 = 0;
    /// Their ChannelData payload bytes.
    pub const TO_PEER_BYTES: u32 = 1;
    /// Datagrams relayed peer → client.
    pub const TO_CLIENT_PACKETS: u32 = 2;
    /// Their UDP payload bytes.
    pub const TO_CLIENT_BYTES: u32 = 3;
    /// Matched a route whose deadline had passed: passed to user space.
    pub const PASS_EXPIRED: u32 = 4;
    /// Could not be handled here, passed to user space: IPv4 UDP with options or
    /// fragmented, IPv6 with one extension header before UDP (both counted without a
    /// lookup, as the UDP header is out of reach), and, after a route matched: a padded or
    /// malformed ChannelData message, a route whose two addresses are of different
    /// families, UDP checksum 0 where IPv6 is involved (an IPv4 datagram without one
    /// bound for IPv6, or an invalid IPv6 one), `skb->protocol` other than the
    /// Ethernet header's when the family changes, a GSO skb, a payload
    /// beyond the program's move bound or the 16-bit length fields.
    pub const PASS_UNFIT: u32 = 5;
    /// Dropped by the allocation's token bucket.
    pub const DROP_BUCKET: u32 = 6;
    /// Matched a route whose allocation is not in `ALLOCS` (or whose user index is out
    /// of `USERS`): passed.
    pub const PASS_NO_ALLOC: u32 = 7;
    /// Larger than the route's path MTU: passed.
    pub const PASS_TOO_BIG: u32 = 8;
    /// The route has no output interface (user space found no route): passed.
    pub const PASS_FIB: u32 = 9;
    /// A helper failed after the datagram had been changed: dropped.
    pub const DROP_ERROR: u32 = 10;
    /// XDP: the route's next hop has no Ethernet addresses in `NEIGH` (not resolved
    /// yet): passed.
    pub const PASS_NEIGH: u32 = 11;
    /// Dropped by the user's traffic budget (`USERS`).
    pub const DROP_USER: u32 = 12;
    /// The number of counters.
    pub const COUNT: u32 = 13;
}

/// The `STATS` counters summed over CPUs; see [`stat`] for their meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgramStats {
    /// [`stat::TO_PEER_PACKETS`].
    pub to_peer_packets: u64,
    /// [`stat::TO_PEER_BYTES`].
    pub to_peer_bytes: u64,
    /// [`stat::TO_CLIENT_PACKETS`].
    pub to_client_packets: u64,
    /// [`stat::TO_CLIENT_BYTES`].
    pub to_client_bytes: u64,
    /// [`stat::PASS_EXPIRED`].
    pub pass_expired: u64,
    /// [`stat::PASS_UNFIT`].
    pub pass_unfit: u64,
    /// [`stat::DROP_BUCKET`].
    pub drop_bucket: u64,
    /// [`stat::PASS_NO_ALLOC`].
    pub pass_no_alloc: u64,
    /// [`stat::PASS_TOO_BIG`].
    pub pass_too_big: u64,
    /// [`stat::PASS_FIB`].
    pub pass_fib: u64,
    /// [`stat::DROP_ERROR`].
    pub drop_error: u64,
    /// [`stat::PASS_NEIGH`].
    pub pass_neigh: u64,
    /// [`stat::DROP_USER`].
    pub drop_user: u64,
}

impl ProgramStats {
    /// Builds the summary from the per-index sums, `sums[i]` being index `i`.
    pub fn from_sums(sums: &[u64; stat::COUNT as usize]) -> Self {
        Self {
            to_peer_packets: sums[stat::TO_PEER_PACKETS as usize],
            to_peer_bytes: sums[stat::TO_PEER_BYTES as usize],
            to_client_packets: sums[stat::TO_CLIENT_PACKETS as usize],
            to_client_bytes: sums[stat::TO_CLIENT_BYTES as usize],
            pass_expired: sums[stat::PASS_EXPIRED as usize],
            pass_unfit: sums[stat::PASS_UNFIT as usize],
            drop_bucket: sums[stat::DROP_BUCKET as usize],
            pass_no_alloc: sums[stat::PASS_NO_ALLOC as usize],
            pass_too_big: sums[stat::PASS_TOO_BIG as usize],
            pass_fib: sums[stat::PASS_FIB as usize],
            drop_error: sums[stat::DROP_ERROR as usize],
            pass_neigh: sums[stat::PASS_NEIGH as usize],
            drop_user: sums[stat::DROP_USER as usize],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_network_order_and_mapped() {
        let client: SocketAddr = "198.18.0.1:4660".parse().unwrap();
        let server: SocketAddr = "[2001:db8::1]:3478".parse().unwrap();
        let k = FwdKey::new(client, server, 0x4001);
        assert_eq!(&k.client_ip[10..], &[0xff, 0xff, 198, 18, 0, 1]);
        assert_eq!(k.client_port.to_ne_bytes(), [0x12, 0x34]);
        assert_eq!(k.channel.to_ne_bytes(), [0x40, 0x01]);
        assert_eq!(unmapped(k.client_ip), client.ip());
        assert_eq!(unmapped(k.server_ip), server.ip());
    }
}
