"""One of two TURN clients that relay to each other (turn_nat_hairpin.rs, two homes;
turn_fleet.rs).

Allocates a relay, writes its relayed address to DIR/NAME.addr, reads the other client's
from DIR/PEER.addr, then sends "hello" to it until it hears from the other client (so
that both have installed a permission or channel for each other), then COUNT numbered
datagrams, or with --until FILE numbered datagrams every --pace seconds until FILE exists
(a call of unknown length; then "end N" tells the other how many to wait for). It prints
one JSON line: its relayed and server-reflexive addresses, the peer's relayed address, how
many it sent, how many arrived (with --mark FILE: how many of them after FILE appeared),
and from which addresses. Exit 0 if all arrived.

--mode channel uses aioice's TURN client (it relays over channels only: ChannelBind on the
first send, then ChannelData); --mode send uses stdlib_turn.py (CreatePermission, then
Send and Data indications), since aioice sends no Send indication. --follow-alternate
(send mode only) follows a 300 Try Alternate to the ALTERNATE-SERVER; the report then says
which server allocated and which redirected.
"""

import argparse
import asyncio
import json
import os
import queue
import sys
import threading
import time

HANDSHAKE_SECONDS = 5.0
DRAIN_SECONDS = 3.0
PACE_SECONDS = 0.002


