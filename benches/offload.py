#!/usr/bin/env python3
"""The offload benchmark (issue 18): turnpike's in-kernel ChannelData fast path against
turnpike in user space and two coturns, in network namespaces of its own.

Run it through benches/offload.sh (which builds the release binaries first); needs root.

Topology (names carry this script's PID; torn down on exit, also on error or Ctrl-C):

    load ns (turnpike-bench)                  srv ns (the server; ip_forward = 0)
    c0 198.18.10.2/24  <-- veth -->  c0 198.18.10.1/24   TURN listener :3478
    p0 198.18.11.2/24  <-- veth -->  p0 198.18.11.1/24   relayed addresses

turnpike-bench's clients send ChannelData to 198.18.10.1:3478 from c0 (`--send-path mmsg
--no-gso`: one datagram per packet, as a NIC delivers them; GSO super-packets would be
handed to user space by the program, which a NIC never produces), the relay sends the
payload from 198.18.11.1 to the bench's peer socket on 198.18.11.2. `load --to peers`
relays one direction only (client → peer, the header-stripping direction); every
delivered packet is one relayed packet.

Servers, a fresh process for every measurement row, in the same order within a round and
the reverse order in the next round (ABCDE EDCBA ...): turnpike `[offload] mode = "xdp"`
and `mode = "tc"` (interfaces c0, p0), turnpike `mode = "off"`, Debian's coturn 4.6.1 and
coturn 4.17.1 built from source (--coturn-new). With turnpike-xdp among them (or
--nic-like) the load side's veths behave like NIC links for every server of the run: tx
checksum offload off (complete checksums, which XDP needs) and GRO on (native XDP redirect
into a veth needs it). Per server and round:

  cpu120, cpu1200  `load` at one fixed offered rate (--equal-pps, or --equal-share of
                   coturn 4.6.1's loss-free rate at 120 B from a reference search) for
                   every server: the whole machine's busy time from /proc/stat (user,
                   nice, system, irq, softirq, steal over all CPUs) during the run, minus
                   the CPU time of every process outside the benchmark (utime + stime +
                   cutime + cstime; so the fuzzer and other builds are taken out), divided
                   by the packets delivered to the peer. The raw busy time and the busy
                   time minus only the fuzzer (`core_sequence`) are recorded beside it.
  rate120, rate1200  `search`: highest rate with loss <= 0.1 %, with the generator's own
                   CPU share at the best passing trial.

For turnpike-xdp and turnpike-tc the relayed-by-the-kernel counters of /metrics are read
before and after each load run: kernel share = kernel-relayed packets / packets delivered.
"""

import argparse
import datetime
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import vs_coturn  # noqa: E402  (shared helpers: log, run, spread, SECRET, COMMANDS)
from vs_coturn import SECRET, log, run, spread  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRV_C, LOAD_C = "198.18.10.1", "198.18.10.2"
SRV_P, LOAD_P = "198.18.11.1", "198.18.11.2"
PORT = 3478
METRICS_PORT = 19718
MIN_PORT, MAX_PORT = 20000, 59999
SERVERS = ("turnpike-xdp", "turnpike-tc", "turnpike-off", "coturn-4.6.1", "coturn-4.17.1")
# The servers whose figures are given as ratios over the others; turnpike-xdpg (generic
# XDP: in the stack, after RPS, on the server's CPU) only when asked for (--servers).
KERNEL = ("turnpike-xdp", "turnpike-xdpg", "turnpike-tc")
HZ = os.sysconf("SC_CLK_TCK")
PF_KTHREAD = 0x00200000


