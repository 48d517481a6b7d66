/* SPDX-License-Identifier: GPL-2.0 */
/*
 * turnpike in-kernel ChannelData fast path: what the TC and the XDP program share.
 *
 * The maps, the token bucket, and the decision and rewrite steps that do not depend on
 * how the packet is reached (an skb through helpers at TC, the frame in place at XDP).
 * Each program parses the headers its own way into a `struct turn_pkt`, asks
 * turn_plan() what the maps say, and applies the plan; everything that passes to user
 * space is decided before the first byte changes.
 */
#ifndef TURN_COMMON_H
#define TURN_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "turn_offload.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#define MAX_ROUTES 65536
#define MAX_ALLOCS 32768
#define MAX_NEIGHS 4096
/* Users with a traffic budget at once (USERS slots). */
#define MAX_USERS 65536
#define NSEC_PER_SEC 1000000000ULL
/* The TC program's payload moves go in CHUNK-byte pieces (its bounce buffer). */
#define CHUNK 256
#define TTL 64
#define NSEC_PER_USEC 1000ULL
#define USEC_PER_SEC 1000000ULL

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ROUTES);
	__type(key, struct turn_fwd_key);
	__type(value, struct turn_route);
} FWD SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ROUTES);
	__type(key, struct turn_rev_key);
	__type(value, struct turn_route);
} REV SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ALLOCS);
	__type(key, __u32);
	__type(value, struct turn_alloc);
} ALLOCS SEC(".maps");

/* Users' traffic budgets, which user space charges too (mmapped: BPF_F_MMAPABLE). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_USERS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct turn_user);
} USERS SEC(".maps");

/* Link-layer addresses of next hops, for the XDP program (which writes the Ethernet
 * header itself); the TC program lets bpf_redirect_neigh resolve them. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_NEIGHS);
	__type(key, struct turn_neigh_key);
	__type(value, struct turn_neigh);
} NEIGH SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TURN_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} STATS SEC(".maps");

/* The IP header as it came, then as it will leave. */
union iph {
	struct iphdr v4;
	struct ipv6hdr v6;
};

/* Checksum inputs, as 32-bit words in packet byte order. */
struct pseudo {
	__u32 src[4];
	__u32 dst[4];
	__u32 len;
};

struct udp_rest {
	__u32 ports;
	__u32 len;    /* UDP length field, then 16 zero bits */
	__u32 header; /* the ChannelData header (0 where absent) */
};

/* What the UDP checksum covered before and covers after, but the unchanged payload. */
struct turn_csum {
	struct pseudo old_ph, new_ph;
	struct udp_rest old_u, new_u;
};

/* Per-CPU scratch: the TC program's bounce buffer and the checksum inputs (the
 * 512-byte stack has no room for them). */
struct scratch {
	__u8 buf[CHUNK];
	struct turn_csum csum;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} SCRATCH SEC(".maps");

/* A UDP datagram as a program parsed it. */
struct turn_pkt {
	__u8 src[16]; /* IPv4 mapped */
	__u8 dst[16];
	struct udphdr udp;
	__u8 cd[4];   /* the first 4 payload bytes; zero when shorter */
	__u32 ip_len; /* the whole IP datagram */
	__u32 plen;   /* the UDP payload */
	int v6;
};

/* What the maps say to do with it. */
struct turn_plan {
	struct turn_route route;
	struct turn_alloc *alloc;
	struct turn_user *user; /* the user's budget, if the route names one */
	__u64 bytes;       /* application bytes, charged and counted */
	__u32 new_ulen;    /* UDP length as it leaves */
	__u32 new_ip_len;  /* IP datagram length as it leaves */
	__u8 cd[4];        /* REV: the header to prepend; FWD: the one stripped */
	int rev;
	int out6;
};

/* turn_plan's answers. */
#define TURN_RELAY 0
#define TURN_PASS 1

static __always_inline void stat_add(__u32 index, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&STATS, &index);

	if (v)
		*v += n;
}

static __always_inline int turn_pass(__u32 index)
{
	stat_add(index, 1);
	return TURN_PASS;
}

static __always_inline int is_v4mapped(const __u8 *ip)
{
	__u32 w[3];

	__builtin_memcpy(w, ip, sizeof(w));
	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff);
}

static __always_inline void map_v4(__u8 *out, const void *v4)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, v4, 4);
}

static __always_inline __u64 sat_mul(__u64 a, __u64 b)
{
	__u64 limit;

	if (a == 0)
		return 0;
	limit = ~0ULL / a;
	/* Keep clang from turning the check into a 128-bit multiply (no BPF libcall). */
	asm volatile("" : "+r"(limit));
	if (b > limit)
		return ~0ULL;
	return a * b;
}

