"""A UDP echo peer for the offload tests: answers every datagram to its sender, for at most
SECONDS seconds. usage: udp_echo.py PORT SECONDS"""

import socket
import sys
import time

port, seconds = int(sys.argv[1]), float(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", port))
end = time.monotonic() + seconds
print("ready", flush=True)
while (left := end - time.monotonic()) > 0:
    sock.settimeout(left)
    try:
        data, sender = sock.recvfrom(65535)
    except socket.timeout:
        break
    sock.sendto(data, sender)
