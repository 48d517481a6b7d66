"""A minimal TURN client (RFC 8656) on the Python standard library alone.

It exists for what aioice never does: Send indications, and following 300 Try Alternate.
It allocates a UDP relay over UDP or TCP with long-term credentials (RFC 8489 §9.2: key
MD5(username:realm:password), MESSAGE-INTEGRITY, then FINGERPRINT), installs permissions
with CreatePermission, sends with Send indications (§11.1, unauthenticated) and receives
Data indications (§11.4), or binds channels (§12) and sends and receives ChannelData
over UDP. With `follow=True`, an Allocate answered 300 with an
ALTERNATE-SERVER (RFC 8489 §10) is sent again to that server, over the same transport,
with the same credentials (its first answer, 438 for the other server's nonce, gives a
nonce of its own). IPv4 and IPv6. Used by relay_peer.py and the offload tests.
"""

import hashlib
import hmac
import os
import socket
import struct
import time
import zlib

MAGIC = 0x2112A442
# Methods (RFC 8656 §18) and classes (RFC 8489 §5): for methods below 0x10 the message
# type is method | class.
ALLOCATE, REFRESH, SEND, DATA, CREATE_PERMISSION = 0x003, 0x004, 0x006, 0x007, 0x008
REQUESTED_ADDRESS_FAMILY = 0x0017
CHANNEL_BIND = 0x009
REQUEST, INDICATION, SUCCESS, ERROR = 0x000, 0x010, 0x100, 0x110
# Attributes (RFC 8489 §18.3, RFC 8656 §18).
USERNAME, MESSAGE_INTEGRITY, ERROR_CODE, LIFETIME = 0x0006, 0x0008, 0x0009, 0x000D
XOR_PEER_ADDRESS, DATA_ATTR, REALM, NONCE = 0x0012, 0x0013, 0x0014, 0x0015
CHANNEL_NUMBER = 0x000C
XOR_RELAYED_ADDRESS, REQUESTED_TRANSPORT, FINGERPRINT = 0x0016, 0x0019, 0x8028
XOR_MAPPED_ADDRESS, ALTERNATE_SERVER = 0x0020, 0x8023


class TurnError(Exception):
    """A request that failed: an error response, or no response in time."""


class TryAlternate(TurnError):
    """300 Try Alternate (RFC 8489 §10): `alternate` is the (ip, port) to go to."""

    def __init__(self, alternate):
        super().__init__(f"300 Try Alternate: {alternate[0]}:{alternate[1]}")
        self.alternate = alternate


def xor_address(ip, port):
    """An XOR-*-ADDRESS value (RFC 8489 §14.2). IPv6 XORs with the transaction ID too, so
    for an IPv6 address this returns a function of it, which `encode` calls."""
    if ":" not in ip:
        raw = struct.unpack("!I", socket.inet_aton(ip))[0]
        return struct.pack("!BBHI", 0, 1, port ^ (MAGIC >> 16), raw ^ MAGIC)
    raw = socket.inet_pton(socket.AF_INET6, ip)

    def with_tid(tid):
        mask = struct.pack("!I", MAGIC) + tid
        return struct.pack("!BBH", 0, 2, port ^ (MAGIC >> 16)) + bytes(
            a ^ b for a, b in zip(raw, mask)
        )

    return with_tid


def parse_xor_address(value, tid=b"\0" * 12):
    family, port = value[1], struct.unpack("!H", value[2:4])[0] ^ (MAGIC >> 16)
    if family == 1:
        raw = struct.unpack("!I", value[4:8])[0]
        return socket.inet_ntoa(struct.pack("!I", raw ^ MAGIC)), port
    mask = struct.pack("!I", MAGIC) + tid
    raw = bytes(a ^ b for a, b in zip(value[4:20], mask))
    return socket.inet_ntop(socket.AF_INET6, raw), port


def parse_address(value):
    """An IPv4 MAPPED-ADDRESS-style value (ALTERNATE-SERVER, RFC 8489 §14.15): not XORed."""
    family, port, raw = value[1], *struct.unpack("!H4s", value[2:8])
    if family != 1:
        raise TurnError("not an IPv4 address")
    return socket.inet_ntoa(raw), port


