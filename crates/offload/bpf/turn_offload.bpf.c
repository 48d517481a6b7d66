// SPDX-License-Identifier: GPL-2.0
/*
 * turnpike: relay TURN ChannelData in the kernel (TC ingress, "classifier").
 *
 * User space (the sans-IO core) decides everything and fills the maps; this program
 * only applies what they say to the packets they name. Anything it is not sure about
 * goes on to user space untouched, before the first byte is changed: every "pass"
 * decision is taken before the packet is modified. "Pass" is TC_ACT_UNSPEC (TCX_NEXT):
 * the next program attached to the interface (a CNI's, a firewall's) still sees the
 * packet; TC_ACT_OK would end the chain here.
 *
 * Client -> peer (FWD): a UDP datagram whose payload is exactly one ChannelData
 * message (RFC 8656 section 12: channel 0x4000-0x4FFF, or up to 0x7FFF as RFC 5766 allowed and
 * the server accepts: first byte 0x40-0x7F, length
 * field + 4 == UDP payload length, so a padded one passes) loses its 4-byte header
 * and leaves from the relayed address to the peer.
 * Peer -> client (REV): the UDP payload gets a 4-byte ChannelData header (no padding
 * over UDP, section 12.5) and leaves from the server address to the client.
 * Either may change family on the way (RFC 6156, RFC 8656 section 7.2 ADDITIONAL-
 * ADDRESS-FAMILY): the route's addresses say which; the IP header is then rebuilt.
 *
 * Checksums: the UDP header never moves (across families bpf_skb_change_proto moves
 * the MAC header by the 20 bytes the IP header grows or shrinks); the payload is moved by 4 bytes and
 * the tail adjusted, so a CHECKSUM_PARTIAL skb (veth with tx offload on) keeps a valid
 * csum_start. The UDP checksum is updated through bpf_l4_csum_replace only: pseudo
 * header changes (addresses, length) with BPF_F_PSEUDO_HDR, which the kernel applies
 * to the partial sum of a CHECKSUM_PARTIAL skb; ports, the UDP length field and the
 * 4 header bytes without it, which the kernel skips for CHECKSUM_PARTIAL (the device
 * or skb_checksum_help sums them later) and applies otherwise.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
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
/* Payload moves go in CHUNK-byte pieces, at most MAX_CHUNKS of them plus the rest. */
#define CHUNK 256
#define MAX_CHUNKS 64
#define MAX_MOVE (CHUNK * MAX_CHUNKS + CHUNK - 1)
#define TTL 64
#define NSEC_PER_USEC 1000ULL
#define USEC_PER_SEC 1000000ULL

char LICENSE[] SEC("license") = "GPL";

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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TURN_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} STATS SEC(".maps");

static __always_inline void stat_add(__u32 index, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&STATS, &index);

	if (v)
		*v += n;
}

static __always_inline int pass(__u32 index)
{
	stat_add(index, 1);
	return TC_ACT_UNSPEC;
}

static __always_inline int is_v4mapped(const __u8 *ip)
{
	__u32 w[3];

	__builtin_memcpy(w, ip, sizeof(w));
	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff);
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
 * added tokens stand for (or set to now when the bucket fills). Caller holds a->lock.
 */
