"""A UDP echo peer for the offload tests: answers every datagram to its sender, for at most
SECONDS seconds. Two payloads are commands, not echoed:
  b"stranger"  sends 10 datagrams to the sender from STRANGER_IP (an address the client never
               gave a permission to),
  b"later"     sends 10 datagrams to the sender from this socket one second later (after the
               client has deleted its allocation).
usage: udp_echo.py IP PORT SECONDS STRANGER_IP (bound to IP: a host with several addresses
would otherwise answer from whichever the kernel picks)"""

import socket
import sys
import threading
import time

ip, port, seconds, stranger_ip = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
# One socket for both families (an IPv4 sender shows as ::ffff:a.b.c.d).
sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
sock.bind(("::ffff:" + ip if ":" not in ip else ip, port))
stranger = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
stranger.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
v4 = ":" not in stranger_ip
stranger.bind(("::ffff:" + stranger_ip if v4 else stranger_ip, 0))


def later(to):
    time.sleep(1.0)
    for i in range(10):
        sock.sendto(b"after the end %d" % i, to)


end = time.monotonic() + seconds
print("ready", flush=True)
while (left := end - time.monotonic()) > 0:
    sock.settimeout(left)
    try:
        data, sender = sock.recvfrom(65535)
    except socket.timeout:
        break
    if data == b"stranger":
        for i in range(10):
            stranger.sendto(b"stranger %d" % i, sender)
    elif data == b"later":
        threading.Thread(target=later, args=(sender,), daemon=True).start()
    else:
        sock.sendto(data, sender)
