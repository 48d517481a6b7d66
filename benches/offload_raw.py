#!/usr/bin/env python3
"""The offload benchmark's CPU measure with a raw-frame generator (issue 18's CPU target).

benches/offload.py measures CPU per relayed packet with turnpike-bench as the generator,
whose own sending and receiving is most of every kernel-mode figure on a two-core machine.
This script keeps everything else of offload.py (namespaces, pinning, RPS, NIC-like links,
the servers, the busy-time measures; it imports them) and swaps the generator for the
cheapest one Debian has:

- a stdlib TURN client (crates/turnpike/tests/interop/stdlib_turn.py) in the load
  namespace makes --clients allocations on the server under test, each with a permission
  and a channel bound to a peer on 198.18.11.2, and holds them;
- rawgen (benches/rawgen.c, compiled here) sends prebuilt Ethernet frames of ChannelData
  on those channels, from the clients' own addresses and ports, through an AF_PACKET
  socket that bypasses the qdisc, 64 frames per sendmmsg at absolute deadlines (smooth
  fixed rate), from one pinned CPU;
- the peer side is offload.py's --sink: an nftables rule at prerouting in the load
  namespace counts the relayed datagrams and drops them.

CPU per relayed packet = the whole machine's busy time (/proc/stat, all CPUs, softirq
included; and wall time − idle) over the generator's run, minus other processes, divided by
the datagrams the sink counted. Servers in ABCD DCBA order, a fresh process per row.

    sudo python3 benches/offload_raw.py --turnpike target/release/turnpike \\
        --coturn-new /tmp/coturn-4.17.1/bin/turnserver --out FILE.json

Needs root, a C compiler, coturn, a turnpike built with `--features ebpf`. Not part of
any test run. (trafgen was tried first: its --rate sends in bursts that overflow the
user-space servers' socket buffers, 35–80 % loss even at 10 k pkt/s.)
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import socket
import struct
import pathlib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import offload as ob  # noqa: E402  (the namespaces, servers and measures)
import vs_coturn  # noqa: E402
from vs_coturn import SECRET, log, spread  # noqa: E402

ROOT = ob.ROOT
INTEROP = ROOT / "crates/turnpike/tests/interop"

# Run in the load namespace: allocations with channels, one JSON line per client, then
# hold them until stdin closes.
CLIENTS = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from stdlib_turn import Client
server, user, password, n, peer = (sys.argv[2], int(sys.argv[3])), sys.argv[4], sys.argv[5], \
    int(sys.argv[6]), sys.argv[7]
held = []
for i in range(n):
    c = Client(server, "udp", user, password)
    c.allocate()
    c.create_permission((peer, 40000 + i))
    c.channel_bind(0x4000 + i, (peer, 40000 + i))
    held.append(c)
    print(json.dumps({"port": c.sock.getsockname()[1], "channel": 0x4000 + i}), flush=True)
print("ready", flush=True)
sys.stdin.read()
"""


def rest_credentials():
    user = f"{int(time.time()) + 3600}:raw"
    key = hmac.new(SECRET.encode(), user.encode(), hashlib.sha1).digest()
    return user, base64.b64encode(key).decode()