class AioiceEndpoint:
    """aioice's `create_turn_endpoint` on an event loop of its own thread."""

    def __init__(self, server, transport, username, password):
        import aioice.turn

        self.received = queue.Queue()
        self.closed = threading.Event()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        endpoint = self

        class Receiver(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                endpoint.received.put((data, addr))

            def error_received(self, exc):
                print(f"aioice: {exc!r}", file=sys.stderr)

            def connection_lost(self, exc):
                # aioice calls it once the allocation is deleted (Refresh, LIFETIME 0).
                endpoint.closed.set()

        made = aioice.turn.create_turn_endpoint(
            Receiver, server, username, password, transport=transport
        )
        future = asyncio.run_coroutine_threadsafe(made, self.loop)
        self.transport, _ = future.result(timeout=10)
        self.relayed = self.transport.get_extra_info("sockname")
        self.mapped = self.transport.get_extra_info("related_address")
        self.server, self.redirected_from = server, None

    def prepare(self, peer):
        """Nothing: aioice binds a channel to `peer` on the first send."""

    def send(self, data, peer):
        self.loop.call_soon_threadsafe(self.transport.sendto, data, peer)

    def recv(self, timeout):
        try:
            if timeout > 0:
                return self.received.get(timeout=timeout)
            return self.received.get_nowait()
        except queue.Empty:
            return None

    def close(self):
        """Deletes the allocation and waits (a few seconds at most) until it is gone."""
        self.loop.call_soon_threadsafe(self.transport.close)
        if not self.closed.wait(5):
            print("aioice: the allocation was not deleted in 5 s", file=sys.stderr)


class StdlibEndpoint:
    """stdlib_turn.Client: Send indications."""

    def __init__(self, server, transport, username, password, follow=False):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import stdlib_turn

        self.client = stdlib_turn.Client(server, transport, username, password)
        self.relayed = self.client.allocate(follow=follow)
        self.mapped = self.client.mapped
        self.server, self.redirected_from = self.client.server, self.client.redirected_from

    def prepare(self, peer):
        self.client.create_permission(peer)

    def send(self, data, peer):
        self.client.send(data, peer)

    def recv(self, timeout):
        return self.client.recv(timeout)

    def close(self):
        self.client.close()


def publish(path, own):
    """Writes our relayed address to `path` (renamed into place: never read half-written)."""
    with open(path + ".tmp", "w") as f:
        f.write(f"{own[0]} {own[1]}")
    os.rename(path + ".tmp", path)


def read_peer(path, deadline):
    """The peer's relayed address, once it has published it."""
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                ip, port = f.read().split()
            return ip, int(port)
        except (FileNotFoundError, ValueError):
            time.sleep(0.02)
    raise SystemExit(f"no relayed address in {path}")


def addr_text(addr):
    return None if addr is None else f"{addr[0]}:{addr[1]}"


def payload(seq, size):
    head = f"data {seq} ".encode()
    return head + b"x" * max(0, size - len(head))


def main():
    ap = argparse.ArgumentParser()
    for flag in ("name", "peer", "dir", "server", "user", "password"):
        ap.add_argument("--" + flag, required=True)
    ap.add_argument("--transport", choices=("udp", "tcp"), required=True)
    ap.add_argument("--mode", choices=("channel", "send"), required=True)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--pace", type=float, default=PACE_SECONDS)
    ap.add_argument("--until", help="send until this file exists (instead of --count)")
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--mark", help="count what arrives once this file exists")
    ap.add_argument("--follow-alternate", action="store_true")
    args = ap.parse_args()
    host, port = args.server.rsplit(":", 1)
    server = (host, int(port))
    if args.mode == "channel":
        if args.follow_alternate:
            raise SystemExit("aioice does not follow 300 Try Alternate")
        ep = AioiceEndpoint(server, args.transport, args.user, args.password)
    else:
        ep = StdlibEndpoint(
            server, args.transport, args.user, args.password, args.follow_alternate
        )
    relayed = (ep.relayed[0], ep.relayed[1])
    publish(os.path.join(args.dir, args.name + ".addr"), relayed)
    peer = read_peer(os.path.join(args.dir, args.peer + ".addr"), time.monotonic() + 10)
    ep.prepare(peer)

    got, sources, bad, heard = set(), set(), 0, False
    after_mark, marked, peer_sent = 0, False, None

    def take(item):
        nonlocal bad, heard, after_mark, peer_sent
        data, addr = item
        heard = True
        sources.add(f"{addr[0]}:{addr[1]}")
        if data == b"hello":
            return
        parts = data.split(b" ", 2)
        if parts[0] == b"end" and len(parts) == 2:
            peer_sent = int(parts[1])
        elif parts[0] == b"data" and payload(int(parts[1]), args.size) == data:
            if int(parts[1]) not in got and marked:
                after_mark += 1
            got.add(int(parts[1]))
        else:
            bad += 1

    deadline = time.monotonic() + HANDSHAKE_SECONDS
    while not heard and time.monotonic() < deadline:
        ep.send(b"hello", peer)
        if (item := ep.recv(0.05)) is not None:
            take(item)
    sent, stop_at = 0, time.monotonic() + args.max_seconds
    next_look = 0.0
    while True:
        now = time.monotonic()
        if now >= next_look:
            # Looking at the files every 50 ms is plenty.
            next_look = now + 0.05
            marked = marked or (args.mark is not None and os.path.exists(args.mark))
            if args.until is not None and (os.path.exists(args.until) or now > stop_at):
                break
        if args.until is None and sent >= args.count:
            break
        ep.send(payload(sent, args.size), peer)
        sent += 1
        time.sleep(args.pace)
        while (item := ep.recv(0)) is not None:
            take(item)
    expected = args.count if args.until is None else None
    deadline = time.monotonic() + DRAIN_SECONDS
    ends = 0
    while time.monotonic() < deadline:
        if args.until is not None and ends < 5:
            ep.send(f"end {sent}".encode(), peer)
            ends += 1
        if expected is None:
            expected = peer_sent
        if expected is not None and len(got) >= expected:
            break
        if (item := ep.recv(0.1)) is not None:
            take(item)
    # The other side may still be waiting for our "end": keep answering it a little.
    if args.until is not None:
        for _ in range(5 - ends):
            ep.send(f"end {sent}".encode(), peer)
    ep.close()
    report = {
        "relayed": addr_text(relayed),
        "mapped": addr_text(ep.mapped),
        "server": addr_text(ep.server),
        "redirected_from": addr_text(ep.redirected_from),
        "peer": addr_text(peer),
        "heard": heard,
        "sent": sent,
        "expected": expected,
        "received": len(got),
        "received_after_mark": after_mark,
        "malformed": bad,
        "sources": sorted(sources),
    }
    print(json.dumps(report), flush=True)
    ok = expected is not None and len(got) == expected and bad == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