/*
 * crates/proto/src/quota.rs TokenBucket::take, step for step: whole tokens only,
 * elapsed time truncated to microseconds, `last` advanced by exactly the time the
 * added tokens stand for (or set to now when the bucket fills). `rate` is the route's
 * (bytes per second, burst one second's worth), never 0: turn_charge skips uncapped
 * allocations. Caller holds a->lock.
 */
static __always_inline int bucket_take(struct turn_alloc *a, __u64 rate, __u64 now, __u64 bytes)
{
	__u64 elapsed_us, refill, sum;

	elapsed_us = now > a->last_ns ? (now - a->last_ns) / NSEC_PER_USEC : 0;
	refill = sat_mul(elapsed_us, rate) / USEC_PER_SEC;
	if (refill > 0) {
		sum = a->tokens + refill;
		if (sum < refill)
			sum = ~0ULL;
		if (sum >= rate) {
			a->tokens = rate;
			a->last_ns = now;
		} else {
			a->tokens = sum;
			a->last_ns += sat_mul(refill, USEC_PER_SEC) / rate * NSEC_PER_USEC;
		}
	}
	if (a->tokens >= bytes) {
		a->tokens -= bytes;
		return 1;
	}
	return 0;
}

/*
 * Looks `p` up and decides: TURN_RELAY with `plan` filled, or TURN_PASS (counted
 * where it is one of ours). Channels 0x4000-0x7FFF: RFC 5766's range, which the server
 * accepts too (coturn's uclient picks numbers above RFC 8656's 0x4FFF). Nothing is
 * charged yet: the program checks what only it can see, then calls turn_charge().
 */
static __always_inline int turn_plan(const struct turn_pkt *p, struct turn_plan *plan, __u64 now)
{
	struct turn_route *found = 0;

	plan->rev = 0;
	if (p->plen >= 4 && (p->cd[0] & 0xc0) == 0x40) {
		struct turn_fwd_key fk = {};

		__builtin_memcpy(fk.client_ip, p->src, 16);
		__builtin_memcpy(fk.server_ip, p->dst, 16);
		fk.client_port = p->udp.source;
		fk.server_port = p->udp.dest;
		__builtin_memcpy(&fk.channel, p->cd, 2);
		found = bpf_map_lookup_elem(&FWD, &fk);
	}
	if (!found) {
		struct turn_rev_key rk = {};

		__builtin_memcpy(rk.peer_ip, p->src, 16);
		__builtin_memcpy(rk.relay_ip, p->dst, 16);
		rk.peer_port = p->udp.source;
		rk.relay_port = p->udp.dest;
		found = bpf_map_lookup_elem(&REV, &rk);
		if (!found)
			return TURN_PASS;
		plan->rev = 1;
	}
	__builtin_memcpy(&plan->route, found, sizeof(plan->route));

	if (now >= plan->route.deadline_ns)
		return turn_pass(TURN_STAT_PASS_EXPIRED);
	/* The family it leaves in: the route's (RFC 6156: an IPv4 client may have an
	 * IPv6 relayed address and the other way round). Both of its addresses agree. */
	plan->out6 = !is_v4mapped(plan->route.dst_ip);
	if (is_v4mapped(plan->route.src_ip) == plan->out6)
		return turn_pass(TURN_STAT_PASS_UNFIT);
	/* An IPv6 UDP checksum is never 0 (RFC 8200 section 8.1). An IPv4 datagram sent
	 * without one (0) towards IPv6 would need a sum over the whole payload: user
	 * space relays it. An IPv6 one with 0 is invalid: the stack drops it there. (A
	 * CHECKSUM_PARTIAL skb's field holds the pseudo-header sum, never 0.) */
	if (p->udp.check == 0 && (p->v6 || plan->out6))
		return turn_pass(TURN_STAT_PASS_UNFIT);

	if (plan->rev) {
		/* The ChannelData length field is 16 bits; the IP length too. */
		if (p->plen > 0xffff - 4 || p->ip_len > 0xffff - 4)
			return turn_pass(TURN_STAT_PASS_UNFIT);
		plan->bytes = p->plen;
		plan->new_ulen = p->plen + 4 + sizeof(struct udphdr);
		__builtin_memcpy(plan->cd, &plan->route.channel, 2);
		plan->cd[2] = p->plen >> 8;
		plan->cd[3] = p->plen & 0xff;
	} else {
		/* Exactly one unpadded ChannelData message (RFC 8656 section 12). */
		if (((__u32)p->cd[2] << 8 | p->cd[3]) + 4 != p->plen)
			return turn_pass(TURN_STAT_PASS_UNFIT);
		plan->bytes = p->plen - 4;
		plan->new_ulen = p->plen - 4 + sizeof(struct udphdr);
		__builtin_memcpy(plan->cd, p->cd, 4);
	}
	/* The datagram as it leaves, in the route's family (the MTU is that path's). */
	plan->new_ip_len =
		(plan->out6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr)) + plan->new_ulen;

	plan->alloc = bpf_map_lookup_elem(&ALLOCS, &plan->route.alloc);
	if (!plan->alloc)
		return turn_pass(TURN_STAT_PASS_NO_ALLOC);
	plan->user = 0;
	if (plan->route.user) {
		__u32 slot = plan->route.user - 1;

		plan->user = bpf_map_lookup_elem(&USERS, &slot);
		if (!plan->user)
			return turn_pass(TURN_STAT_PASS_NO_ALLOC);
	}
	/* Where it goes was asked by user space when it installed the route (`egress.rs`):
	 * `bpf_fib_lookup` answers only for an interface with forwarding on, and a relay
	 * is a host, not a router. No way out, or larger than the path MTU: user space
	 * sends it (or fails as it does). */
	if (!plan->route.ifindex)
		return turn_pass(TURN_STAT_PASS_FIB);
	if (plan->new_ip_len > plan->route.mtu)
		return turn_pass(TURN_STAT_PASS_TOO_BIG);
	return TURN_RELAY;
}