class Netns:
    """The two namespaces and veth pairs; removed on exit whatever happened."""

    def __init__(self, server_cpu, load_cpu, nic_like, gen_gso=False, sink=False):
        pid = os.getpid()
        self.load, self.srv = f"offb-load-{pid}", f"offb-srv-{pid}"
        self.server_cpu, self.load_cpu, self.nic_like = server_cpu, load_cpu, nic_like
        self.gen_gso, self.sink = gen_gso, sink

    def __enter__(self):
        L, S = self.load, self.srv
        try:
            for ns in (L, S):
                run(["ip", "netns", "add", ns], 10)
                run(["ip", "-n", ns, "link", "set", "lo", "up"], 10)
            for dev, (sa, la) in {"c0": (SRV_C, LOAD_C), "p0": (SRV_P, LOAD_P)}.items():
                run(["ip", "-n", L, "link", "add", dev, "type", "veth", "peer", "name", dev,
                     "netns", S], 10)
                run(["ip", "-n", S, "addr", "add", f"{sa}/24", "dev", dev], 10)
                run(["ip", "-n", L, "addr", "add", f"{la}/24", "dev", dev], 10)
                for ns in (L, S):
                    run(["ip", "-n", ns, "link", "set", dev, "up"], 10)
            run(["ip", "netns", "exec", S, "sysctl", "-qw", "net.ipv4.ip_forward=0",
                 "net.ipv4.conf.all.forwarding=0"], 10)
            # NIC-like links (needed by XDP, kept for every server of the run): the load
            # side's veths send complete UDP checksums (tx off: a veth would hand XDP the
            # partial sum of a checksum left to offload) and have GRO on (native XDP
            # redirect into a veth needs its peer in NAPI mode).
            if self.nic_like:
                for dev in ("c0", "p0"):
                    run(["ip", "netns", "exec", L, "ethtool", "-K", dev, "tx", "off",
                         "gro", "on"], 10)
            # --gen-gso: the generator sends UDP GSO messages, which the load side's c0
            # segments in software before the veth (each datagram reaches the server on
            # its own, as from a NIC), so the generator pays the stack once per message.
            if self.gen_gso:
                run(["ip", "netns", "exec", L, "ethtool", "-K", "c0",
                     "tx-udp-segmentation", "off"], 10)
            # --sink: relayed datagrams are counted and dropped where they arrive (nftables
            # at prerouting, before any socket), instead of being received one by one by
            # the bench's peer sockets: a peer's receive path is the peer's cost, not the
            # server's. Delivered = this counter.
            if self.sink:
                # The sink counts packets: a server's GSO message must reach it cut into
                # its datagrams, as a NIC puts them on the wire, not as one super-packet.
                for dev in ("c0", "p0"):
                    run(["ip", "netns", "exec", S, "ethtool", "-K", dev,
                         "tx-udp-segmentation", "off"], 10)
                run(["ip", "netns", "exec", L, "nft", "-f", "-"], 10, input=(
                    "table inet tpsink {\n counter delivered { }\n"
                    " chain pre { type filter hook prerouting priority raw;"
                    f" ip daddr {LOAD_P} meta l4proto udp counter name delivered drop; }}\n}}\n"))
            # RPS: what arrives in a namespace is processed on that side's CPU (the server's
            # receive path and the TC program on the server's CPU, as a NIC's queue would
            # be; the peer sockets' receive path on the generator's), not on the sender's.
            for ns, cpu in ((S, self.server_cpu), (L, self.load_cpu)):
                for dev in ("c0", "p0"):
                    run(["ip", "netns", "exec", ns, "sh", "-c",
                         f"echo {1 << cpu:x} > /sys/class/net/{dev}/queues/rx-0/rps_cpus"], 10)
        except BaseException:
            self.__exit__()
            raise
        return self

    def exec(self, ns, *cmd):
        return ["ip", "netns", "exec", ns, *map(str, cmd)]

    def __exit__(self, *exc):
        for ns in (self.load, self.srv):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


def stun_ready(net, timeout=15.0):
    """Waits until a Binding request from the load namespace is answered."""
    script = (
        "import os,socket,sys,time\n"
        "r=bytes.fromhex('000100002112a442')+os.urandom(12)\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(0.2)\n"
        f"d=time.monotonic()+{timeout}\n"
        "while time.monotonic()<d:\n"
        f" try:\n  s.sendto(r,('{SRV_C}',{PORT}));s.recvfrom(2048);sys.exit(0)\n"
        " except OSError: time.sleep(0.05)\n"
        "sys.exit(1)\n")
    p = subprocess.run(net.exec(net.load, "python3", "-c", script), timeout=timeout + 10)
    return p.returncode == 0