def mac(net, ns, dev):
    out = subprocess.run(["ip", "-n", ns, "-j", "link", "show", dev], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    return json.loads(out)[0]["address"]


def checksum(data):
    """The Internet checksum (RFC 1071) of `data`."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def frame(dst_mac, src_mac, port, channel, size):
    """An Ethernet frame of ChannelData on `channel` from the client at LOAD_C:`port`."""
    src, dst = socket.inet_aton(ob.LOAD_C), socket.inet_aton(ob.SRV_C)
    payload = struct.pack("!HH", channel, size) + b"A" * size
    ulen = 8 + len(payload)
    udp = struct.pack("!HHHH", port, ob.PORT, ulen, 0) + payload
    csum = checksum(src + dst + struct.pack("!BBH", 0, 17, ulen) + udp) or 0xffff
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 0, 0x4000, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    mac = lambda m: bytes.fromhex(m.replace(":", ""))
    return mac(dst_mac) + mac(src_mac) + b"\x08\x00" + ip + udp


def frames(flows, size, src_mac, dst_mac):
    """rawgen's input: each flow's frame, as a 16-bit little-endian length and bytes."""
    out = b""
    for f in flows:
        fr = frame(dst_mac, src_mac, f["port"], f["channel"], size)
        out += struct.pack("<H", len(fr)) + fr
    return out


def udp_errors(net):
    """The server namespace's UDP receive errors: (InErrors, RcvbufErrors, InCsumErrors)."""
    lines = open_ns_snmp(net)
    for a, b in zip(lines, lines[1:]):
        if a.startswith("Udp: ") and b.startswith("Udp: "):
            d = dict(zip(a.split()[1:], map(int, b.split()[1:])))
            return d["InErrors"], d["RcvbufErrors"], d["InCsumErrors"]
    return 0, 0, 0


def open_ns_snmp(net):
    out = subprocess.run(net.exec(net.srv, "cat", "/proc/net/snmp"), capture_output=True,
                         text=True, timeout=10).stdout
    return out.splitlines()


def measure(args, net, kind, work, size):
    with ob.Server(kind, args, net, work) as srv:
        user, password = rest_credentials()
        holder = subprocess.Popen(
            net.exec(net.load, "python3", "-c", CLIENTS, INTEROP, ob.SRV_C, ob.PORT, user,
                     password, args.clients, ob.LOAD_P),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            flows = []
            for line in holder.stdout:
                if line.strip() == "ready":
                    break
                flows.append(json.loads(line))
            if len(flows) != args.clients:
                raise RuntimeError(f"{kind}: {len(flows)} of {args.clients} clients set up")
            cfg = work / f"frames-{size}.bin"
            cfg.write_bytes(frames(flows, size, mac(net, net.load, "c0"),
                                   mac(net, net.srv, "c0")))
            count = int(args.pps * args.secs)

            def load():
                took = ob.run(net.exec(net.load, "taskset", "-c", args.load_cpu, args.rawgen,
                                       "c0", cfg, args.pps, count, args.batch), args.secs + 60)
                if int(took) != count:
                    raise RuntimeError(f"rawgen sent {took.strip()} of {count}")
                time.sleep(0.2)  # the last datagrams through the server

            e0 = udp_errors(net)
            _, c = ob.around(args, net, srv, load, exclude={holder.pid})
            e1 = udp_errors(net)
        finally:
            holder.stdin.close()
            holder.wait(timeout=20)
    n = c["sink_delivered"]
    per = (lambda ns: ns / n) if n else (lambda ns: float("nan"))
    return {
        "sent": count, "delivered": n, "loss_pct": 100 * (1 - n / count),
        "kernel_share": c["kernel_to_peer"] / n if n else float("nan"),
        "cpu_ns_per_pkt": per(c["busy_ns"] - c["foreign_ns"]),
        "nonidle_ns_per_pkt": per(c["nonidle_ns"] - c["foreign_ns"]),
        "server_cpu_busy_ns_per_pkt": per(c["busy_ns_server_cpu"]),
        "load_cpu_busy_ns_per_pkt": per(c["busy_ns_load_cpu"]),
        "foreign_ns": c["foreign_ns"], "wall_s": c["wall_s"],
        "udp_in_errors": e1[0] - e0[0], "udp_rcvbuf_errors": e1[1] - e0[1],
        "udp_csum_errors": e1[2] - e0[2],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ob.server_args(p)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--pps", type=float, default=40616)
    p.add_argument("--secs", type=float, default=8.0)
    p.add_argument("--batch", type=int, default=64, help="frames per sendmmsg (and deadline)")
    p.add_argument("--out", type=pathlib.Path, required=True)
    args = p.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="offload-raw-"))
    args.rawgen = work / "rawgen"
    ob.run(["cc", "-O2", "-Wall", "-o", args.rawgen, ROOT / "benches/rawgen.c"], 60)
    # offload.Server reads these.
    args.bench, args.bpf_stats, args.sink, args.gen_gso = None, False, True, False
    servers = [s for s in args.servers.split(",") if s]
    if not args.coturn_new.exists():
        servers = [s for s in servers if s != "coturn-4.17.1"]
    rows = []
    with ob.Netns(args.server_cpu, args.load_cpu, True, False, True) as net:
        for rnd in range(1, args.rounds + 1):
            for kind in (servers if rnd % 2 else servers[::-1]):
                row = {"round": rnd, "server": kind}
                for size in (120, 1200):
                    row[f"cpu{size}"] = c = measure(args, net, kind, work, size)
                    log(f"round {rnd} {kind} {size} B: {c['cpu_ns_per_pkt']:.0f} ns/pkt "
                        f"(wall-idle {c['nonidle_ns_per_pkt']:.0f}), loss {c['loss_pct']:.3f} %,"
                        f" kernel share {c['kernel_share']:.3f}")
                rows.append(row)
    lines = ["| ns per relayed pkt (medians) | " + " | ".join(servers) + " |",
             "|---|" + "---|" * len(servers)]
    summary = {}
    for key, label in (("cpu_ns_per_pkt", "whole machine, busy ticks"),
                       ("nonidle_ns_per_pkt", "whole machine, wall − idle"),
                       ("server_cpu_busy_ns_per_pkt", "server's core, busy ticks"),
                       ("load_cpu_busy_ns_per_pkt", "generator's core, busy ticks"),
                       ("loss_pct", "loss %")):
        for size in (120, 1200):
            med = {s: spread([r[f"cpu{size}"][key] for r in rows if r["server"] == s])[0]
                   for s in servers}
            summary[f"{key}{size}"] = med
            fmt = "{:.3f}" if key == "loss_pct" else "{:.0f}"
            lines.append(f"| {size} B, {label} | " + " | ".join(fmt.format(med[s])
                                                                  for s in servers) + " |")
    ref = "coturn-4.6.1"
    for s in servers:
        if s.startswith("turnpike") and ref in servers:
            r = summary["cpu_ns_per_pkt120"][s] / summary["cpu_ns_per_pkt120"][ref]
            w = summary["nonidle_ns_per_pkt120"][s] / summary["nonidle_ns_per_pkt120"][ref]
            lines.append(f"\n{s} / {ref}, 120 B: {r:.2f}× (ticks), {w:.2f}× (wall − idle)")
    print("\n".join(lines))
    args.out.write_text(json.dumps({
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "rows": rows, "summary": summary, "summary_md": lines,
        "commands": vs_coturn.COMMANDS}, indent=1))


if __name__ == "__main__":
    main()
