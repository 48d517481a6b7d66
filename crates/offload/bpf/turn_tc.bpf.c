// SPDX-License-Identifier: GPL-2.0
/*
 * turnpike: relay TURN ChannelData in the kernel (TC ingress, "classifier").
 * The decisions, maps and rewrites it shares with the XDP program: turn_common.h.
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
#include <linux/pkt_cls.h>

#include "turn_common.h"

/* Payload moves go in CHUNK-byte pieces, at most MAX_CHUNKS of them plus the rest. */
#define MAX_CHUNKS 64
#define MAX_MOVE (CHUNK * MAX_CHUNKS + CHUNK - 1)

char LICENSE[] SEC("license") = "GPL";

/* Counts a datagram passed on to user space. */
static __always_inline int pass(__u32 index)
{
	stat_add(index, 1);
	return TC_ACT_UNSPEC;
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
	struct turn_pkt p;
	struct turn_plan plan;
	struct turn_csum *c;
	struct scratch *scratch;
	__u32 zero = 0;
	__u32 l4, moved, tail_len, l4flags;
	__u64 now;

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
		p.v6 = 0;
		p.ip_len = bpf_ntohs(ip.v4.tot_len);
		l4 = ETH_HLEN + sizeof(struct iphdr);
		if (p.ip_len < sizeof(struct iphdr) + sizeof(struct udphdr))
			return TC_ACT_UNSPEC;
		p.plen = p.ip_len - sizeof(struct iphdr) - sizeof(struct udphdr);
		map_v4(p.src, &ip.v4.saddr);
		map_v4(p.dst, &ip.v4.daddr);
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
		p.v6 = 1;
		p.ip_len = sizeof(struct ipv6hdr) + bpf_ntohs(ip.v6.payload_len);
		l4 = ETH_HLEN + sizeof(struct ipv6hdr);
		if (p.ip_len < sizeof(struct ipv6hdr) + sizeof(struct udphdr))
			return TC_ACT_UNSPEC;
		p.plen = p.ip_len - sizeof(struct ipv6hdr) - sizeof(struct udphdr);
		__builtin_memcpy(p.src, &ip.v6.saddr, 16);
		__builtin_memcpy(p.dst, &ip.v6.daddr, 16);
	} else {
		return TC_ACT_UNSPEC;
	}

	if (ETH_HLEN + p.ip_len > skb->len)
		return TC_ACT_UNSPEC;
	if (bpf_skb_load_bytes(skb, l4, &p.udp, sizeof(p.udp)))
		return TC_ACT_UNSPEC;
	if (bpf_ntohs(p.udp.len) != p.plen + sizeof(struct udphdr))
		return TC_ACT_UNSPEC;
	__builtin_memset(p.cd, 0, sizeof(p.cd));
	if (p.plen >= 4 && bpf_skb_load_bytes(skb, l4 + sizeof(p.udp), p.cd, sizeof(p.cd)))
		return TC_ACT_UNSPEC;

	now = bpf_ktime_get_ns();
	if (turn_plan(&p, &plan, now) != TURN_RELAY)
		return TC_ACT_UNSPEC;
	/* bpf_skb_change_proto translates from skb->protocol: it must be the header's. */
	if (plan.out6 != p.v6 && skb->protocol != eth.h_proto)
		return pass(TURN_STAT_PASS_UNFIT);
	if (skb->gso_size != 0 || skb->gso_segs > 1)
		return pass(TURN_STAT_PASS_UNFIT);
	moved = plan.rev ? p.plen : p.plen - 4;
	tail_len = plan.rev ? p.ip_len + 4 : p.ip_len - 4;
	if (moved > MAX_MOVE)
		return pass(TURN_STAT_PASS_UNFIT);
	if (!turn_charge(&plan, now))
		return TC_ACT_SHOT;

	/* From here on the packet changes; a failing helper drops it. */
	scratch = bpf_map_lookup_elem(&SCRATCH, &zero);
	if (!scratch)
		goto error;
	c = &scratch->csum;
	turn_csum_inputs(&p, &plan, c);

	if (plan.rev) {
		if (bpf_skb_change_tail(skb, ETH_HLEN + tail_len, 0) ||
		    turn_move_payload(skb, l4 + sizeof(p.udp), moved, 1) ||
		    bpf_skb_store_bytes(skb, l4 + sizeof(p.udp), plan.cd, 4, 0))
			goto error;
	} else {
		if (turn_move_payload(skb, l4 + sizeof(p.udp), moved, 0) ||
		    bpf_skb_change_tail(skb, ETH_HLEN + tail_len, 0))
			goto error;
	}

	/* Across families: bpf_skb_change_proto inserts 20 zero bytes after the MAC
	 * header (IPv4 -> IPv6) or removes the first 20 of the IPv6 header (IPv6 ->
	 * IPv4), moving the MAC header, never the UDP header: the checksum start of a
	 * CHECKSUM_PARTIAL skb (an offset from its head) still names the UDP header. */
	if (plan.out6 != p.v6) {
		eth.h_proto = plan.out6 ? bpf_htons(ETH_P_IPV6) : bpf_htons(ETH_P_IP);
		if (bpf_skb_change_proto(skb, eth.h_proto, 0) ||
		    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_proto), &eth.h_proto, 2, 0))
			goto error;
		l4 = ETH_HLEN + (plan.out6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr));
	}

	if (turn_ip_header(&ip, p.v6, &plan))
		goto error;
	if (plan.out6) {
		if (bpf_skb_store_bytes(skb, ETH_HLEN, &ip.v6, sizeof(ip.v6), 0))
			goto error;
	} else {
		if (bpf_skb_store_bytes(skb, ETH_HLEN, &ip.v4, sizeof(ip.v4), 0))
			goto error;
	}

	/* UDP header: ports and length; the checksum follows by difference. */
	p.udp.source = plan.route.src_port;
	p.udp.dest = plan.route.dst_port;
	p.udp.len = bpf_htons(plan.new_ulen);
	if (bpf_skb_store_bytes(skb, l4, &p.udp, 6, 0))
		goto error;
	/* MARK_MANGLED_0: an IPv4 datagram without checksum (0) stays without one
	 * (it goes to IPv4 only, see turn_plan), and a sum that comes out 0 is sent as
	 * 0xFFFF, which IPv6 requires (RFC 8200 section 8.1) and IPv4 allows (RFC 768). */
	l4flags = BPF_F_MARK_MANGLED_0 | (plan.out6 ? BPF_F_IPV6 : 0);
	{
		__s64 diff = bpf_csum_diff((__be32 *)&c->old_ph, sizeof(c->old_ph),
					   (__be32 *)&c->new_ph, sizeof(c->new_ph), 0);

		if (bpf_l4_csum_replace(skb, l4 + offsetof(struct udphdr, check), 0, (__u32)diff,
					BPF_F_PSEUDO_HDR | l4flags))
			goto error;
		diff = bpf_csum_diff((__be32 *)&c->old_u, sizeof(c->old_u), (__be32 *)&c->new_u,
				     sizeof(c->new_u), 0);
		if (bpf_l4_csum_replace(skb, l4 + offsetof(struct udphdr, check), 0, (__u32)diff,
					l4flags))
			goto error;
	}

	turn_count(&plan);

	{
		struct bpf_redir_neigh nh = {};
		__u64 *hop = (__u64 *)plan.route.next_hop;

		if (!(hop[0] | hop[1]))
			return bpf_redirect_neigh(plan.route.ifindex, NULL, 0, 0);
		if (is_v4mapped(plan.route.next_hop)) {
			nh.nh_family = AF_INET;
			__builtin_memcpy(&nh.ipv4_nh, plan.route.next_hop + 12, 4);
		} else {
			nh.nh_family = AF_INET6;
			__builtin_memcpy(nh.ipv6_nh, plan.route.next_hop, 16);
		}
		return bpf_redirect_neigh(plan.route.ifindex, &nh, sizeof(nh), 0);
	}

error:
	stat_add(TURN_STAT_DROP_ERROR, 1);
	return TC_ACT_SHOT;
}