/* UserBudget::roll: a new window or period when `at` is past the current one; whoever
 * swaps the start first resets the counters. */
static __always_inline void budget_roll(__u64 *start, __u64 *a, __u64 *b, __u64 at, __u64 length)
{
	__u64 current = *(volatile __u64 *)start;

	if (at > current && at - current >= length) {
		__u64 next = at - (at - current) % length;

		if (__sync_val_compare_and_swap(start, current, next) == current) {
			*(volatile __u64 *)a = 0;
			if (b)
				*(volatile __u64 *)b = 0;
		}
	}
}

/* crates/proto/src/budget.rs UserBudget::charge, step for step, on the counters user
 * space charges too: the period's bytes, then the second's packets and bytes. 1 to go
 * on; 0: over, counted as dropped. */
static __always_inline int budget_charge(struct turn_user *u, __u64 at, __u64 len)
{
	__u64 limit = u->bytes_per_period, pps = u->packets_per_sec, bps = u->bytes_per_sec;

	if (limit) {
		__u64 period = u->period_ns > NSEC_PER_SEC ? u->period_ns : NSEC_PER_SEC;
		__u64 used;

		budget_roll(&u->period, &u->period_bytes, 0, at, period);
		used = __sync_fetch_and_add(&u->period_bytes, len);
		if (used + len > limit || used + len < used) {
			__sync_fetch_and_sub(&u->period_bytes, len);
			__sync_fetch_and_add(&u->dropped, 1);
			return 0;
		}
	}
	if (pps || bps) {
		__u64 packets, bytes;

		budget_roll(&u->window, &u->window_packets, &u->window_bytes, at, NSEC_PER_SEC);
		packets = __sync_fetch_and_add(&u->window_packets, 1) + 1;
		bytes = __sync_fetch_and_add(&u->window_bytes, len) + len;
		if ((pps && packets > pps) || (bps && bytes > bps)) {
			__sync_fetch_and_add(&u->dropped, 1);
			return 0;
		}
	}
	return 1;
}

/* The allocation's shared token bucket, then the user's budget (the order user space
 * charges them in): 1 to go on; 0 when either is spent, and the datagram is dropped, as
 * user space drops it (and counts it) without relaying. */
static __always_inline int turn_charge(struct turn_plan *plan, __u64 now)
{
	int ok;

	/* Uncapped (rate 0): the bucket has nothing to say; no lock for it. */
	if (plan->route.rate) {
		bpf_spin_lock(&plan->alloc->lock);
		ok = bucket_take(plan->alloc, plan->route.rate, now, plan->bytes);
		bpf_spin_unlock(&plan->alloc->lock);
		if (!ok) {
			stat_add(TURN_STAT_DROP_BUCKET, 1);
			return 0;
		}
	}
	if (plan->user && !budget_charge(plan->user, now, plan->bytes)) {
		stat_add(TURN_STAT_DROP_USER, 1);
		return 0;
	}
	return 1;
}

/*
 * Fills `c` with what the UDP checksum covered before and will cover after, but the
 * payload, which moves by an even number of bytes and so sums the same. The pseudo-
 * headers' sums differ only in addresses and length: the protocol (17) counts the same
 * in both families, and an IPv4 address fills one word of four, the others staying
 * zero (RFC 768; RFC 8200 section 8.1).
 */