def encode(msg_type, tid, attrs, key=None):
    """A STUN message; with `key`, MESSAGE-INTEGRITY and FINGERPRINT are appended."""
    body = b""
    for kind, value in attrs:
        if callable(value):
            value = value(tid)
        body += struct.pack("!HH", kind, len(value)) + value + bytes(-len(value) % 4)

    def header(extra):
        return struct.pack("!HHI", msg_type, len(body) + extra, MAGIC) + tid

    if key is not None:
        # The length counts MESSAGE-INTEGRITY itself (RFC 8489 §14.5).
        mac = hmac.new(key, header(24) + body, hashlib.sha1).digest()
        body += struct.pack("!HH", MESSAGE_INTEGRITY, 20) + mac
        crc = zlib.crc32(header(8) + body) ^ 0x5354554E
        body += struct.pack("!HHI", FINGERPRINT, 4, crc)
    return header(0) + body


def decode(data):
    """(type, transaction id, {attribute: first value}) of a STUN message."""
    msg_type, length, magic = struct.unpack("!HHI", data[:8])
    if magic != MAGIC or len(data) < 20 + length:
        raise TurnError("not a STUN message")
    attrs, at = {}, 20
    while at + 4 <= 20 + length:
        kind, size = struct.unpack("!HH", data[at : at + 4])
        attrs.setdefault(kind, data[at + 4 : at + 4 + size])
        at += 4 + size + (-size % 4)
    return msg_type, data[8:20], attrs