class Server(vs_coturn.Server):
    """One server process in the srv namespace, started fresh, pinned, stopped by PID."""

    def __init__(self, kind, args, net, work):
        self.kind, self.args, self.net, self.work = kind, args, net, work
        self.proc = None

    def command(self):
        a = self.args
        if self.kind.startswith("coturn"):
            db = self.work / "turndb"
            db.unlink(missing_ok=True)
            binary = "turnserver" if self.kind == "coturn-4.6.1" else str(a.coturn_new)
            cmd = [
                binary, "-n", f"--listening-ip={SRV_C}", f"--relay-ip={SRV_P}",
                f"--listening-port={PORT}", f"--min-port={MIN_PORT}", f"--max-port={MAX_PORT}",
                "--use-auth-secret", f"--static-auth-secret={SECRET}", "--realm=bench",
                "--allowed-peer-ip=198.18.0.0-198.19.255.255",
                "--no-cli", "--no-tls", "--no-dtls", "--no-tcp", "--fingerprint",
                "--relay-threads=1", f"--userdb={db}",
                f"--pidfile={self.work / 'coturn.pid'}", "--log-file=stdout",
            ]
            if self.kind == "coturn-4.6.1":
                cmd.append("--no-stun-backward-compatibility")  # 4.17's default
            return cmd
        mode = {"turnpike-tc": "tc", "turnpike-xdp": "xdp", "turnpike-xdpg": "xdp"}.get(
            self.kind, "off")
        attach = "generic" if self.kind == "turnpike-xdpg" else "auto"
        conf = self.work / f"{self.kind}.toml"
        conf.write_text(f"""[listen]
udp = ["{SRV_C}:{PORT}"]
tcp = []
[turn]
realm = "bench"
secrets = ["{SECRET}"]
[relay]
ips = ["{SRV_P}"]
ports = "{MIN_PORT}-{MAX_PORT}"
[peers]
allow = ["198.18.0.0/15"]
[quotas]
allocations_per_user = 1000000
allocations_total = 1000000
[runtime]
workers = 1
[metrics]
enabled = true
listen = "127.0.0.1:{METRICS_PORT}"
[log]
level = "warn"
[offload]
mode = "{mode}"
interfaces = ["c0", "p0"]
xdp_attach = "{attach}"
""")
        return [str(a.turnpike), "run", "--config", str(conf)]

    def __enter__(self):
        cmd = self.net.exec(self.net.srv, "taskset", "-c", self.args.server_cpu,
                            *self.command())
        vs_coturn.COMMANDS.append(" ".join(cmd))
        self.log = open(self.work / f"{self.kind}.log", "ab")
        # `ip netns exec` and `taskset` exec the server: the child's PID is the server's.
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        if not stun_ready(self.net):
            self.stop()
            raise RuntimeError(f"{self.kind} did not start; see {self.work}/{self.kind}.log")
        time.sleep(0.3)
        if (self.kind in KERNEL
                and self.offload_metrics().get("turnpike_offload_active") != 1):
            self.stop()
            raise RuntimeError(f"{self.kind}: offload not active; see {self.work}")
        return self

    def offload_metrics(self):
        """turnpike's offload series from /metrics (empty for the others)."""
        if not self.kind.startswith("turnpike"):
            return {}
        script = ("import urllib.request;print(urllib.request.urlopen("
                  f"'http://127.0.0.1:{METRICS_PORT}/metrics',timeout=5).read().decode())")
        p = subprocess.run(self.net.exec(self.net.srv, "python3", "-c", script),
                           capture_output=True, text=True, timeout=20)
        m = {}
        for line in p.stdout.splitlines():
            if line.startswith(("turnpike_offload_", "turnpike_relayed_packets_total")):
                name, _, value = line.rpartition(" ")
                try:
                    m[name] = float(value)
                except ValueError:
                    pass
        return m

    # stop(), __exit__() and pid: vs_coturn.Server's (the same process handling).


def busy_ticks():
    """user + nice + system + irq + softirq + steal (/proc/stat), in ticks: of all CPUs
    ("cpu"), and of each ("cpu0", ...); and idle + iowait under "idle:cpu", ... . The busy
    fields are sampled at the tick, so short bursts on an otherwise idle CPU (tickless
    idle) are missed; the idle field comes from the precise tickless idle clock, so
    wall time − idle is the better measure of a mostly idle CPU."""
    out = {}
    for line in open("/proc/stat"):
        f = line.split()
        if not f[0].startswith("cpu"):
            break
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, f[1:9])
        out[f[0]] = user + nice + system + irq + softirq + steal
        out["idle:" + f[0]] = idle + iowait
    return out


def process_ticks(exclude):
    """CPU ticks (utime + stime + cutime + cstime) of every user-space process but
    `exclude`, and of the fuzzer (`core_sequence`) alone. A process that ends during a run
    moves its time into its parent's cutime/cstime, so differences stay right as long as
    the parent lives."""
    other = fuzz = 0
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in exclude:
            continue
        try:
            s = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        comm = s[s.index("(") + 1:s.rindex(")")]
        f = s[s.rindex(")") + 2:].split()
        if int(f[6]) & PF_KTHREAD:
            continue
        t = sum(int(x) for x in f[11:15])
        other += t
        if comm == "core_sequence":
            fuzz += int(f[11]) + int(f[12])
    return other, fuzz


