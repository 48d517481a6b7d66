/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * turnpike in-kernel ChannelData fast path: the map ABI shared with user space.
 *
 * Mirrored in crates/offload/src/abi.rs as #[repr(C)] structs; both sides assert
 * the sizes at compile time. IPs are 16 bytes (IPv4 as ::ffff:a.b.c.d); ports and
 * channel numbers are in network byte order; everything else in host order.
 */
#ifndef TURN_OFFLOAD_H
#define TURN_OFFLOAD_H

#include <linux/types.h>
#include <linux/bpf.h>

/* FWD key: a ChannelData datagram from a client (client -> server address). */
struct turn_fwd_key {
	__u8 client_ip[16];
	__u8 server_ip[16];
	__be16 client_port;
	__be16 server_port;
	__be16 channel;
	__u16 pad;
};

/* REV key: a datagram from a peer to a relayed address. */
struct turn_rev_key {
	__u8 peer_ip[16];
	__u8 relay_ip[16];
	__be16 peer_port;
	__be16 relay_port;
	__u32 pad;
};

/* Route flag: set the IPv4 Don't Fragment bit on the relayed datagram. */
#define TURN_ROUTE_DF 0x01
/* Route flag: the way out is a veth. At XDP a frame going back out of the veth it came
 * in by is redirected (bpf_redirect) rather than sent with XDP_TX, whose frames a veth
 * delivers only when its peer has an XDP program of its own. */
#define TURN_ROUTE_VETH 0x02

/* What to send instead: the new addresses, the channel to prepend (REV) or 0 (FWD). */
struct turn_route {
	__u8 src_ip[16];
	__u8 dst_ip[16];
	__be16 src_port;
	__be16 dst_port;
	__be16 channel;
	__u8 flags;
	__u8 pad;
	/* bpf_ktime_get_ns() (CLOCK_MONOTONIC); at or after it the packet passes. */
	__u64 deadline_ns;
	/* The allocation (ALLOCS key) charged; missing -> pass to user space. */
	__u32 alloc;
	/* Where it leaves: the output interface of the kernel's route to dst (user space
	 * asks it, as `ip route get` does) and that path's MTU (whole IP datagram). */
	__u32 ifindex;
	__u32 mtu;
	/* The user's traffic budget: USERS index + 1; 0 = none. */
	__u32 user;
	/* The next hop on that interface (mapped for IPv4): the route's gateway, or dst
	 * itself on a link; handed to bpf_redirect_neigh so it resolves only the neighbour,
	 * without a route lookup per packet. All zero: let it look the route up. */
	__u8 next_hop[16];
	/* The allocation's bandwidth cap in bytes per second (0: none), the rate its
	 * ALLOCS bucket refills at. Carried by the routes, so user space changes it by
	 * replacing them, never by rewriting ALLOCS (whose counters the program updates). */
	__u64 rate;
};

/* One allocation: the token bucket both directions share, and its counters. */
struct turn_alloc {
	struct bpf_spin_lock lock;
	__u32 pad;
	__u64 rate;     /* the cap it was created with: its first fill (the routes carry the rate) */
	__u64 tokens;   /* whole bytes */
	__u64 last_ns;  /* the time the tokens stand for */
	__u64 to_peer_packets;
	__u64 to_peer_bytes;
	__u64 to_client_packets;
	__u64 to_client_bytes;
};

/* USERS value: one user's traffic budget, shared with user space (an mmapped array):
 * the first six fields are crates/proto/src/budget.rs BudgetCells, which user space
 * charges with the same atomic steps; times are bpf_ktime_get_ns(). Then the limits
 * user space writes (0 = none). */
struct turn_user {
	__u64 window;
	__u64 window_packets;
	__u64 window_bytes;
	__u64 period;
	__u64 period_bytes;
	__u64 dropped;
	__u64 packets_per_sec;
	__u64 bytes_per_sec;
	__u64 bytes_per_period;
	__u64 period_ns;
};

/* NEIGH key: a next hop (a route's next_hop) on an output interface. */
struct turn_neigh_key {
	__u32 ifindex;
	__u8 ip[16];
};

/* NEIGH value: the Ethernet addresses the XDP program writes (user space reads them
 * from the kernel's neighbour table and the interface); missing -> pass. */
struct turn_neigh {
	__u8 dst[6];
	__u8 src[6];
};

/* STATS (per-CPU array of u64) indices. */
enum turn_stat {
	TURN_STAT_TO_PEER_PACKETS = 0,
	TURN_STAT_TO_PEER_BYTES = 1,
	TURN_STAT_TO_CLIENT_PACKETS = 2,
	TURN_STAT_TO_CLIENT_BYTES = 3,
	TURN_STAT_PASS_EXPIRED = 4,
	TURN_STAT_PASS_UNFIT = 5,
	TURN_STAT_DROP_BUCKET = 6,
	TURN_STAT_PASS_NO_ALLOC = 7,
	TURN_STAT_PASS_TOO_BIG = 8,
	TURN_STAT_PASS_FIB = 9,
	TURN_STAT_DROP_ERROR = 10,
	TURN_STAT_PASS_NEIGH = 11,
	TURN_STAT_DROP_USER = 12,
	TURN_STAT_COUNT = 13,
};

_Static_assert(sizeof(struct turn_fwd_key) == 40, "FWD key ABI");
_Static_assert(sizeof(struct turn_rev_key) == 40, "REV key ABI");
_Static_assert(sizeof(struct turn_route) == 88, "route ABI");
_Static_assert(sizeof(struct turn_alloc) == 64, "alloc ABI");
_Static_assert(sizeof(struct turn_neigh_key) == 20, "neigh key ABI");
_Static_assert(sizeof(struct turn_neigh) == 12, "neigh ABI");
_Static_assert(sizeof(struct turn_user) == 80, "user ABI");

#endif