class Client:
    """One allocation on a TURN server reached at `server` (ip, port) over `transport`."""

    def __init__(self, server, transport, username, password):
        self.username, self.password = username, password
        self.key = self.realm = self.nonce = None
        self.tcp = transport == "tcp"
        self.server = server
        # Where a 300 sent us from, and our server-reflexive address (XOR-MAPPED-ADDRESS).
        self.redirected_from = self.mapped = None
        self._connect(server)

    def _connect(self, server):
        if self.tcp:
            self.sock = socket.create_connection(server, timeout=5)
        else:
            family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
            self.sock.connect(server)
        self.buffer = b""
        self.inbox = []  # Data indications that came in while waiting for a response
        self.channel_inbox = []  # (channel, data) of ChannelData messages

    def _recv(self, timeout):
        """One message from the server, or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if self.tcp and len(self.buffer) >= 4:
                # TCP framing: a STUN message is 20 + length bytes (RFC 8656 §12.5).
                need = 20 + struct.unpack("!H", self.buffer[2:4])[0]
                if len(self.buffer) >= need:
                    data, self.buffer = self.buffer[:need], self.buffer[need:]
                    return data
            # A timeout of 0 polls (non-blocking).
            self.sock.settimeout(max(0.0, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, BlockingIOError):
                return None
            if not self.tcp:
                return chunk
            if not chunk:
                raise TurnError("server closed the connection")
            self.buffer += chunk

    def _handle(self, data):
        """Keeps a Data indication for `recv` and ChannelData for `recv_channel`; returns
        (type, tid, attrs) of the rest."""
        if data and data[0] & 0xC0 == 0x40:
            # ChannelData (RFC 8656 §12.4; channels up to 0x7FFF as RFC 5766 allowed): the
            # length excludes any padding.
            number, length = struct.unpack("!HH", data[:4])
            self.channel_inbox.append((number, data[4 : 4 + length]))
            return None, None, {}
        msg_type, tid, attrs = decode(data)
        if msg_type == DATA | INDICATION and XOR_PEER_ADDRESS in attrs:
            peer = parse_xor_address(attrs[XOR_PEER_ADDRESS], tid)
            self.inbox.append((attrs.get(DATA_ATTR, b""), peer))
        return msg_type, tid, attrs

    def _transaction(self, method, attrs):
        tid = os.urandom(12)
        key = self.key
        if key is not None:
            attrs = attrs + [
                (USERNAME, self.username.encode()),
                (REALM, self.realm),
                (NONCE, self.nonce),
            ]
        request = encode(method | REQUEST, tid, attrs, key)
        # Over UDP, retransmit (RFC 8489 §6.2.1, shortened for a test); TCP is reliable.
        for _ in range(1 if self.tcp else 6):
            self.sock.send(request)
            deadline = time.monotonic() + (5 if self.tcp else 0.5)
            while (left := deadline - time.monotonic()) > 0:
                data = self._recv(left)
                if data is None:
                    break
                msg_type, got, answer = self._handle(data)
                if got == tid and msg_type in (method | SUCCESS, method | ERROR):
                    self.last_tid = tid
                    return msg_type == method | SUCCESS, answer
        raise TurnError(f"no answer to method {method:#x}")

    def request(self, method, attrs):
        """A request, authenticated after the first 401 (and again after a 438)."""
        for _ in range(3):
            ok, answer = self._transaction(method, attrs)
            if ok:
                return answer
            code = answer.get(ERROR_CODE, b"\0\0\0\0")
            code = code[2] * 100 + code[3]
            if code == 300 and ALTERNATE_SERVER in answer:
                raise TryAlternate(parse_address(answer[ALTERNATE_SERVER]))
            if code not in (401, 438) or NONCE not in answer:
                raise TurnError(f"method {method:#x}: error {code}")
            self.nonce = answer[NONCE]
            self.realm = answer.get(REALM, self.realm)
            secret = f"{self.username}:{self.realm.decode()}:{self.password}"
            self.key = hashlib.md5(secret.encode()).digest()
        raise TurnError(f"method {method:#x}: credentials refused")

    def allocate(self, follow=False, family=None):
        """Allocates a UDP relay; returns its (ip, port) as the server advertises it.

        With `follow`, one 300 Try Alternate is followed: the socket is closed and the
        Allocate goes to the alternate (`self.server` then, `self.redirected_from` the first).
        `family` 4 or 6 asks for that relayed address family (REQUESTED-ADDRESS-FAMILY,
        RFC 8656 §18.11); without it the server gives IPv4.
        """
        attrs = [(REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))]
        if family is not None:
            attrs.append((REQUESTED_ADDRESS_FAMILY, bytes([1 if family == 4 else 2, 0, 0, 0])))
        try:
            answer = self.request(ALLOCATE, attrs)
        except TryAlternate as redirect:
            if not follow:
                raise
            self.sock.close()
            self.buffer, self.inbox = b"", []
            self.redirected_from, self.server = self.server, redirect.alternate
            self._connect(self.server)
            answer = self.request(ALLOCATE, attrs)
        if XOR_MAPPED_ADDRESS in answer:
            self.mapped = parse_xor_address(answer[XOR_MAPPED_ADDRESS], self.last_tid)
        return parse_xor_address(answer[XOR_RELAYED_ADDRESS], self.last_tid)

    def create_permission(self, peer):
        self.request(CREATE_PERMISSION, [(XOR_PEER_ADDRESS, xor_address(*peer))])

    def channel_bind(self, number, peer):
        """Binds channel `number` (0x4000-0x4FFF) to `peer` (RFC 8656 §12.1)."""
        attrs = [
            (CHANNEL_NUMBER, struct.pack("!HH", number, 0)),
            (XOR_PEER_ADDRESS, xor_address(*peer)),
        ]
        self.request(CHANNEL_BIND, attrs)

    def send_channel(self, number, data):
        """ChannelData on channel `number` (over UDP, no padding: RFC 8656 §12.5)."""
        self.sock.send(struct.pack("!HH", number, len(data)) + data)

    def recv_channel(self, timeout):
        """(channel, data) of the next ChannelData, or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not self.channel_inbox:
            data = self._recv(max(0.0, deadline - time.monotonic()))
            if data is None:
                return None
            self._handle(data)
        return self.channel_inbox.pop(0)

    def send(self, data, peer):
        """A Send indication: `data` to `peer` through the relay."""
        attrs = [(XOR_PEER_ADDRESS, xor_address(*peer)), (DATA_ATTR, data)]
        self.sock.send(encode(SEND | INDICATION, os.urandom(12), attrs))

    def recv(self, timeout):
        """(data, peer) of the next Data indication, or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not self.inbox:
            data = self._recv(max(0.0, deadline - time.monotonic()))
            if data is None:
                return None
            self._handle(data)
        return self.inbox.pop(0)

    def close_keep_socket(self):
        """Deletes the allocation (Refresh with LIFETIME 0), keeping the socket open to see
        what still arrives."""
        self.request(REFRESH, [(LIFETIME, struct.pack("!I", 0))])

    def close(self):
        """Deletes the allocation (Refresh with LIFETIME 0) and closes the socket."""
        try:
            self.request(REFRESH, [(LIFETIME, struct.pack("!I", 0))])
        except (TurnError, OSError):
            pass
        self.sock.close()