def bpf_prog_stats():
    """run_time_ns and run_cnt summed over the loaded `turn_offload` programs (bpftool;
    only counted while kernel.bpf_stats_enabled = 1)."""
    p = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True,
                       timeout=20)
    t = n = 0
    for prog in json.loads(p.stdout or "[]"):
        if prog.get("name", "").startswith("turn_offload"):
            t += prog.get("run_time_ns", 0)
            n += prog.get("run_cnt", 0)
    return t, n


def bench(args, net, *cmd, timeout):
    """Runs turnpike-bench in the load namespace, pinned, and parses its JSON report."""
    full = net.exec(net.load, "taskset", "-c", args.load_cpu, args.bench, *cmd,
                    "--server", f"{SRV_C}:{PORT}", "--secret", SECRET, "--peer-ip", LOAD_P,
                    "--send-path", "mmsg", *([] if args.gen_gso else ["--no-gso"]),
                    "--clients", args.clients,
                    "--json", "--quiet")
    return json.loads(run([str(c) for c in full], timeout))


def sink_packets(net):
    """Datagrams the --sink counter saw in the load namespace so far."""
    out = subprocess.run(net.exec(net.load, "nft", "-j", "list", "counter", "inet", "tpsink",
                                  "delivered"), capture_output=True, text=True, timeout=20)
    for item in json.loads(out.stdout)["nftables"]:
        if "counter" in item:
            return item["counter"]["packets"]
    raise RuntimeError(f"no sink counter: {out.stdout} {out.stderr}")


def measured(args, net, srv, *cmd, timeout):
    """A bench command with the machine's CPU and the offload counters read around it."""
    return around(args, net, srv, lambda: bench(args, net, *cmd, timeout=timeout))


def around(args, net, srv, load, exclude=()):
    """Runs `load()` with the machine's CPU, the server's and the offload counters (and
    the sink's, with --sink) read around it; `exclude`: more PIDs of the benchmark's own.
    Returns load()'s result and the counters."""
    exclude = {os.getpid(), srv.proc.pid, *exclude}
    k0 = sink_packets(net) if args.sink else 0
    m0 = srv.offload_metrics()
    bpf = args.bpf_stats and srv.kind in KERNEL
    p0 = bpf_prog_stats() if bpf else (0, 0)
    g0, s0 = os.times(), vs_coturn.cpu_ns(srv.proc.pid)
    b0, (o0, f0), t0 = busy_ticks(), process_ticks(exclude), time.monotonic()
    r = load()
    b1, (o1, f1), t1 = busy_ticks(), process_ticks(exclude), time.monotonic()
    g1, s1 = os.times(), vs_coturn.cpu_ns(srv.proc.pid)
    m1 = srv.offload_metrics()
    p1 = bpf_prog_stats() if bpf else (0, 0)
    k1 = sink_packets(net) if args.sink else 0
    delta = lambda k: m1.get(k, 0) - m0.get(k, 0)
    tick = 1e9 / HZ
    gen = (g1.children_user + g1.children_system - g0.children_user - g0.children_system)
    return r, {
        "wall_s": t1 - t0,
        "busy_ns": (b1["cpu"] - b0["cpu"]) * tick,
        "busy_ns_server_cpu": (b1[f"cpu{args.server_cpu}"] - b0[f"cpu{args.server_cpu}"])
        * tick,
        "busy_ns_load_cpu": (b1[f"cpu{args.load_cpu}"] - b0[f"cpu{args.load_cpu}"]) * tick,
        # Wall time minus the (precise) idle time: all CPUs, and each side's CPU.
        "nonidle_ns": (t1 - t0) * 1e9 * os.cpu_count() - (b1["idle:cpu"] - b0["idle:cpu"]) * tick,
        "nonidle_ns_server_cpu": (t1 - t0) * 1e9 - (b1[f"idle:cpu{args.server_cpu}"]
                                                    - b0[f"idle:cpu{args.server_cpu}"]) * tick,
        "nonidle_ns_load_cpu": (t1 - t0) * 1e9 - (b1[f"idle:cpu{args.load_cpu}"]
                                                  - b0[f"idle:cpu{args.load_cpu}"]) * tick,
        "foreign_ns": (o1 - o0) * tick,
        "fuzzer_ns": (f1 - f0) * tick,
        "generator_process_ns": gen * 1e9,
        "server_process_ns": s1 - s0,
        "machine_busy_pct": 100 * (b1["cpu"] - b0["cpu"]) * tick / 1e9 / (t1 - t0)
        / os.cpu_count(),
        "kernel_to_peer": delta("turnpike_offload_relayed_packets_total{direction=\"to_peer\"}"),
        "kernel_to_client": delta(
            "turnpike_offload_relayed_packets_total{direction=\"to_client\"}"),
        "relayed_total": sum(delta(k) for k in m1 if k.startswith(
            "turnpike_relayed_packets_total")),
        "offload_passed": sum(delta(k) for k in m1 if "offload_passed" in k),
        "offload_dropped": sum(delta(k) for k in m1 if "offload_dropped" in k),
        "offload_series_delta": {k: delta(k) for k in m1 if delta(k)},
        "bpf_run_ns": p1[0] - p0[0], "bpf_runs": p1[1] - p0[1],
        "sink_delivered": k1 - k0,
    }