static __always_inline void turn_csum_inputs(const struct turn_pkt *p,
					     const struct turn_plan *plan, struct turn_csum *c)
{
	__builtin_memset(c, 0, sizeof(*c));
	if (p->v6) {
		__builtin_memcpy(c->old_ph.src, p->src, 16);
		__builtin_memcpy(c->old_ph.dst, p->dst, 16);
	} else {
		__builtin_memcpy(&c->old_ph.src[0], p->src + 12, 4);
		__builtin_memcpy(&c->old_ph.dst[0], p->dst + 12, 4);
	}
	if (plan->out6) {
		__builtin_memcpy(c->new_ph.src, plan->route.src_ip, 16);
		__builtin_memcpy(c->new_ph.dst, plan->route.dst_ip, 16);
	} else {
		__builtin_memcpy(&c->new_ph.src[0], plan->route.src_ip + 12, 4);
		__builtin_memcpy(&c->new_ph.dst[0], plan->route.dst_ip + 12, 4);
	}
	c->old_ph.len = bpf_htonl(p->plen + sizeof(struct udphdr));
	c->new_ph.len = bpf_htonl(plan->new_ulen);
	c->old_u.ports = (__u32)p->udp.source | (__u32)p->udp.dest << 16;
	c->new_u.ports = (__u32)plan->route.src_port | (__u32)plan->route.dst_port << 16;
	c->old_u.len = p->udp.len;
	c->new_u.len = bpf_htons(plan->new_ulen);
	if (plan->rev)
		__builtin_memcpy(&c->new_u.header, plan->cd, 4);
	else
		__builtin_memcpy(&c->old_u.header, plan->cd, 4);
}

static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/*
 * Rewrites `ip` (the header as it came, family `v6`) into the one that leaves: new
 * addresses and length, TTL / hop limit 64, DF per route. The same family keeps the
 * rest (traffic class, flow label, TOS, ID); a new family gets a fresh header: class,
 * label and TOS 0, a random IPv4 ID (RFC 6864). 0, or -1 if a helper failed.
 */
static __always_inline int turn_ip_header(union iph *ip, int v6, const struct turn_plan *plan)
{
	if (plan->out6) {
		if (!v6) {
			__builtin_memset(&ip->v6, 0, sizeof(ip->v6));
			ip->v6.version = 6;
			ip->v6.nexthdr = IPPROTO_UDP;
		}
		__builtin_memcpy(&ip->v6.saddr, plan->route.src_ip, 16);
		__builtin_memcpy(&ip->v6.daddr, plan->route.dst_ip, 16);
		ip->v6.payload_len = bpf_htons(plan->new_ulen);
		ip->v6.hop_limit = TTL;
		return 0;
	}
	{
		__s64 sum;

		if (v6) {
			__builtin_memset(&ip->v4, 0, sizeof(ip->v4));
			ip->v4.version = 4;
			ip->v4.ihl = 5;
			ip->v4.protocol = IPPROTO_UDP;
			ip->v4.id = (__u16)bpf_get_prandom_u32();
		}
		__builtin_memcpy(&ip->v4.saddr, plan->route.src_ip + 12, 4);
		__builtin_memcpy(&ip->v4.daddr, plan->route.dst_ip + 12, 4);
		ip->v4.tot_len = bpf_htons(plan->new_ip_len);
		ip->v4.ttl = TTL;
		ip->v4.frag_off = (plan->route.flags & TURN_ROUTE_DF) ? bpf_htons(0x4000) : 0;
		ip->v4.check = 0;
		sum = bpf_csum_diff(0, 0, (__be32 *)&ip->v4, sizeof(ip->v4), 0);
		if (sum < 0)
			return -1;
		ip->v4.check = (__u16)~csum_fold((__u32)sum);
		return 0;
	}
}

/* Counts a relayed datagram: the allocation's counters and the program's. */
static __always_inline void turn_count(const struct turn_plan *plan)
{
	struct turn_alloc *a = plan->alloc;

	bpf_spin_lock(&a->lock);
	if (plan->rev) {
		a->to_client_packets += 1;
		a->to_client_bytes += plan->bytes;
	} else {
		a->to_peer_packets += 1;
		a->to_peer_bytes += plan->bytes;
	}
	bpf_spin_unlock(&a->lock);
	if (plan->rev) {
		stat_add(TURN_STAT_TO_CLIENT_PACKETS, 1);
		stat_add(TURN_STAT_TO_CLIENT_BYTES, plan->bytes);
	} else {
		stat_add(TURN_STAT_TO_PEER_PACKETS, 1);
		stat_add(TURN_STAT_TO_PEER_BYTES, plan->bytes);
	}
}

#endif
