#!/usr/bin/env python3
"""Splits a server core's `perf record` profile into where each relayed packet's time goes.

    perf record -e cpu-clock -a -C SERVER_CPU -g -o FILE -- sleep SECS   (during a fixed load)
    benches/perf_split.py --pps PKT_PER_S --secs SECS [--freq 4000] FILE [FILE ...]

Every sample of the server's CPU is put in one category by its call chain, and each
category is printed as nanoseconds per relayed packet (samples / freq / secs / pps), one
column per profile, so two servers profiled at the same load compare line by line:

  recv syscalls        recvmsg/recvmmsg/recvfrom: dequeue and copy out
  send: own path       sendto/sendmsg/sendmmsg up to the device (skb, copy, IP, route)
  send: delivery       the loopback softirq run inside a send: IP input, socket lookup,
                       queueing into the receiving socket and waking its reader (on a real
                       network this is the receiving host's work)
  epoll, other syscalls, user, other kernel, idle (not counted in busy)

The send path is also split by the kernel function that dominates it (route lookup,
skb allocation and copy, IP output and device transmit, syscall entry).
"""

import argparse
import collections
import subprocess

SEND_PARTS = [
    ("ip_route_output", "route lookup"),
    ("sk_dst_check", "cached route check"),
    ("ip_make_skb", "skb allocation and copy"),
    ("udp_send_skb", "IP output and device transmit"),
]


def samples(path):
    """Yields (comm, [(address, symbol)...]) per sample, leaf first."""
    out = subprocess.run(
        ["perf", "script", "-i", path, "-F", "comm,ip,sym", "--no-inline"],
        capture_output=True, text=True, check=True,
    ).stdout
    comm, frames = None, []
    for line in out.splitlines() + [""]:
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
        elif line[0] in "\t ":
            addr, _, sym = line.strip().partition(" ")
            frames.append((addr, sym))
        else:
            comm = line.split()[0] if line.split() else ""
    if comm is not None:
        yield comm, frames


def classify(comm, frames):
    chain = " ".join(s for _, s in frames)
    if comm == "swapper" or ("do_idle" in chain and "syscall" not in chain):
        return "idle", None
    if "sys_recv" in chain:
        return "recv syscalls", None
    if "sys_send" in chain:
        if "process_backlog" in chain or "net_rx_action" in chain:
            return "send: delivery (softirq)", None
        part = next((name for key, name in SEND_PARTS if key in chain), "syscall entry and rest")
        return "send: own path", part
    if "epoll_wait" in chain:
        return "epoll", None
    if "do_syscall_64" in chain:
        return "other syscalls", None
    if frames and not frames[0][0].startswith("ffffffff"):
        return "user", None
    return "other kernel", None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pps", type=float, required=True, help="relayed packets per second")
    p.add_argument("--secs", type=float, required=True, help="seconds recorded")
    p.add_argument("--freq", type=float, default=4000, help="perf sampling frequency")
    p.add_argument("profiles", nargs="+")
    a = p.parse_args()
    ns = lambda n: n / a.freq / a.secs / a.pps * 1e9
    cats, parts = {}, {}
    for f in a.profiles:
        cats[f], parts[f] = collections.Counter(), collections.Counter()
        for comm, frames in samples(f):
            cat, part = classify(comm, frames)
            cats[f][cat] += 1
            if part:
                parts[f][part] += 1
    width = max(12, *(len(f) for f in a.profiles))
    print("ns per relayed packet".ljust(36) + "".join(f.rjust(width + 2) for f in a.profiles))
    order = ["recv syscalls", "send: own path", "send: delivery (softirq)", "epoll",
             "other syscalls", "user", "other kernel"]
    for cat in order:
        print(cat.ljust(36) + "".join(f"{ns(cats[f][cat]):{width + 2}.0f}" for f in a.profiles))
        if cat == "send: own path":
            names = [n for _, n in SEND_PARTS] + ["syscall entry and rest"]
            for n in names:
                print(f"  {n}".ljust(36)
                      + "".join(f"{ns(parts[f][n]):{width + 2}.0f}" for f in a.profiles))
    busy = {f: sum(cats[f].values()) - cats[f]["idle"] for f in a.profiles}
    print("busy".ljust(36) + "".join(f"{ns(busy[f]):{width + 2}.0f}" for f in a.profiles))


if __name__ == "__main__":
    main()