def equal_load(args, net, srv, size, pps):
    r, c = measured(args, net, srv, "load", "--rate", pps / args.clients, "--size", size,
                    "--duration", args.load_secs, timeout=args.load_secs + 90)
    n = c["sink_delivered"] if args.sink else r["delivered"]
    loss = 100 * (1 - n / r["sent"]) if args.sink and r["sent"] else r["loss_pct"]
    per = (lambda ns: ns / n) if n else (lambda ns: float("nan"))
    return {
        "offered_pps": r["offered_pps"], "delivered": n, "loss_pct": loss,
        "p99_us": r["latency"]["p99_us"], "generator_cpu_pct": r["generator_cpu_pct"],
        **c,
        "cpu_ns_per_pkt": per(c["busy_ns"] - c["foreign_ns"]),
        "cpu_ns_per_pkt_raw": per(c["busy_ns"]),
        "cpu_ns_per_pkt_minus_fuzzer": per(c["busy_ns"] - c["fuzzer_ns"]),
        "server_cpu_busy_ns_per_pkt": per(c["busy_ns_server_cpu"]),
        "nonidle_ns_per_pkt": per(c["nonidle_ns"] - c["foreign_ns"]),
        "server_cpu_nonidle_ns_per_pkt": per(c["nonidle_ns_server_cpu"]),
        "load_cpu_nonidle_ns_per_pkt": per(c["nonidle_ns_load_cpu"]),
        "load_cpu_busy_ns_per_pkt": per(c["busy_ns_load_cpu"]),
        "server_process_ns_per_pkt": per(c["server_process_ns"]),
        "minus_generator_ns_per_pkt": per(c["busy_ns"] - c["foreign_ns"]
                                          - c["generator_process_ns"]),
        "generator_process_ns_per_pkt": per(c["generator_process_ns"]),
        "kernel_share": c["kernel_to_peer"] / n if n else float("nan"),
    }


def search(args, net, srv, size, top):
    r, c = measured(args, net, srv, "search", "--size", size, "--trial-secs",
                    args.trial_secs, "--min-pps", args.search_min, "--max-pps", top, "--max-growth", 2,
                    "--max-trials", args.max_trials, "--max-time", args.max_trials *
                    (args.trial_secs + 3), timeout=args.max_trials * (args.trial_secs + 20) + 60)
    best = [t for t in r["trials"] if t["pass"]]
    best = max(best, key=lambda t: t["report"]["offered_pps"]) if best else None
    top_ok = r["max_lossless_pps"]
    # The generator's threads near a full core on the lowest failing trial: the
    # search found the generator's limit, and the server's is at least this high.
    above = [t for t in r["trials"] if not t["pass"] and t["report"]["offered_pps"] > top_ok]
    above = min(above, key=lambda t: t["report"]["offered_pps"]) if above else None
    # Or the best trial's offered load fell short of its target: the generator could not
    # offer more.
    saturated = bool(above and above["report"]["generator_cpu_pct"] >= 90) or bool(
        best and best["report"]["offered_pps"] < 0.95 * best["target_pps"])
    return {
        "max_lossless_pps": top_ok, "at_upper_bound": r["at_upper_bound"],
        "generator_bound": r["generator_bound"], "generator_saturated": saturated,
        "generator_cpu_pct_at_best": best["report"]["generator_cpu_pct"] if best else None,
        "send_cpu_pct_at_best": best["report"]["send_cpu_pct"] if best else None,
        # Each trial: target, offered, loss %, generator CPU %, receiver drops, passed.
        "trials": [(t["target_pps"], t["report"]["offered_pps"], t["report"]["loss_pct"],
                    t["report"]["generator_cpu_pct"], t["report"]["receiver_drops"],
                    t["pass"]) for t in r["trials"]],
        "machine_busy_pct": c["machine_busy_pct"], "fuzzer_ns": c["fuzzer_ns"],
        "kernel_to_peer": c["kernel_to_peer"],
    }


