// SPDX-License-Identifier: GPL-2.0
/*
 * turnpike: relay TURN ChannelData in the kernel at XDP, before an skb exists.
 * The decisions, maps and rewrites it shares with the TC program: turn_common.h.
 *
 * The same routes as at TC, applied to the frame in place. Where the TC program
 * moves the payload by 4 bytes (an skb's checksum start must keep naming the UDP
 * header), this one moves the headers instead: bpf_xdp_adjust_head grows or shrinks
 * the room in front of the payload by the 4 ChannelData bytes and the difference of
 * the IP headers (IPv4 <-> IPv6), and the Ethernet, IP and UDP headers are written
 * anew in front of the payload, which never moves. The UDP checksum is updated by
 * difference (RFC 1624) in the program: a frame at XDP has no checksum offload state,
 * so its checksum field is taken as complete, which holds for frames from a NIC; a
 * veth whose sender leaves checksums to offload (CHECKSUM_PARTIAL) hands over a
 * partial sum instead, and that traffic wants mode "tc".
 *
 * The frame leaves by XDP_TX (the interface it came in by, but a veth: see
 * TURN_ROUTE_VETH) or bpf_redirect to the route's interface, with the Ethernet addresses user space put in NEIGH for the
 * route's next hop; without them (not resolved yet) the datagram passes to user space,
 * whose send makes the kernel resolve it. Everything else passes (XDP_PASS): VLAN tags,
 * IP options, fragments, IPv6 extension headers, and all turn_plan() passes.
 */
#include "turn_common.h"

char LICENSE[] SEC("license") = "GPL";

static __always_inline int pass(__u32 index)
{
	stat_add(index, 1);
	return XDP_PASS;
}

