"""A UDP echo peer for the offload tests: answers every datagram to its sender, for at most
SECONDS seconds. Two payloads are commands, not echoed:
  b"stranger"  sends 10 datagrams to the sender from STRANGER_IP (an address the client never
               gave a permission to),
  b"later"     sends 10 datagrams to the sender from this socket one second later (after the
               client has deleted its allocation).
usage: udp_echo.py PORT SECONDS STRANGER_IP"""

import socket
import sys
import threading
import time

port, seconds, stranger_ip = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", port))
stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
stranger.bind((stranger_ip, 0))


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