METRICS = {
    "cpu120": ("CPU ns per relayed pkt, 120 B, equal load (machine busy − other processes)",
               lambda r: r["cpu120"]["cpu_ns_per_pkt"], "<=", 0.2),
    "srv120": ("  of which the server's CPU (its busy time: process, receive path, program)",
               lambda r: r["cpu120"]["server_cpu_busy_ns_per_pkt"], None, None),
    "gen120cpu": ("  of which the generator's CPU (its busy time)",
                  lambda r: r["cpu120"]["load_cpu_busy_ns_per_pkt"], None, None),
    "proc120": ("  the server process alone (schedstat)",
                lambda r: r["cpu120"]["server_process_ns_per_pkt"], None, None),
    "cpu120_raw": ("  raw machine busy time (nothing subtracted)",
                   lambda r: r["cpu120"]["cpu_ns_per_pkt_raw"], None, None),
    "nonidle120": ("  the same from wall time − idle (precise idle clock) − other processes",
                   lambda r: r["cpu120"]["nonidle_ns_per_pkt"], None, None),
    "srvni120": ("  of which the server's CPU, wall time − idle",
                 lambda r: r["cpu120"]["server_cpu_nonidle_ns_per_pkt"], None, None),
    "cpu1200": ("CPU ns per relayed pkt, 1200 B, equal load",
                lambda r: r["cpu1200"]["cpu_ns_per_pkt"], None, None),
    "srv1200": ("  of which the server's CPU",
                lambda r: r["cpu1200"]["server_cpu_busy_ns_per_pkt"], None, None),
    "nonidle1200": ("  the same from wall time − idle − other processes",
                    lambda r: r["cpu1200"]["nonidle_ns_per_pkt"], None, None),
    "srvni1200": ("  of which the server's CPU, wall time − idle",
                  lambda r: r["cpu1200"]["server_cpu_nonidle_ns_per_pkt"], None, None),
    "rate120": ("loss-free pkt/s, 120 B", lambda r: r["rate120"]["max_lossless_pps"],
                ">=", 3.0),
    "rate1200": ("loss-free pkt/s, 1200 B", lambda r: r["rate1200"]["max_lossless_pps"],
                 ">=", 3.0),
    "gen120": ("generator threads' CPU % of a core, best 120 B trial",
               lambda r: r["rate120"]["generator_cpu_pct_at_best"], None, None),
    "gen1200": ("generator threads' CPU % of a core, best 1200 B trial",
                lambda r: r["rate1200"]["generator_cpu_pct_at_best"], None, None),
    "p99_120": ("p99 one-way µs, 120 B equal load", lambda r: r["cpu120"]["p99_us"],
                None, None),
    "kshare120": ("kernel-relayed share of delivered, 120 B",
                  lambda r: r["cpu120"]["kernel_share"], None, None),
}


def summarize(rows, servers):
    """Medians, spreads and the kernel modes' ratios, as markdown lines and a dict."""
    out, lines = {}, []
    leads = [s for s in KERNEL if s in servers]
    pairs = [(k, s) for k in leads for s in servers if s != k and s not in KERNEL]
    head = "| metric | " + " | ".join(f"{s} median (min–max)" for s in servers)
    head += " | " + " | ".join(f"{k[9:]} / {s}" for k, s in pairs) + " |"
    lines += [head, "|" + "---|" * (1 + len(servers) + len(pairs))]
    for key, (label, get, op, goal) in METRICS.items():
        vals = {}
        for s in servers:
            v = []
            for r in rows:
                if r["server"] == s:
                    try:
                        x = get(r)
                        if x is not None:
                            v.append(float(x))
                    except (KeyError, TypeError):
                        pass
            vals[s] = v
        med = {s: spread(v) for s, v in vals.items()}
        ratios = {f"{k[9:]}/{s}": (med[k][0] / med[s][0]) if med[s][0] and med[k][0] == med[k][0]
                  else float("nan") for k, s in pairs}
        out[key] = {"label": label, "values": vals, "median": {s: m[0] for s, m in med.items()},
                    "ratios": ratios}
        fmt = (lambda x: f"{x:.3f}") if key.startswith("kshare") else (lambda x: f"{x:.0f}")
        cells = [f"{fmt(m[0])} ({fmt(m[1])}–{fmt(m[2])})" if vals[s] else "–"
                 for s, m in med.items()]
        rc = []
        for k, s in pairs:
            x = ratios.get(f"{k[9:]}/{s}", float("nan"))
            mark = ""
            if op and s.startswith("coturn") and x == x:
                mark = " ✓" if (x <= goal if op == "<=" else x >= goal) else " ✗"
            rc.append(f"{x:.2f}×{mark}" if x == x else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(rc) + " |")
    return out, lines


