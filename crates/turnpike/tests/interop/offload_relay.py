"""A client of the offload tests (`turn_offload.rs`): allocates over UDP, binds a channel to
an echoing peer and sends datagrams of several sizes as ChannelData; each must come back
byte for byte as ChannelData on the same channel. Then a stranger (another IP of the
peer's host, no permission) sends to the relayed address, and the peer sends again after the
allocation is deleted (Refresh 0): nothing of either may arrive. Prints one JSON line: what
it sent and got back.

usage: offload_relay.py SERVER PORT USER PASSWORD PEER_IP PEER_PORT COUNT SIZE...
The relayed address has the peer's family (REQUESTED-ADDRESS-FAMILY), whatever the
client's: an IPv4 client with an IPv6 peer relays across families (RFC 6156).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stdlib_turn  # noqa: E402

# Above RFC 8656's 0x4FFF, as RFC 5766 allowed and coturn's clients pick: the server
# accepts it, and the kernel must relay it like any other.
CHANNEL = 0x7FFE


def main():
    server, port, user, password, peer_ip, peer_port, count = sys.argv[1:8]
    sizes = [int(s) for s in sys.argv[8:]]
    peer = (peer_ip, int(peer_port))
    client = stdlib_turn.Client((server, int(port)), "udp", user, password)
    relayed = client.allocate(family=6 if ":" in peer_ip else 4)
    client.channel_bind(CHANNEL, peer)
    sent = echoed = mismatched = sent_bytes = 0
    for size in sizes:
        for i in range(int(count)):
            # A pattern that differs per datagram, so a stale or reordered echo is caught.
            payload = bytes((i * 7 + j) % 251 for j in range(size))
            client.send_channel(CHANNEL, payload)
            sent += 1
            sent_bytes += size
            got = client.recv_channel(2.0)
            if got is None:
                continue
            echoed += 1
            if got != (CHANNEL, payload):
                mismatched += 1
    # A peer without a permission (another IP) sends to the relayed address: nothing may
    # reach the client, neither as ChannelData nor as a Data indication.
    client.send_channel(CHANNEL, b"stranger")
    strangers = 0
    while client.recv_channel(1.0) is not None:
        strangers += 1
    strangers += len(client.inbox)
    while client.recv(0.2) is not None:
        strangers += 1
    # The bound peer sends again one second after the allocation is deleted: the
    # kernel's routes went with it, so nothing arrives.
    client.send_channel(CHANNEL, b"later")
    client.close_keep_socket()
    after_end = 0
    while client.recv_channel(2.5) is not None:
        after_end += 1
    print(
        json.dumps(
            {
                "relayed": f"{relayed[0]}:{relayed[1]}",
                "sent": sent,
                "sent_bytes": sent_bytes,
                "echoed": echoed,
                "mismatched": mismatched,
                "strangers": strangers,
                "after_end": after_end,
            }
        )
    )


if __name__ == "__main__":
    main()
