//! turnpike's opt-in in-kernel ChannelData fast path (issue 18): a TC ingress program and
//! an XDP program ([`Hook`]) that relay TURN channel traffic between clients and peers
//! without the socket layer, and the loader that attaches one of them and fills their
//! maps. Linux only.
//!
//! # Split between kernel and user space
//!
//! User space stays the source of truth. The sans-IO core decides every channel,
//! permission, lifetime and quota; the runtime mirrors each bound channel into two
//! routes here and removes them when the core forgets the binding. The program only
//! applies what the maps say, and passes everything else on untouched (`TC_ACT_UNSPEC`, so a program attached after it still sees the packet)
//! to the server's sockets: STUN, Send/Data indications, unknown channels, TCP,
//! fragments, IP options, IPv6 extension headers, padded ChannelData, GSO skbs,
//! IPv4 datagrams without a UDP checksum bound for IPv6, datagrams over the egress
//! MTU, expired routes and routes whose allocation is missing. Every "pass" is decided before the
//! first byte of the packet changes.
//!
//! # Maps (the ABI, [`abi`] and `bpf/turn_offload.h`)
//!
//! - `FWD` (hash): client IP, server IP, client port, server port, channel →
//!   [`Route`] (relayed address → peer). A UDP payload that is exactly one ChannelData
//!   message (first byte 0x40–0x7F: RFC 8656 §12's channels and RFC 5766's up to
//!   0x7FFF, which the server accepts too; length + 4 = payload length) loses its
//!   4-byte header.
//! - `REV` (hash): peer IP, relayed IP, peer port, relayed port → [`Route`] (server
//!   address → client, with the channel to prepend). The payload gets a 4-byte header;
//!   no padding over UDP (RFC 8656 §12.5).
//! - `ALLOCS` (hash): allocation id → [`AllocState`]: a spin lock, the token bucket
//!   both directions share (exactly `TokenBucket` of `crates/proto/src/quota.rs`:
//!   burst = one second's worth, starts full, whole tokens, elapsed time in whole
//!   microseconds, `last` advanced by the time the added tokens stand for) and the
//!   counters of application bytes relayed by the program. No tokens → dropped and
//!   counted in `STATS`, as user space drops it. The routes carry the rate
//!   ([`Route::rate`]), so a new cap never rewrites the entry the program counts in.
//! - `NEIGH` (hash, XDP only): interface and next hop → [`Neigh`], the Ethernet
//!   addresses the XDP program writes ([`egress::ethernet_hop`]); none → the datagram
//!   passes to user space.
//! - `USERS` (array, mmapped): users' traffic budgets ([`UserSlots`]), which the program
//!   and user space charge alike; a route naming one charges it after the allocation's
//!   bucket, and over it the datagram is dropped as user space drops it.
//! - `STATS` (per-CPU array of u64): see [`abi::stat`].
//!
//! A route carries a deadline on the program's clock ([`BpfClock`]: CLOCK_MONOTONIC,
//! as `Instant`); at or after it the datagram goes to user space, so channel lifetimes
//! hold in the kernel without waiting for a sweep.
//!
//! # What the program does to a relayed datagram
//!
//! It keeps the IP and UDP headers where they are and moves the payload by 4 bytes
//! (a bounded copy loop in 256-byte pieces, a global BPF function the verifier checks
//! once, then `bpf_skb_change_tail` ±4), so the
//! checksum start of a `CHECKSUM_PARTIAL` skb (veth and local senders with tx offload)
//! stays valid; `bpf_skb_adjust_room` was found to break it. It rewrites addresses,
//! ports and lengths, sets TTL / hop limit 64 (a relay sends new datagrams), IPv4 DF
//! as the route says, recomputes the IPv4 header checksum, and updates the UDP
//! checksum by difference through `bpf_l4_csum_replace`: pseudo-header changes with
//! `BPF_F_PSEUDO_HDR` (the kernel applies them to a partial checksum too), ports,
//! length field and the 4 header bytes without it (skipped for `CHECKSUM_PARTIAL`,
//! whose sum the device or `skb_checksum_help` completes later), with
//! `BPF_F_MARK_MANGLED_0` (an IPv4 datagram without checksum keeps 0; a sum that comes
//! out 0 leaves as 0xFFFF, which IPv6 requires, RFC 8200 §8.1) and `BPF_F_IPV6` when it
//! leaves in IPv6. It then sends it with `bpf_redirect_neigh` through the output
//! interface user space's route lookup named ([`egress`]), if the new length fits that
//! path's MTU; otherwise the datagram passes to user space.
//!
//! # Across families (RFC 6156)
//!
//! An IPv4 client may have an IPv6 relayed address and the other way round (RFC 8656
//! §7.2, ADDITIONAL-ADDRESS-FAMILY / REQUESTED-ADDRESS-FAMILY). The route's addresses
//! say in which family a datagram leaves; when it differs from the one it came in,
//! `bpf_skb_change_proto` grows or shrinks the room after the MAC header by 20 bytes
//! (the UDP header stays where it is in memory, so a partial checksum's start stays
//! right), and the program writes a fresh header: hop limit / TTL 64, traffic class,
//! flow label and TOS 0, DF as the route says and a random ID for IPv4. The UDP
//! checksum follows by the pseudo-header difference as above (the protocol counts the
//! same in both pseudo-headers). An IPv4 datagram sent without checksum (0) towards
//! IPv6 would need a sum over its payload: it passes to user space, as does any
//! datagram whose `skb->protocol` disagrees with its Ethernet header.
//!
//! # At XDP
//!
//! The XDP program (`bpf/turn_xdp.bpf.c`) takes the same decisions from the same maps
//! (`bpf/turn_common.h`) on the frame in place: it moves the headers instead of the
//! payload (`bpf_xdp_adjust_head` by the 4 ChannelData bytes and the IP headers'
//! difference), writes Ethernet, IP and UDP headers anew, updates the UDP checksum by
//! difference itself (so the field must hold a complete sum, as from a NIC: a veth whose
//! sender left the checksum to offload hands over a partial one) and sends the frame with
//! `XDP_TX` or `bpf_redirect` (on veths always the latter: a veth delivers `XDP_TX` frames
//! only when its peer runs XDP itself, [`abi::ROUTE_VETH`]).
//!
//! # Building
//!
//! The programs are C (`bpf/turn_tc.bpf.c`, `bpf/turn_xdp.bpf.c`), compiled by `build.rs`
//! with clang only under the `ebpf` feature (Debian: `apt-get install clang libbpf-dev`)
//! and embedded in the binary. Without the feature the crate builds with no C toolchain
//! and [`Offload::load`] fails with [`OffloadError::NotBuilt`].

// The workspace denies `unsafe_code`; this crate talks to the kernel (`aya::Pod` for
// the map ABI, `clock_gettime`, one raw `bpf()` command aya does not wrap), so it
// allows it here, and every block carries a `// SAFETY:` comment.
#![allow(unsafe_code)]

#[cfg(target_os = "linux")]
pub mod abi;
#[cfg(target_os = "linux")]
mod clock;
#[cfg(target_os = "linux")]
mod driver;
#[cfg(target_os = "linux")]
pub mod egress;
#[cfg(target_os = "linux")]
mod error;
#[cfg(target_os = "linux")]
mod offload;
#[cfg(target_os = "linux")]
pub mod users;

#[cfg(target_os = "linux")]
pub use abi::{AllocCounters, AllocState, FwdKey, Neigh, NeighKey, ProgramStats, RevKey, Route};
#[cfg(target_os = "linux")]
pub use clock::BpfClock;
#[cfg(target_os = "linux")]
pub use driver::driver;
#[cfg(target_os = "linux")]
pub use error::{AyaError, OffloadError};
#[cfg(target_os = "linux")]
pub use offload::{Hook, Offload, XdpAttach};
#[cfg(target_os = "linux")]
pub use users::{UserSlot, UserSlots};
