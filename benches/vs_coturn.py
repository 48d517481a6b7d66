#!/usr/bin/env python3
"""Side-by-side benchmark: turnpike vs coturn on loopback, driven by turnpike-bench.

Run it through benches/vs-coturn.sh (which builds the release binaries first). Every
run starts a fresh server pinned to SERVER_CPU (taskset) and drives it with
turnpike-bench pinned to LOAD_CPU. Rounds alternate the order of the servers (ABAB:
coturn first in odd rounds, turnpike first in even ones) so that drift of the shared
machine hits both alike. Per server and round:

  memory     RSS before, and while turnpike-bench `hold` keeps --hold allocations (one
             permission and one channel each): ΔRSS / allocations
  rate120    `search`: highest ChannelData rate with loss ≤ 0.1 % at 120-byte payloads
  rate1200   the same at 1200 bytes
  equal      `load` at a fixed offered rate (half coturn's max loss-free rate at 120 B,
             found once before the rounds): server CPU per relayed packet, from the
             server CPU's busy time (/proc/stat; the process's own time from
             /proc/PID/task/*/schedstat beside it) over the run, and the p99 one-way
             added latency
  video      `load` of --video-clients video-like streams (300 pkt/s of 1200 B in
             10-packet frames at 30 fps): server CPU per relayed packet and p99
  c2c        the same relay work client to client (`load --to clients` at half that
             rate: each packet is relayed twice), CPU per relayed packet
  storm      `storm`: authenticated allocations per second (401 round trip included,
             then Refresh lifetime 0)

Then, once per server, a flood of Binding and unauthenticated Allocate requests from
--flood-sources spoofed 127/8 sources, with the RSS before and after.

It prints medians, min–max spread and turnpike/coturn ratios, checks the targets of
issue 6, and writes everything (raw rows, JSON, the markdown summary, the commands, the
search plots) to --out.
"""

import argparse
import datetime
import json
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
SECRET = "benchsecret"
TARGETS = {
    "rate120": (">=", 2.0),
    "rate1200": (">=", 2.0),
    "cpu_ns_per_pkt": ("<=", 0.5),
    "process_cpu_ns_per_pkt": ("<=", 0.5),
    "c2c_cpu_ns_per_relay": ("<=", 0.5),
    "video_cpu_ns_per_pkt": ("<=", 0.5),
    "allocs_per_s": (">=", 5.0),
}
COMMANDS = []


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, timeout, **kw):
    """Runs a command, records it, and returns its stdout (raises on failure)."""
    COMMANDS.append(" ".join(str(c) for c in cmd))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0:4]} exited {p.returncode}: {p.stderr[-2000:]}")
    return p.stdout