static __always_inline int bucket_take(struct turn_alloc *a, __u64 now, __u64 bytes)
{
	__u64 rate = a->rate;
	__u64 elapsed_us, refill, sum;

	if (rate == 0)
		return 1;
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

#define PIECE_FWD(N)                                                           \
	if (rem & (N)) {                                                       \
		if (bpf_skb_load_bytes(skb, at + 4 + off, buf, (N)) ||          \
		    bpf_skb_store_bytes(skb, at + off, buf, (N), 0))            \
			return -1;                                             \
		off += (N);                                                    \
	}

/* Moves [at + 4, at + 4 + len) to [at, at + len), front to back. */
static __always_inline int move_left(struct __sk_buff *skb, __u32 at, __u32 len, __u8 *buf)
{
	__u32 off = 0, rem;

	for (int i = 0; i < MAX_CHUNKS; i++) {
		if (len - off < CHUNK)
			break;
		if (bpf_skb_load_bytes(skb, at + 4 + off, buf, CHUNK) ||
		    bpf_skb_store_bytes(skb, at + off, buf, CHUNK, 0))
			return -1;
		off += CHUNK;
	}
	rem = len - off;
	PIECE_FWD(128)
	PIECE_FWD(64)
	PIECE_FWD(32)
	PIECE_FWD(16)
	PIECE_FWD(8)
	PIECE_FWD(4)
	PIECE_FWD(2)
	PIECE_FWD(1)
	return 0;
}

#define PIECE_REV(N)                                                           \
	if (end & (N)) {                                                       \
		end -= (N);                                                    \
		if (bpf_skb_load_bytes(skb, at + end, buf, (N)) ||              \
		    bpf_skb_store_bytes(skb, at + 4 + end, buf, (N), 0))        \
			return -1;                                             \
	}

/* Moves [at, at + len) to [at + 4, at + 4 + len), back to front. */
static __always_inline int move_right(struct __sk_buff *skb, __u32 at, __u32 len, __u8 *buf)
{
	__u32 end = len;

	for (int i = 0; i < MAX_CHUNKS; i++) {
		if (end < CHUNK)
			break;
		end -= CHUNK;
		if (bpf_skb_load_bytes(skb, at + end, buf, CHUNK) ||
		    bpf_skb_store_bytes(skb, at + 4 + end, buf, CHUNK, 0))
			return -1;
	}
	PIECE_REV(1)
	PIECE_REV(2)
	PIECE_REV(4)
	PIECE_REV(8)
	PIECE_REV(16)
	PIECE_REV(32)
	PIECE_REV(64)
	PIECE_REV(128)
	return 0;
}

/* The IPv4 header as it will leave, plus the rest of what the rewrite needs. */
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

/* The bounce buffer of the payload moves and the checksum inputs (the 512-byte
 * stack has no room for them). */
struct scratch {
	__u8 buf[CHUNK];
	struct pseudo old_ph, new_ph;
	struct udp_rest old_u, new_u;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} SCRATCH SEC(".maps");

/*
 * Moves the payload by 4 bytes: [at + 4, at + 4 + len) to at (`right` 0) or
 * [at, at + len) to at + 4 (`right` 1), through the per-CPU bounce buffer. A global
 * function, so the verifier checks its loops once, with any arguments, instead of
 * once for every state the program reaches it in (family in and out, direction).
 */
__attribute__((noinline)) int turn_move_payload(struct __sk_buff *skb, __u32 at, __u32 len,
						__u32 right)
{
	__u32 zero = 0;
	struct scratch *scratch = bpf_map_lookup_elem(&SCRATCH, &zero);

	if (!scratch || len > MAX_MOVE)
		return -1;
	if (right)
		return move_right(skb, at, len, scratch->buf);
	return move_left(skb, at, len, scratch->buf);
}

SEC("classifier")
int turn_offload(struct __sk_buff *skb)
{
	struct ethhdr eth;
	union iph ip;
	struct udphdr udp;
	struct turn_route route;
	struct pseudo *old_ph, *new_ph;
	struct udp_rest *old_u, *new_u;
	struct turn_alloc *alloc;
	struct scratch *scratch;
	__u32 zero = 0;
	struct turn_route *found = 0;
	__u8 src[16], dst[16];
	__u8 cd[4];
	__u32 l4, ip_len, plen, moved, new_plen, tail_len, new_ip_len, new_ulen, l4flags;
	__u64 now, bytes;
	int v6, out6, rev = 0, ok;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)))
		return TC_ACT_UNSPEC;

	if (eth.h_proto == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip.v4, sizeof(ip.v4)))
			return TC_ACT_UNSPEC;
		if (ip.v4.version != 4 || ip.v4.protocol != IPPROTO_UDP)
			return TC_ACT_UNSPEC;
		/* Options or fragments: the program does not look further. */
		if (ip.v4.ihl != 5 || (ip.v4.frag_off & bpf_htons(0x3fff)))
			return pass(TURN_STAT_PASS_UNFIT);
		v6 = 0;
		ip_len = bpf_ntohs(ip.v4.tot_len);
		l4 = ETH_HLEN + sizeof(struct iphdr);
		if (ip_len < sizeof(struct iphdr) + sizeof(struct udphdr))
			return TC_ACT_UNSPEC;
		plen = ip_len - sizeof(struct iphdr) - sizeof(struct udphdr);
		__builtin_memset(src, 0, 10);
		src[10] = 0xff;
		src[11] = 0xff;
		__builtin_memcpy(dst, src, 12);
		__builtin_memcpy(src + 12, &ip.v4.saddr, 4);
		__builtin_memcpy(dst + 12, &ip.v4.daddr, 4);
	} else if (eth.h_proto == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip.v6, sizeof(ip.v6)))
			return TC_ACT_UNSPEC;
		if (ip.v6.version != 6)
			return TC_ACT_UNSPEC;
		if (ip.v6.nexthdr != IPPROTO_UDP) {
			/* An extension header (hop-by-hop, routing, fragment, destination)
			 * directly before UDP is counted as unfit; deeper chains and other
			 * protocols (MLD's hop-by-hop, ICMPv6) pass uncounted. */
			__u8 next = 0;

			if ((ip.v6.nexthdr == 0 || ip.v6.nexthdr == 43 || ip.v6.nexthdr == 44 ||
			     ip.v6.nexthdr == 60) &&
			    !bpf_skb_load_bytes(skb, ETH_HLEN + sizeof(ip.v6), &next, 1) &&
			    next == IPPROTO_UDP)
				return pass(TURN_STAT_PASS_UNFIT);
			return TC_ACT_UNSPEC;
		}
		v6 = 1;
		ip_len = sizeof(struct ipv6hdr) + bpf_ntohs(ip.v6.payload_len);
		l4 = ETH_HLEN + sizeof(struct ipv6hdr);
		if (ip_len < sizeof(struct ipv6hdr) + sizeof(struct udphdr))
			return TC_ACT_UNSPEC;
		plen = ip_len - sizeof(struct ipv6hdr) - sizeof(struct udphdr);
		__builtin_memcpy(src, &ip.v6.saddr, 16);
		__builtin_memcpy(dst, &ip.v6.daddr, 16);
	} else {
		return TC_ACT_UNSPEC;
	}

	if (ETH_HLEN + ip_len > skb->len)
		return TC_ACT_UNSPEC;
	if (bpf_skb_load_bytes(skb, l4, &udp, sizeof(udp)))
		return TC_ACT_UNSPEC;
	if (bpf_ntohs(udp.len) != plen + sizeof(struct udphdr))
		return TC_ACT_UNSPEC;

	__builtin_memset(cd, 0, sizeof(cd));
	if (plen >= 4) {
		if (bpf_skb_load_bytes(skb, l4 + sizeof(udp), cd, sizeof(cd)))
			return TC_ACT_UNSPEC;
		/* 0x4000-0x7FFF: RFC 5766's range, which the server accepts too (coturn's
		 * uclient picks numbers above RFC 8656's 0x4FFF). */
		if ((cd[0] & 0xc0) == 0x40) {
			struct turn_fwd_key fk = {};

			__builtin_memcpy(fk.client_ip, src, 16);
			__builtin_memcpy(fk.server_ip, dst, 16);
			fk.client_port = udp.source;
			fk.server_port = udp.dest;
			__builtin_memcpy(&fk.channel, cd, 2);
			found = bpf_map_lookup_elem(&FWD, &fk);
		}
	}
	if (!found) {
		struct turn_rev_key rk = {};

		__builtin_memcpy(rk.peer_ip, src, 16);
		__builtin_memcpy(rk.relay_ip, dst, 16);
		rk.peer_port = udp.source;
		rk.relay_port = udp.dest;
		found = bpf_map_lookup_elem(&REV, &rk);
		if (!found)
			return TC_ACT_UNSPEC;
		rev = 1;
	}
	__builtin_memcpy(&route, found, sizeof(route));

	now = bpf_ktime_get_ns();
	if (now >= route.deadline_ns)
		return pass(TURN_STAT_PASS_EXPIRED);
	/* The family it leaves in: the route's (RFC 6156: an IPv4 client may have an
	 * IPv6 relayed address and the other way round). Both of its addresses agree. */
	out6 = !is_v4mapped(route.dst_ip);
	if (is_v4mapped(route.src_ip) == out6)
		return pass(TURN_STAT_PASS_UNFIT);
	/* bpf_skb_change_proto translates from skb->protocol: it must be the header's. */
	if (out6 != v6 && skb->protocol != eth.h_proto)
		return pass(TURN_STAT_PASS_UNFIT);
	/* An IPv6 UDP checksum is never 0 (RFC 8200 section 8.1). An IPv4 datagram sent
	 * without one (0) towards IPv6 would need a sum over the whole payload: user
	 * space relays it. An IPv6 one with 0 is invalid: the stack drops it there. (A
	 * CHECKSUM_PARTIAL skb's field holds the pseudo-header sum, never 0.) */
	if (udp.check == 0 && (v6 || out6))
		return pass(TURN_STAT_PASS_UNFIT);
	if (skb->gso_size != 0 || skb->gso_segs > 1)
		return pass(TURN_STAT_PASS_UNFIT);

	if (rev) {
		/* The ChannelData length field is 16 bits; the IP length too. */
		if (plen > 0xffff - 4 || ip_len > 0xffff - 4)
			return pass(TURN_STAT_PASS_UNFIT);
		moved = plen;
		new_plen = plen + 4;
		tail_len = ip_len + 4;
		bytes = plen;
		__builtin_memcpy(cd, &route.channel, 2);
		cd[2] = plen >> 8;
		cd[3] = plen & 0xff;
	} else {
		/* Exactly one unpadded ChannelData message (RFC 8656 section 12). */
		if (((__u32)cd[2] << 8 | cd[3]) + 4 != plen)
			return pass(TURN_STAT_PASS_UNFIT);
		moved = plen - 4;
		new_plen = plen - 4;
		tail_len = ip_len - 4;
		bytes = moved;
	}
	if (moved > MAX_MOVE)
		return pass(TURN_STAT_PASS_UNFIT);
	new_ulen = new_plen + sizeof(struct udphdr);
	/* The datagram as it leaves, in the route's family (the MTU is that path's). */
	new_ip_len = (out6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr)) + new_ulen;

	alloc = bpf_map_lookup_elem(&ALLOCS, &route.alloc);
	if (!alloc)
		return pass(TURN_STAT_PASS_NO_ALLOC);

	/* Where does it go? Not `bpf_fib_lookup`: it answers only for an interface with
	 * forwarding on, and a relay is a host, not a router. User space looked the route
	 * up when it installed this one (`egress.rs`); the datagram leaves by that
	 * interface through `bpf_redirect_neigh`, which routes it there and resolves the
	 * next hop. Larger than the path MTU: user space sends it (or fails as it does). */
	if (!route.ifindex)
		return pass(TURN_STAT_PASS_FIB);
	if (new_ip_len > route.mtu)
		return pass(TURN_STAT_PASS_TOO_BIG);

	/* The shared token bucket of the allocation; over it the datagram is dropped,
	 * as user space drops it (and counts it) without relaying. */
	bpf_spin_lock(&alloc->lock);
	ok = bucket_take(alloc, now, bytes);
	bpf_spin_unlock(&alloc->lock);
	if (!ok) {
		stat_add(TURN_STAT_DROP_BUCKET, 1);
		return TC_ACT_SHOT;
	}

	/* From here on the packet changes; a failing helper drops it. */
	scratch = bpf_map_lookup_elem(&SCRATCH, &zero);
	if (!scratch)
		goto error;
	old_ph = &scratch->old_ph;
	new_ph = &scratch->new_ph;
	old_u = &scratch->old_u;
	new_u = &scratch->new_u;
	__builtin_memset(old_ph, 0, sizeof(*old_ph));
	__builtin_memset(new_ph, 0, sizeof(*new_ph));
	__builtin_memset(old_u, 0, sizeof(*old_u));
	__builtin_memset(new_u, 0, sizeof(*new_u));
	/* The pseudo-headers' sums differ only in addresses and length: the protocol
	 * (17) counts the same in both families, and an IPv4 address fills one word of
	 * four, the others staying zero (RFC 768; RFC 8200 section 8.1). */
	if (v6) {
		__builtin_memcpy(old_ph->src, src, 16);
		__builtin_memcpy(old_ph->dst, dst, 16);
	} else {
		__builtin_memcpy(&old_ph->src[0], src + 12, 4);
		__builtin_memcpy(&old_ph->dst[0], dst + 12, 4);
	}
	if (out6) {
		__builtin_memcpy(new_ph->src, route.src_ip, 16);
		__builtin_memcpy(new_ph->dst, route.dst_ip, 16);
	} else {
		__builtin_memcpy(&new_ph->src[0], route.src_ip + 12, 4);
		__builtin_memcpy(&new_ph->dst[0], route.dst_ip + 12, 4);
	}
	old_ph->len = bpf_htonl(plen + sizeof(struct udphdr));
	new_ph->len = bpf_htonl(new_ulen);
	old_u->ports = (__u32)udp.source | (__u32)udp.dest << 16;
	new_u->ports = (__u32)route.src_port | (__u32)route.dst_port << 16;
	old_u->len = udp.len;
	new_u->len = bpf_htons(new_ulen);
	if (rev)
		__builtin_memcpy(&new_u->header, cd, 4);
	else
		__builtin_memcpy(&old_u->header, cd, 4);

	if (rev) {
		if (bpf_skb_change_tail(skb, ETH_HLEN + tail_len, 0) ||
		    turn_move_payload(skb, l4 + sizeof(udp), moved, 1) ||
		    bpf_skb_store_bytes(skb, l4 + sizeof(udp), cd, 4, 0))
			goto error;
	} else {
		if (turn_move_payload(skb, l4 + sizeof(udp), moved, 0) ||
		    bpf_skb_change_tail(skb, ETH_HLEN + tail_len, 0))
			goto error;
	}

	/* Across families: bpf_skb_change_proto inserts 20 zero bytes after the MAC
	 * header (IPv4 -> IPv6) or removes the first 20 of the IPv6 header (IPv6 ->
	 * IPv4), moving the MAC header, never the UDP header: the checksum start of a
	 * CHECKSUM_PARTIAL skb (an offset from its head) still names the UDP header. */
	if (out6 != v6) {
		eth.h_proto = out6 ? bpf_htons(ETH_P_IPV6) : bpf_htons(ETH_P_IP);
		if (bpf_skb_change_proto(skb, eth.h_proto, 0) ||
		    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_proto), &eth.h_proto, 2, 0))
			goto error;
		l4 = ETH_HLEN + (out6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr));
	}

	/* IP header: new addresses and length, TTL / hop limit 64, DF per route. The
	 * same family keeps the rest (traffic class, flow label, TOS, ID); a new family
	 * gets a fresh header: class, label and TOS 0, a random IPv4 ID (RFC 6864). */
	if (out6) {
		if (!v6) {
			__builtin_memset(&ip.v6, 0, sizeof(ip.v6));
			ip.v6.version = 6;
			ip.v6.nexthdr = IPPROTO_UDP;
		}
		__builtin_memcpy(&ip.v6.saddr, route.src_ip, 16);
		__builtin_memcpy(&ip.v6.daddr, route.dst_ip, 16);
		ip.v6.payload_len = bpf_htons(new_ulen);
		ip.v6.hop_limit = TTL;
		if (bpf_skb_store_bytes(skb, ETH_HLEN, &ip.v6, sizeof(ip.v6), 0))
			goto error;
	} else {
		__s64 sum;
		__u32 c;

		if (v6) {
			__builtin_memset(&ip.v4, 0, sizeof(ip.v4));
			ip.v4.version = 4;
			ip.v4.ihl = 5;
			ip.v4.protocol = IPPROTO_UDP;
			ip.v4.id = (__u16)bpf_get_prandom_u32();
		}
		__builtin_memcpy(&ip.v4.saddr, route.src_ip + 12, 4);
		__builtin_memcpy(&ip.v4.daddr, route.dst_ip + 12, 4);
		ip.v4.tot_len = bpf_htons(new_ip_len);
		ip.v4.ttl = TTL;
		ip.v4.frag_off = (route.flags & TURN_ROUTE_DF) ? bpf_htons(0x4000) : 0;
		ip.v4.check = 0;
		sum = bpf_csum_diff(0, 0, (__be32 *)&ip.v4, sizeof(ip.v4), 0);
		if (sum < 0)
			goto error;
		c = (__u32)sum;
		c = (c & 0xffff) + (c >> 16);
		c = (c & 0xffff) + (c >> 16);
		ip.v4.check = (__u16)~c;
		if (bpf_skb_store_bytes(skb, ETH_HLEN, &ip.v4, sizeof(ip.v4), 0))
			goto error;
	}

	/* UDP header: ports and length; the checksum follows by difference. */
	udp.source = route.src_port;
	udp.dest = route.dst_port;
	udp.len = bpf_htons(new_ulen);
	if (bpf_skb_store_bytes(skb, l4, &udp, 6, 0))
		goto error;
	/* MARK_MANGLED_0: an IPv4 datagram without checksum (0) stays without one
	 * (it goes to IPv4 only, see above), and a sum that comes out 0 is sent as
	 * 0xFFFF, which IPv6 requires (RFC 8200 section 8.1) and IPv4 allows (RFC 768). */
	l4flags = BPF_F_MARK_MANGLED_0 | (out6 ? BPF_F_IPV6 : 0);
	{
		__s64 diff = bpf_csum_diff((__be32 *)old_ph, sizeof(*old_ph), (__be32 *)new_ph,
					   sizeof(*new_ph), 0);

		if (bpf_l4_csum_replace(skb, l4 + offsetof(struct udphdr, check), 0, (__u32)diff,
					BPF_F_PSEUDO_HDR | l4flags))
			goto error;
		diff = bpf_csum_diff((__be32 *)old_u, sizeof(*old_u), (__be32 *)new_u,
				     sizeof(*new_u), 0);
		if (bpf_l4_csum_replace(skb, l4 + offsetof(struct udphdr, check), 0, (__u32)diff,
					l4flags))
			goto error;
	}

	bpf_spin_lock(&alloc->lock);
	if (rev) {
		alloc->to_client_packets += 1;
		alloc->to_client_bytes += bytes;
	} else {
		alloc->to_peer_packets += 1;
		alloc->to_peer_bytes += bytes;
	}
	bpf_spin_unlock(&alloc->lock);
	if (rev) {
		stat_add(TURN_STAT_TO_CLIENT_PACKETS, 1);
		stat_add(TURN_STAT_TO_CLIENT_BYTES, bytes);
	} else {
		stat_add(TURN_STAT_TO_PEER_PACKETS, 1);
		stat_add(TURN_STAT_TO_PEER_BYTES, bytes);
	}

	{
		struct bpf_redir_neigh nh = {};
		__u64 *hop = (__u64 *)route.next_hop;

		if (!(hop[0] | hop[1]))
			return bpf_redirect_neigh(route.ifindex, NULL, 0, 0);
		if (is_v4mapped(route.next_hop)) {
			nh.nh_family = AF_INET;
			__builtin_memcpy(&nh.ipv4_nh, route.next_hop + 12, 4);
		} else {
			nh.nh_family = AF_INET6;
			__builtin_memcpy(nh.ipv6_nh, route.next_hop, 16);
		}
		return bpf_redirect_neigh(route.ifindex, &nh, sizeof(nh), 0);
	}

error:
	stat_add(TURN_STAT_DROP_ERROR, 1);
	return TC_ACT_SHOT;
}
