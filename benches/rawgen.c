// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * rawgen: the cheapest load generator benches/offload_raw.py could find — prebuilt
 * Ethernet frames sent through an AF_PACKET socket that bypasses the qdisc, `batch` at a
 * time with sendmmsg, each batch at its own absolute deadline (CLOCK_MONOTONIC), so the
 * offered load is smooth at the scale of socket buffers (a batch every batch/pps seconds).
 *
 *   rawgen IFNAME FRAMES PPS COUNT BATCH
 *
 * FRAMES: records of a 16-bit little-endian length and that many bytes of frame, sent in
 * turn. Prints the number of frames the kernel took. Built by offload_raw.py with the
 * machine's C compiler; not part of the Rust build.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_FRAMES 4096
#define MAX_BATCH 64

static unsigned char *frames[MAX_FRAMES];
static size_t lengths[MAX_FRAMES];

static int load(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char len[2];
	int n = 0;

	if (!f)
		return -1;
	while (n < MAX_FRAMES && fread(len, 1, 2, f) == 2) {
		lengths[n] = len[0] | (size_t)len[1] << 8;
		frames[n] = malloc(lengths[n]);
		if (!frames[n] || fread(frames[n], 1, lengths[n], f) != lengths[n])
			return -1;
		n++;
	}
	fclose(f);
	return n;
}

int main(int argc, char **argv)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = 0 };
	struct mmsghdr msgs[MAX_BATCH];
	struct iovec iov[MAX_BATCH];
	struct timespec next;
	uint64_t count, sent = 0, period_ns;
	int fd, one = 1, nframes, batch, at = 0;
	double pps;

	if (argc != 6) {
		fprintf(stderr, "usage: rawgen IFNAME FRAMES PPS COUNT BATCH\n");
		return 2;
	}
	pps = atof(argv[3]);
	count = strtoull(argv[4], NULL, 10);
	batch = atoi(argv[5]);
	if (pps <= 0 || batch < 1 || batch > MAX_BATCH) {
		fprintf(stderr, "rawgen: PPS > 0 and 1 <= BATCH <= %d\n", MAX_BATCH);
		return 2;
	}
	nframes = load(argv[2]);
	if (nframes <= 0) {
		fprintf(stderr, "rawgen: no frames in %s\n", argv[2]);
		return 1;
	}
	sll.sll_ifindex = if_nametoindex(argv[1]);
	fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0 || !sll.sll_ifindex ||
	    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sll, sizeof(sll))) {
		perror("rawgen: socket");
		return 1;
	}
	period_ns = (uint64_t)(batch * 1e9 / pps);
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (sent < count) {
		int n = count - sent < (uint64_t)batch ? (int)(count - sent) : batch, r;

		memset(msgs, 0, sizeof(msgs[0]) * n);
		for (int i = 0; i < n; i++) {
			iov[i].iov_base = frames[at];
			iov[i].iov_len = lengths[at];
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			at = (at + 1) % nframes;
		}
		r = sendmmsg(fd, msgs, n, 0);
		if (r < 0 && errno != ENOBUFS && errno != EAGAIN) {
			perror("rawgen: sendmmsg");
			return 1;
		}
		if (r > 0)
			sent += r;
		next.tv_nsec += period_ns;
		while (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
	printf("%llu\n", (unsigned long long)sent);
	return 0;
}