def raw_rows(rows):
    """One markdown line per server and round, in run order."""
    f = lambda r, k, key, fmt="{:.0f}": fmt.format(r[k][key]) if k in r and r[k].get(
        key) is not None else "–"
    lines = ["| round | server | 120 B ns/pkt (server CPU) | loss % | kernel share | "
             "1200 B ns/pkt (server CPU) | loss % | loss-free 120 B (gen %) | "
             "loss-free 1200 B (gen %) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['round']} | {r['server']} | {f(r, 'cpu120', 'cpu_ns_per_pkt')} "
            f"({f(r, 'cpu120', 'server_cpu_busy_ns_per_pkt')}) | "
            f"{f(r, 'cpu120', 'loss_pct', '{:.3f}')} | {f(r, 'cpu120', 'kernel_share', '{:.3f}')}"
            f" | {f(r, 'cpu1200', 'cpu_ns_per_pkt')} "
            f"({f(r, 'cpu1200', 'server_cpu_busy_ns_per_pkt')}) | "
            f"{f(r, 'cpu1200', 'loss_pct', '{:.3f}')} | {f(r, 'rate120', 'max_lossless_pps')} "
            f"({f(r, 'rate120', 'generator_cpu_pct_at_best')}) | "
            f"{f(r, 'rate1200', 'max_lossless_pps')} "
            f"({f(r, 'rate1200', 'generator_cpu_pct_at_best')}) |")
    return lines


def measure(args, servers, skip, work, rows, result, save):
    """The rounds, in namespaces of their own (removed at the end, also on error)."""
    env = result["env"]
    nic_like = args.nic_like or any(s.startswith("turnpike-xdp") for s in servers)
    with Netns(args.server_cpu, args.load_cpu, nic_like, args.gen_gso, args.sink) as net:
        equal = args.equal_pps
        if equal is None and "cpu" not in skip:
            with Server("coturn-4.6.1", args, net, work) as srv:
                ref = search(args, net, srv, 120, args.search_top)
            equal = args.equal_share * ref["max_lossless_pps"]
            result["reference_search"] = ref
            log(f"coturn 4.6.1 loss-free at 120 B: {ref['max_lossless_pps']:.0f} pkt/s; "
                f"equal load {equal:.0f} pkt/s")
        env["equal_pps"] = equal
        env["nic_like"] = nic_like
        for rnd in range(1, args.rounds + 1):
            order = servers if rnd % 2 else servers[::-1]
            for kind in order:
                row = {"round": rnd, "server": kind}
                log(f"round {rnd}: {kind}")
                if "cpu" not in skip:
                    for size in (120, 1200):
                        with Server(kind, args, net, work) as srv:
                            row[f"cpu{size}"] = equal_load(args, net, srv, size, equal)
                        c = row[f"cpu{size}"]
                        log(f"  {size} B at {equal:.0f} pkt/s: {c['cpu_ns_per_pkt']:.0f} ns/pkt,"
                            f" loss {c['loss_pct']:.3f} %, kernel share {c['kernel_share']:.3f}")
                if "rate" not in skip:
                    for size in (120, 1200):
                        with Server(kind, args, net, work) as srv:
                            row[f"rate{size}"] = search(args, net, srv, size, args.search_top)
                        log(f"  {size} B loss-free: {row[f'rate{size}']['max_lossless_pps']:.0f}"
                            f" pkt/s (generator {row[f'rate{size}']['generator_cpu_pct_at_best']}"
                            " % of a core)")
                rows.append(row)
                save()