SEC("xdp")
int turn_offload_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct udphdr *uh;
	union iph ip;
	struct turn_pkt p;
	struct turn_plan plan;
	struct turn_neigh_key nk = {};
	struct turn_neigh *found, neigh;
	struct turn_csum *c;
	struct scratch *scratch;
	__u32 zero = 0, frame, trailing;
	__u16 check;
	__u64 now;
	int delta, hdr_in, hdr_out;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	frame = end - data;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *h = (void *)(eth + 1);

		if ((void *)(h + 1) > end)
			return XDP_PASS;
		if (h->version != 4 || h->protocol != IPPROTO_UDP)
			return XDP_PASS;
		if (h->ihl != 5 || (h->frag_off & bpf_htons(0x3fff)))
			return pass(TURN_STAT_PASS_UNFIT);
		__builtin_memcpy(&ip.v4, h, sizeof(ip.v4));
		p.v6 = 0;
		p.ip_len = bpf_ntohs(ip.v4.tot_len);
		if (p.ip_len < sizeof(struct iphdr) + sizeof(struct udphdr))
			return XDP_PASS;
		p.plen = p.ip_len - sizeof(struct iphdr) - sizeof(struct udphdr);
		map_v4(p.src, &ip.v4.saddr);
		map_v4(p.dst, &ip.v4.daddr);
		uh = (void *)(h + 1);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *h = (void *)(eth + 1);

		if ((void *)(h + 1) > end)
			return XDP_PASS;
		if (h->version != 6)
			return XDP_PASS;
		if (h->nexthdr != IPPROTO_UDP) {
			/* As at TC: one extension header directly before UDP is counted. */
			__u8 *next = (void *)(h + 1);

			if ((h->nexthdr == 0 || h->nexthdr == 43 || h->nexthdr == 44 ||
			     h->nexthdr == 60) &&
			    (void *)(next + 1) <= end && *next == IPPROTO_UDP)
				return pass(TURN_STAT_PASS_UNFIT);
			return XDP_PASS;
		}
		__builtin_memcpy(&ip.v6, h, sizeof(ip.v6));
		p.v6 = 1;
		p.ip_len = sizeof(struct ipv6hdr) + bpf_ntohs(ip.v6.payload_len);
		if (p.ip_len < sizeof(struct ipv6hdr) + sizeof(struct udphdr))
			return XDP_PASS;
		p.plen = p.ip_len - sizeof(struct ipv6hdr) - sizeof(struct udphdr);
		__builtin_memcpy(p.src, &ip.v6.saddr, 16);
		__builtin_memcpy(p.dst, &ip.v6.daddr, 16);
		uh = (void *)(h + 1);
	} else {
		return XDP_PASS;
	}

	/* The datagram may be followed by Ethernet padding, never cut short. */
	if (ETH_HLEN + p.ip_len > frame)
		return XDP_PASS;
	if ((void *)(uh + 1) > end)
		return XDP_PASS;
	__builtin_memcpy(&p.udp, uh, sizeof(p.udp));
	if (bpf_ntohs(p.udp.len) != p.plen + sizeof(struct udphdr))
		return XDP_PASS;
	__builtin_memset(p.cd, 0, sizeof(p.cd));
	if (p.plen >= 4) {
		__u8 *cd = (void *)(uh + 1);

		if ((void *)(cd + 4) > end)
			return XDP_PASS;
		__builtin_memcpy(p.cd, cd, 4);
	}

	now = bpf_ktime_get_ns();
	if (turn_plan(&p, &plan, now) != TURN_RELAY)
		return XDP_PASS;
	nk.ifindex = plan.route.ifindex;
	__builtin_memcpy(nk.ip, plan.route.next_hop, 16);
	found = bpf_map_lookup_elem(&NEIGH, &nk);
	if (!found)
		return pass(TURN_STAT_PASS_NEIGH);
	__builtin_memcpy(&neigh, found, sizeof(neigh));
	if (!turn_charge(&plan, now))
		return XDP_DROP;

	/* From here on the frame changes; a failing helper drops it. */
	scratch = bpf_map_lookup_elem(&SCRATCH, &zero);
	if (!scratch)
		goto error;
	c = &scratch->csum;
	turn_csum_inputs(&p, &plan, c);
	/* An IPv4 datagram without checksum (0) stays without one (turn_plan sends it to
	 * IPv4 only); otherwise the new sum is the old one plus the difference of what it
	 * covers, and one that comes out 0 leaves as 0xFFFF (RFC 768, RFC 8200 8.1). */
	check = 0;
	if (p.udp.check != 0) {
		__s64 d1 = bpf_csum_diff((__be32 *)&c->old_ph, sizeof(c->old_ph),
					 (__be32 *)&c->new_ph, sizeof(c->new_ph), 0);
		__s64 d2 = bpf_csum_diff((__be32 *)&c->old_u, sizeof(c->old_u),
					 (__be32 *)&c->new_u, sizeof(c->new_u), 0);

		if (d1 < 0 || d2 < 0)
			goto error;
		check = ~csum_fold((__u64)(__u16)~p.udp.check + (__u32)d1 + (__u32)d2);
		if (check == 0)
			check = 0xffff;
	}
	if (turn_ip_header(&ip, p.v6, &plan))
		goto error;

	/* Drop the padding, then make the room in front of the payload the new headers
	 * need: positive delta shrinks it. */
	trailing = frame - ETH_HLEN - p.ip_len;
	if (trailing && bpf_xdp_adjust_tail(ctx, -(int)trailing))
		goto error;
	hdr_in = ETH_HLEN + (p.v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr)) +
		 sizeof(struct udphdr);
	hdr_out = ETH_HLEN + (plan.out6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr)) +
		  sizeof(struct udphdr);
	delta = plan.rev ? hdr_in - hdr_out - 4 : hdr_in + 4 - hdr_out;
	if (delta && bpf_xdp_adjust_head(ctx, delta))
		goto error;

	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		goto error;
	__builtin_memcpy(eth->h_dest, neigh.dst, ETH_ALEN);
	__builtin_memcpy(eth->h_source, neigh.src, ETH_ALEN);
	if (plan.out6) {
		struct ipv6hdr *h = (void *)(eth + 1);

		eth->h_proto = bpf_htons(ETH_P_IPV6);
		uh = (void *)(h + 1);
		if ((void *)(uh + 1) > end)
			goto error;
		__builtin_memcpy(h, &ip.v6, sizeof(ip.v6));
	} else {
		struct iphdr *h = (void *)(eth + 1);

		eth->h_proto = bpf_htons(ETH_P_IP);
		uh = (void *)(h + 1);
		if ((void *)(uh + 1) > end)
			goto error;
		__builtin_memcpy(h, &ip.v4, sizeof(ip.v4));
	}
	uh->source = plan.route.src_port;
	uh->dest = plan.route.dst_port;
	uh->len = bpf_htons(plan.new_ulen);
	uh->check = check;
	if (plan.rev) {
		__u8 *cd = (void *)(uh + 1);

		if ((void *)(cd + 4) > end)
			goto error;
		__builtin_memcpy(cd, plan.cd, 4);
	}

	turn_count(&plan);
	if (plan.route.ifindex == ctx->ingress_ifindex && !(plan.route.flags & TURN_ROUTE_VETH))
		return XDP_TX;
	return bpf_redirect(plan.route.ifindex, 0);

error:
	stat_add(TURN_STAT_DROP_ERROR, 1);
	return XDP_DROP;
}