def cpu_ns(pid):
    """On-CPU time of every thread of a process, in ns."""
    total = 0
    for t in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((t / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def cpu_busy_ns(cpu):
    """Busy time of one CPU (all but idle and iowait) from /proc/stat, in ns. The server
    runs alone on its CPU, so this also counts the softirq work its traffic causes there,
    which the kernel may hand to ksoftirqd and so not charge to the server process."""
    for line in open("/proc/stat"):
        f = line.split()
        if f[0] == f"cpu{cpu}":
            ticks = [int(x) for x in f[1:]]
            busy = sum(ticks[:8]) - ticks[3] - ticks[4]
            return busy * 1e9 / os.sysconf("SC_CLK_TCK")
    return 0


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def stun_ready(port, timeout=10.0):
    """Waits until a Binding request to 127.0.0.1:port is answered."""
    req = bytes.fromhex("0001000021120000") + os.urandom(12)
    req = req[:4] + bytes.fromhex("2112a442") + req[8:]
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                s.sendto(req, ("127.0.0.1", port))
                s.recvfrom(2048)
                return True
            except OSError:
                time.sleep(0.05)
    return False


class Server:
    """One server process, started fresh, pinned, stopped by its PID."""

    def __init__(self, kind, args, work):
        self.kind, self.args, self.work = kind, args, work
        self.proc = None

    def __enter__(self):
        a = self.args
        log_path = self.work / f"{self.kind}.log"
        if self.kind == "coturn":
            db = self.work / "turndb"
            db.unlink(missing_ok=True)
            cmd = [
                "turnserver", "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
                f"--listening-port={a.port}", f"--min-port={a.min_port}",
                f"--max-port={a.max_port}", "--use-auth-secret",
                f"--static-auth-secret={SECRET}", "--realm=bench", "--allow-loopback-peers",
                "--no-cli", "--no-tls", "--no-dtls", "--no-tcp", "--fingerprint",
                "--relay-threads=1", f"--userdb={db}",
                f"--pidfile={self.work / 'coturn.pid'}", "--log-file=stdout",
                "--no-stun-backward-compatibility",
            ]
        else:
            conf = self.work / "turnpike.toml"
            conf.write_text(
                f"""[listen]
udp = ["127.0.0.1:{a.port}"]
tcp = []
[turn]
realm = "bench"
secrets = ["{SECRET}"]
[relay]
ips = ["127.0.0.1"]
ports = "{a.min_port}-{a.max_port}"
[peers]
dangerous_allow_loopback_peers = true
[quotas]
allocations_per_user = 1000000
allocations_total = 1000000
[runtime]
workers = 1
[log]
level = "warn"
"""
            )
            cmd = [str(a.turnpike), "run", "--config", str(conf)]
        cmd = ["taskset", "-c", str(a.server_cpu)] + cmd
        COMMANDS.append(" ".join(cmd))
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        if not stun_ready(a.port):
            self.stop()
            raise RuntimeError(f"{self.kind} did not start; see {log_path}")
        time.sleep(0.3)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def __exit__(self, *exc):
        self.stop()


def bench(args, *cmd, timeout=300, quiet=True):
    """Runs turnpike-bench on the load CPU and parses its JSON report."""
    full = ["taskset", "-c", str(args.load_cpu), str(args.bench), *map(str, cmd), "--json"]
    if quiet:
        full.append("--quiet")
    return json.loads(run(full, timeout))


def server_args(args):
    return ["--server", f"127.0.0.1:{args.port}", "--secret", SECRET]


def measure_memory(args, srv):
    """RSS per allocation while `hold` keeps args.hold allocations."""
    before = rss_kib(srv.pid)
    cmd = ["taskset", "-c", str(args.load_cpu), str(args.bench), "hold",
           *server_args(args), "--clients", str(args.hold)]
    COMMANDS.append(" ".join(cmd))
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    held = 0
    deadline = time.monotonic() + 120
    try:
        for line in p.stdout:
            if line.startswith("holding"):
                held = int(line.split()[1])
                break
            if time.monotonic() > deadline:
                break
        time.sleep(1.0)
        during = rss_kib(srv.pid)
    finally:
        try:
            p.stdin.close()
        except OSError:
            pass
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
    if held == 0:
        raise RuntimeError(f"hold made no allocations: {p.stderr.read()[-1000:]}")
    return {
        "held": held,
        "rss_before_kib": before,
        "rss_holding_kib": during,
        "bytes_per_alloc": (during - before) * 1024 / held,
    }


def search(args, size, srv_kind, rnd, out):
    plot = out / f"search-{size}B-{srv_kind}-r{rnd}.svg"
    r = bench(
        args, "search", *server_args(args), "--clients", args.clients, "--size", size,
        "--trial-secs", args.trial_secs, "--min-pps", 5000, "--max-pps", args.max_pps,
        "--max-trials", args.max_trials, "--ceiling", args.ceiling[size], "--plot", plot,
        timeout=args.max_trials * (args.trial_secs + 15) + 60,
    )
    return r


def measured_load(args, srv, clients, per_client, *load_args, passes=1):
    """One `load` run of `clients` × `per_client` pkt/s with the server's CPU measured
    over it: CPU per relayed packet (the run's set-up and drain included) from the
    server CPU's busy time (process + the softirq work it causes) and from the process's
    own on-CPU time. `passes`: relay passes per delivered packet."""
    c0, b0 = cpu_ns(srv.pid), cpu_busy_ns(args.server_cpu)
    t0 = time.monotonic()
    r = bench(args, "load", *server_args(args), "--clients", clients, "--rate", per_client,
              "--duration", args.load_secs, *load_args, timeout=args.load_secs + 60)
    c1, b1 = cpu_ns(srv.pid), cpu_busy_ns(args.server_cpu)
    t1 = time.monotonic()
    relayed = passes * r["delivered"]
    per = (lambda ns: ns / relayed) if relayed else (lambda ns: float("nan"))
    return {
        "offered_pps": r["offered_pps"],
        "delivered": r["delivered"],
        "loss_pct": r["loss_pct"],
        "p99_us": r["latency"]["p99_us"],
        "p50_us": r["latency"]["p50_us"],
        "server_cpu_pct": 100 * (c1 - c0) / 1e9 / (t1 - t0),
        "server_cpu_busy_pct": 100 * (b1 - b0) / 1e9 / (t1 - t0),
        "cpu_ns_per_pkt": per(b1 - b0),
        "process_cpu_ns_per_pkt": per(c1 - c0),
    }


def equal_load(args, srv, pps):
    """Fixed offered load of 120-byte packets, client → peer."""
    return measured_load(args, srv, args.clients, pps / args.clients, "--size", 120)


def equal_load_c2c(args, srv, pps):
    """Client to client (both ends allocate on this server) at `pps` offered: every
    delivered packet crosses the relay twice (client A → A's relay → B's relay → B)."""
    r = measured_load(args, srv, args.clients, pps / args.clients, "--size", 120,
                      "--to", "clients", passes=2)
    r["cpu_ns_per_relay"] = r["cpu_ns_per_pkt"]
    return r


def video_load(args, srv):
    """Video-like load at a fixed rate: --video-clients streams of 300 pkt/s of 1200 B
    (≈ 2.9 Mbit/s each) sent as 30 frames per second, each frame's 10 packets back to
    back, as a browser's video sender does."""
    return measured_load(args, srv, args.video_clients, 300, "--size", 1200, "--shape",
                         "bursty", "--fps", 30)


def storm(args, srv):
    c0 = cpu_ns(srv.pid)
    r = bench(args, "storm", *server_args(args), "--allocations", args.storm,
              "--concurrency", 64, "--max-duration", 60, timeout=120)
    c1 = cpu_ns(srv.pid)
    r["server_cpu_us_per_alloc"] = (c1 - c0) / 1e3 / max(r["allocated"], 1)
    return r


def flood(args, srv):
    before = rss_kib(srv.pid)
    r = bench(args, "flood", "--server", f"127.0.0.1:{args.port}", "--sources",
              args.flood_sources, "--kind", "both", timeout=300, quiet=False)
    time.sleep(0.5)
    after = rss_kib(srv.pid)
    return {"rss_before_kib": before, "rss_after_kib": after,
            "rss_growth_kib": after - before, "report": r}


def spread(values):
    v = [x for x in values if x == x]
    if not v:
        return (float("nan"),) * 3
    return statistics.median(v), min(v), max(v)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--out", type=pathlib.Path)
    p.add_argument("--turnpike", type=pathlib.Path, default=ROOT / "target/release/turnpike")
    p.add_argument("--bench", type=pathlib.Path,
                   default=ROOT / "target/release/turnpike-bench")
    p.add_argument("--port", type=int, default=34780)
    p.add_argument("--min-port", type=int, default=20000)
    p.add_argument("--max-port", type=int, default=59999)
    p.add_argument("--server-cpu", type=int, default=1)
    p.add_argument("--load-cpu", type=int, default=0)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--trial-secs", type=float, default=2.0)
    p.add_argument("--max-trials", type=int, default=8)
    p.add_argument("--load-secs", type=float, default=5.0)
    p.add_argument("--hold", type=int, default=10000)
    p.add_argument("--storm", type=int, default=20000)
    p.add_argument("--video-clients", type=int, default=600)
    p.add_argument("--flood-sources", type=int, default=100000)
    p.add_argument("--skip", default="",
                   help="comma list of: memory,rate,equal,video,storm,flood")
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "crates"],
                           capture_output=True, text=True).stdout.strip()
    today = datetime.date.today().isoformat()
    out = args.out or ROOT / "benches/results" / f"{today}-{commit}"
    out.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="vs-coturn."))
    env = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "commit": commit + ("+dirty" if dirty else ""),
        "kernel": os.uname().release,
        "cpus": os.cpu_count(),
        "cpu_model": next((l.split(":", 1)[1].strip() for l in
                           open("/proc/cpuinfo") if l.startswith("model name")), "?"),
        "coturn": run(["turnserver", "--version"], 10).strip().splitlines()[-1]
        if shutil.which("turnserver") else "missing",
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    log(f"results → {out}")

    # The generator's own ceiling per payload size (a plain UDP reflector on the server's
    # CPU instead of a TURN server).
    args.ceiling = {}
    for size in (120, 1200):
        c = bench(args, "calibrate", "--clients", args.clients, "--size", size,
                  "--reflector-cpu", args.server_cpu, "--duration", 3, timeout=60)
        args.ceiling[size] = c["delivered_pps"] if "delivered_pps" in c else c["ceiling_pps"]
        log(f"generator ceiling at {size} B: {args.ceiling[size]:.0f} pkt/s")
    args.max_pps = max(args.ceiling.values()) * 1.1
    env["generator_ceiling_pps"] = args.ceiling

    # The equal offered load: half of coturn's max loss-free rate at 120 B.
    equal_pps = None
    if "equal" not in skip:
        with Server("coturn", args, work):
            r = search(args, 120, "coturn", 0, work)
        equal_pps = 0.5 * r["max_lossless_pps"]
        log(f"coturn max loss-free at 120 B (reference run): {r['max_lossless_pps']:.0f}; "
            f"equal load = {equal_pps:.0f} pkt/s")
        env["equal_load_pps"] = equal_pps

    rows = []
    for rnd in range(1, args.rounds + 1):
        order = ["coturn", "turnpike"] if rnd % 2 else ["turnpike", "coturn"]
        for kind in order:
            row = {"round": rnd, "server": kind}
            log(f"round {rnd}: {kind}")
            with Server(kind, args, work) as srv:
                if "memory" not in skip:
                    row["memory"] = measure_memory(args, srv)
                if "rate" not in skip:
                    row["rate120"] = search(args, 120, kind, rnd, out)
                    row["rate1200"] = search(args, 1200, kind, rnd, out)
                if equal_pps:
                    row["equal"] = equal_load(args, srv, equal_pps)
                    # Same relay work per second: half the packets, each relayed twice.
                    row["c2c"] = equal_load_c2c(args, srv, equal_pps / 2)
                if "video" not in skip:
                    row["video"] = video_load(args, srv)
                if "storm" not in skip:
                    row["storm"] = storm(args, srv)
                row["rss_end_kib"] = rss_kib(srv.pid)
            rows.append(row)
            (out / "rows.json").write_text(json.dumps(rows, indent=1))

    floods = {}
    if "flood" not in skip:
        for kind in ("coturn", "turnpike"):
            with Server(kind, args, work) as srv:
                floods[kind] = flood(args, srv)
            log(f"flood {kind}: RSS +{floods[kind]['rss_growth_kib']} KiB")

    metrics = {
        "rate120": ("max loss-free pkt/s, 120 B", lambda r: r["rate120"]["max_lossless_pps"]),
        "rate1200": ("max loss-free pkt/s, 1200 B",
                     lambda r: r["rate1200"]["max_lossless_pps"]),
        "cpu_ns_per_pkt": ("server CPU ns per relayed pkt (equal load; CPU busy time)",
                           lambda r: r["equal"]["cpu_ns_per_pkt"]),
        "process_cpu_ns_per_pkt": ("server process CPU ns per relayed pkt (equal load)",
                                   lambda r: r["equal"]["process_cpu_ns_per_pkt"]),
        "c2c_cpu_ns_per_relay": ("server CPU ns per relayed pkt, client to client (same relay work)",
                                 lambda r: r["c2c"]["cpu_ns_per_relay"]),
        "p99_us": ("p99 added latency µs (equal load)", lambda r: r["equal"]["p99_us"]),
        "video_cpu_ns_per_pkt": ("server CPU ns per relayed pkt, video-like (1200 B, 10-packet "
                                 "frames at 30 fps)", lambda r: r["video"]["cpu_ns_per_pkt"]),
        "video_p99_us": ("p99 added latency µs, video-like", lambda r: r["video"]["p99_us"]),
        "allocs_per_s": ("authenticated allocations/s", lambda r: r["storm"]["allocations_per_s"]),
        "bytes_per_alloc": (f"RSS bytes per allocation ({args.hold} held)",
                            lambda r: r["memory"]["bytes_per_alloc"]),
    }
    summary = {}
    lines = [f"# turnpike vs coturn — {env['date']}, commit {env['commit']}", "",
             f"{args.rounds} rounds ABAB, server on CPU {args.server_cpu}, turnpike-bench on "
             f"CPU {args.load_cpu}, {args.clients} clients, kernel {env['kernel']}, "
             f"{env['cpu_model']}. Generator ceiling (plain UDP reflector): "
             + ", ".join(f"{v:.0f} pkt/s at {k} B" for k, v in args.ceiling.items())
             + (f". Equal load: {equal_pps:.0f} pkt/s of 120 B." if equal_pps else "."), "",
             "| metric | coturn median (min–max) | turnpike median (min–max) | "
             "ratio t/c | per-round ratios median | target |",
             "|---|---|---|---|---|---|"]
    for key, (label, get) in metrics.items():
        vals = {}
        for kind in ("coturn", "turnpike"):
            v = []
            for r in rows:
                if r["server"] != kind:
                    continue
                try:
                    v.append(float(get(r)))
                except (KeyError, TypeError):
                    pass
            vals[kind] = v
        if not vals["coturn"] or not vals["turnpike"]:
            continue
        c, t = spread(vals["coturn"]), spread(vals["turnpike"])
        ratio = t[0] / c[0] if c[0] else float("nan")
        per_round = [tv / cv for tv, cv in zip(vals["turnpike"], vals["coturn"]) if cv]
        pr = statistics.median(per_round) if per_round else float("nan")
        target = TARGETS.get(key)
        verdict = ""
        if target:
            op, goal = target
            met = ratio >= goal if op == ">=" else ratio <= goal
            verdict = f"{op} {goal}× {'met' if met else 'MISSED'}"
        if key == "bytes_per_alloc":
            verdict = f"≤ 1024 B {'met' if t[0] <= 1024 else 'MISSED'}"
        summary[key] = {"label": label, "coturn": vals["coturn"], "turnpike": vals["turnpike"],
                        "coturn_median": c[0], "turnpike_median": t[0], "ratio": ratio,
                        "per_round_ratio_median": pr, "target": verdict}
        if key in ("rate120", "rate1200"):
            bound = {k: sum(1 for r in rows if r["server"] == k and r[key]["generator_bound"])
                     for k in ("coturn", "turnpike")}
            if any(bound.values()):
                verdict += (f" (generator-bound rounds: coturn {bound['coturn']}, turnpike "
                            f"{bound['turnpike']}: those figures are lower bounds)")
        lines.append(f"| {label} | {c[0]:.0f} ({c[1]:.0f}–{c[2]:.0f}) | {t[0]:.0f} "
                     f"({t[1]:.0f}–{t[2]:.0f}) | {ratio:.2f} | {pr:.2f} | {verdict} |")
    if floods:
        lines += ["", f"Flood of Binding + unauthenticated Allocate from "
                  f"{args.flood_sources} spoofed sources: RSS growth "
                  + ", ".join(f"{k} {v['rss_growth_kib']} KiB" for k, v in floods.items())
                  + " (target for turnpike: < 1024 KiB: "
                  + ("met" if floods.get("turnpike", {}).get("rss_growth_kib", 1 << 30) < 1024
                     else "MISSED") + ")."]
    text = "\n".join(lines) + "\n"
    print(text)
    (out / "summary.md").write_text(text)
    (out / "results.json").write_text(json.dumps(
        {"env": env, "summary": summary, "rows": rows, "floods": floods}, indent=1))
    (out / "commands.txt").write_text("\n".join(dict.fromkeys(COMMANDS)) + "\n")
    log(f"written: {out}")


if __name__ == "__main__":
    main()