def server_args(p):
    """The options of the servers and their pinning (offload_raw.py has them too)."""
    p.add_argument("--turnpike", type=pathlib.Path, default=ROOT / "target/release/turnpike")
    p.add_argument("--coturn-new", type=pathlib.Path,
                   default=pathlib.Path("/tmp/coturn-4.17.1/bin/turnserver"))
    p.add_argument("--servers", default=",".join(SERVERS))
    p.add_argument("--server-cpu", type=int, default=1)
    p.add_argument("--load-cpu", type=int, default=0)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=pathlib.Path, required=True, help="JSON file to write")
    server_args(p)
    p.add_argument("--bench", type=pathlib.Path,
                   default=ROOT / "target/release/turnpike-bench")
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--load-secs", type=float, default=8.0)
    p.add_argument("--trial-secs", type=float, default=2.0)
    p.add_argument("--max-trials", type=int, default=7)
    p.add_argument("--search-min", type=float, default=20000)
    p.add_argument("--search-top", type=float, default=300000,
                   help="first top of each search's range (it may double once)")
    p.add_argument("--equal-pps", type=float,
                   help="fixed offered load; default --equal-share × coturn 4.6.1's rate")
    p.add_argument("--equal-share", type=float, default=0.5)
    p.add_argument("--skip", default="", help="comma list of: cpu,rate")
    p.add_argument("--sink", action="store_true",
                   help="count relayed datagrams with nftables where they arrive and drop them "
                   "(no peer sockets' receive path); CPU only (with --skip rate)")
    p.add_argument("--gen-gso", action="store_true",
                   help="the generator sends GSO messages, segmented in software before the veth")
    p.add_argument("--nic-like", action="store_true",
                   help="load side tx checksum offload off, GRO on (always with turnpike-xdp)")
    p.add_argument("--bpf-stats", action="store_true",
                   help="diagnostic: turn kernel.bpf_stats_enabled on for the run (a global "
                   "switch that costs every BPF program a little; restored to 0 at the end) "
                   "and record the program's run time per packet; not for recorded runs")
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    servers = [s for s in args.servers.split(",") if s]
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, BPF)")
    if "coturn-4.17.1" in servers and not args.coturn_new.exists():
        log(f"{args.coturn_new} missing: coturn 4.17.1 left out")
        servers.remove("coturn-4.17.1")
    git = lambda *a: subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True,
                                    text=True).stdout.strip()
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git("rev-parse", "--short", "HEAD")
        + ("+dirty" if git("status", "--porcelain", "--", "crates") else ""),
        "kernel": os.uname().release, "cpus": os.cpu_count(),
        "cpu_model": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                           if l.startswith("model name")), "?"),
        "coturn_4.6.1": run(["turnserver", "--version"], 10).strip().splitlines()[-1],
        "coturn_new": run([str(args.coturn_new), "--version"], 10).strip().splitlines()[-1]
        if args.coturn_new.exists() else "missing",
        "fuzzer_running_at_start": bool(subprocess.run(
            ["pgrep", "-f", "release/core_sequence"], capture_output=True).stdout.strip()),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    work = pathlib.Path(tempfile.mkdtemp(prefix="offload-bench."))
    rows, result = [], {"env": env}

    def save():
        result["rows"] = rows
        result["commands"] = list(dict.fromkeys(vs_coturn.COMMANDS))
        args.out.write_text(json.dumps(result, indent=1))

    if args.bpf_stats:
        run(["sysctl", "-qw", "kernel.bpf_stats_enabled=1"], 10)
    try:
        measure(args, servers, skip, work, rows, result, save)
    finally:
        if args.bpf_stats:
            run(["sysctl", "-qw", "kernel.bpf_stats_enabled=0"], 10)
    summary, lines = summarize(rows, servers)
    for size in (120, 1200):
        sat = {s: sum(1 for r in rows if r["server"] == s and r.get(f"rate{size}", {}).get(
            "generator_saturated")) for s in servers}
        lines.append(f"\nRounds whose {size} B search ended with the generator's threads at "
                     "≥ 90 % of a core on the lowest failing trial, or short of the best trial's "
                     "target (rate is a lower bound): "
                     + ", ".join(f"{s} {n}" for s, n in sat.items()))
    result["summary"] = summary
    result["summary_md"] = lines
    result["rows_md"] = raw_rows(rows)
    save()
    print("\n".join(lines + [""] + result["rows_md"]))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
