#!/usr/bin/env bash
# Cross-check of the relay rate with coturn's own load generator: turnpike vs coturn on
# loopback, both driven by turnutils_uclient (called by benches/vs-coturn.sh; runs alone
# too). uclient cannot saturate either server on this machine, so the figures to read are
# the server CPU per relayed packet at the same uclient load, and that the two generators
# (turnpike-bench in vs_coturn.py, uclient here) agree.
#
# Each run: start one server pinned to CPU1 (SERVER_CPU), start K turnutils_uclient
# processes (pinned to CPU0, LOAD_CPU) against it with turnutils_peer as the echo peer,
# sample a fixed window in the middle of the data phase, stop the server. Servers alternate
# per round (coturn first in odd rounds, turnpike first in even ones), and every run starts
# a fresh server (uclient never deletes its probe allocations).
#
# Per run, over the window:
#   relayed pkt/s  = 2 × (messages echoed back to the uclients in the window) / window;
#                    uclient's once-a-second progress lines are timestamped as they arrive
#                    and interpolated at the window's ends (host-wide /proc/net/snmp
#                    counters are not used: other processes may share the host)
#   cpu us/pkt     = Δ(server utime+stime from /proc/PID/stat) / relayed packets
#   server cpu%    = Δ(server utime+stime) / window
# and after the run the loss uclient reports (sum of "Total lost packets" / sum sent).
# It prints medians per (level, server) and the turnpike/coturn ratios.
#
# Usage: benches/uclient-cross-check.sh [ROUNDS]       (default 3; 6 for the protocol's minimum)
# Env:   LEVELS="L:K:Z:M:N ..."  payload bytes : uclient processes : interval ms :
#        clients per process : messages per client. WARMUP, WINDOW, RUN_TIMEOUT (s),
#        TP_BIN (turnpike binary; default target/release/turnpike, built if missing).
# One round of the default levels takes ~3 minutes (3 rounds ≈ 9 minutes).
set -euo pipefail

ROUNDS=${1:-3}
LEVELS=${LEVELS:-"120:1:5:50:1500 120:4:1:50:1000 1200:2:1:50:1500"}
WARMUP=${WARMUP:-1}
WINDOW=${WINDOW:-4}
RUN_TIMEOUT=${RUN_TIMEOUT:-40}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
PORT=${PORT:-34780}
PEER_PORT=${PEER_PORT:-34790}
SECRET=benchsecret
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TP_BIN=${TP_BIN:-$ROOT/target/release/turnpike}
# SERVERS="coturn turnpike turnpike2" also runs TP_BIN2 (e.g. a build before a change).
SERVERS=${SERVERS:-coturn turnpike}
TP_BIN2=${TP_BIN2:-}
WORK=$(mktemp -d /tmp/uclient-cross-check.XXXXXX)
RESULTS=$WORK/results.tsv

command -v turnserver >/dev/null || { echo "coturn (turnserver) not installed" >&2; exit 1; }
[ -x "$TP_BIN" ] || (cd "$ROOT" && cargo build --release -p turnpike)

# shellcheck source=benches/loopback-config.sh
source "$ROOT/benches/loopback-config.sh"
loopback_turnpike_config "$WORK/turnpike.toml" "$PORT" "$SECRET" 40000-49999

# Prefixes each uclient output line with a monotonic timestamp.
STAMP='import sys, time
for line in sys.stdin:
    sys.stdout.write(f"{time.monotonic():.3f} {line}")'

SERVER_PID=""
PEER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    if [ -n "$PEER_PID" ]; then kill "$PEER_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

start_server() { # $1 = coturn | turnpike
    rm -f "$WORK/turndb"
    if [ "$1" = coturn ]; then
        taskset -c "$SERVER_CPU" turnserver -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 \
            --listening-port="$PORT" --min-port=40000 --max-port=49999 --use-auth-secret \
            --static-auth-secret="$SECRET" --realm=bench --allow-loopback-peers --no-cli \
            --no-tls --no-dtls --no-tcp --fingerprint --relay-threads=1 \
            --userdb="$WORK/turndb" --pidfile="$WORK/coturn.pid" --log-file=stdout \
            >"$WORK/server.log" 2>&1 &
    else
        local bin=$TP_BIN
        [ "$1" = turnpike2 ] && bin=$TP_BIN2
        taskset -c "$SERVER_CPU" "$bin" --config "$WORK/turnpike.toml" \
            >"$WORK/server.log" 2>&1 &
    fi
    SERVER_PID=$!
    for _ in $(seq 50); do
        # stunclient never retransmits: bound each probe.
        timeout 1 turnutils_stunclient -p "$PORT" 127.0.0.1 >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$1 did not start" >&2
    cat "$WORK/server.log" >&2
    exit 1
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
mono() { python3 -c 'import time; print(time.monotonic())'; }

run_one() { # $1 server, $2 level "L:K:Z:M:N", $3 round
    local server=$1 level=$2 round=$3 L K Z M N i
    IFS=: read -r L K Z M N <<<"$level"
    start_server "$server"
    local pids=()
    for i in $(seq "$K"); do
        (timeout "$RUN_TIMEOUT" taskset -c "$LOAD_CPU" turnutils_uclient -W "$SECRET" -u bench \
            -e 127.0.0.1 -r "$PEER_PORT" -p "$PORT" -m "$M" -n "$N" -l "$L" -z "$Z" -c \
            127.0.0.1 2>&1 | python3 -u -c "$STAMP" >"$WORK/uc.$i") &
        pids+=($!)
    done
    # Window starts WARMUP s after every uclient reports data flowing (its allocations
    # take seconds: uclient paces them).
    for _ in $(seq 300); do
        local ready=1
        for i in $(seq "$K"); do
            grep -q 'tot_send_msgs=[1-9]' "$WORK/uc.$i" 2>/dev/null || ready=0
        done
        [ "$ready" = 1 ] && break
        sleep 0.1
    done
    sleep "$WARMUP"
    local c0 c1 t0 t1 hz
    c0=$(cpu_ticks "$SERVER_PID")
    t0=$(mono)
    sleep "$WINDOW"
    c1=$(cpu_ticks "$SERVER_PID")
    t1=$(mono)
    for i in "${pids[@]}"; do wait "$i" || true; done
    stop_server
    hz=$(getconf CLK_TCK)
    python3 - "$server" "$level" "$round" "$c0" "$c1" "$t0" "$t1" "$hz" "$WORK"/uc.* <<'PY' | tee -a "$RESULTS"
import re, sys
server, level, rnd, c0, c1, t0, t1, hz = sys.argv[1:9]
t0, t1 = float(t0), float(t1)

def at(points, t):
    """Counter value at time t, interpolated between timestamped progress lines."""
    prev = (points[0][0], 0) if points else (t, 0)
    for p in points:
        if p[0] >= t:
            if p[0] == prev[0]:
                return p[1]
            return prev[1] + (p[1] - prev[1]) * (t - prev[0]) / (p[0] - prev[0])
        prev = p
    return prev[1]

echoed = sent = lost = 0
for f in sys.argv[9:]:
    pts = []
    for line in open(f, errors="replace"):
        ts, _, rest = line.partition(" ")
        m = re.search(r"msz=\d+, tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", rest)
        if m:
            pts.append((float(ts), int(m.group(2))))
        m = re.search(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=\d+", rest)
        if m:
            sent += int(m.group(1))
        m = re.search(r"Total lost packets (\d+)", rest)
        if m:
            lost += int(m.group(1))
    echoed += at(pts, t1) - at(pts, t0)
dt = t1 - t0
relayed = 2 * echoed  # each echoed message crossed the relay twice
cpu = (int(c1) - int(c0)) / int(hz)
pps = relayed / dt
cpu_us = cpu / relayed * 1e6 if relayed else float("nan")
loss = 100 * lost / sent if sent else float("nan")
print(f"{server}\t{level}\t{rnd}\t{pps:.0f}\t{cpu_us:.2f}\t{loss:.3f}\t{100 * cpu / dt:.0f}")
PY
    rm -f "$WORK"/uc.*
}

echo "# server level(L:K:Z:M:N) round relayed_pps cpu_us_per_pkt uclient_loss% server_cpu%" | tee "$RESULTS"
turnutils_peer -p "$PEER_PORT" -L 127.0.0.1 >/dev/null 2>&1 &
PEER_PID=$!
for round in $(seq "$ROUNDS"); do
    # Odd rounds in the given order, even rounds reversed.
    order=$SERVERS
    if [ $((round % 2)) = 0 ]; then order=$(echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' '); fi
    for level in $LEVELS; do
        for server in $order; do
            run_one "$server" "$level" "$round"
        done
    done
done

echo
python3 - "$RESULTS" <<'PY'
import statistics as st, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if not l.startswith("#")]
levels = list(dict.fromkeys(r[1] for r in rows))

# A round whose uclients never got data through (0 pkt/s: they gave up before the
# window) measured nothing; it is left out of the medians and named.
failed = [r for r in rows if float(r[3]) == 0]
for r in failed:
    print(f"left out: {r[0]} level {r[1]} round {r[2]} (no traffic relayed in the window)")
rows = [r for r in rows if float(r[3]) > 0]

def med(server, level, col):
    v = [float(r[col]) for r in rows if r[0] == server and r[1] == level]
    return st.median(v) if v else float("nan")

print("medians; level L:K:Z:M:N = payload B : uclients : interval ms : clients each : msgs each")
print(f"{'level':18} {'server':9} {'pkt/s':>8} {'cpu us/pkt':>10} {'loss%':>7} {'cpu%':>5}")
for lv in levels:
    for s in ("coturn", "turnpike", "turnpike2"):
        if not any(r[0] == s for r in rows):
            continue
        print(f"{lv:18} {s:9} {med(s, lv, 3):8.0f} {med(s, lv, 4):10.2f} "
              f"{med(s, lv, 5):7.3f} {med(s, lv, 6):5.0f}")
    ratio = lambda col: med("turnpike", lv, col) / med("coturn", lv, col) if med("coturn", lv, col) else float("nan")
    print(f"{lv:18} {'t/c ratio':9} {ratio(3):8.2f} {ratio(4):10.2f}")
    if any(r[0] == "turnpike2" for r in rows):
        r2 = lambda col: med("turnpike2", lv, col) / med("coturn", lv, col) if med("coturn", lv, col) else float("nan")
        print(f"{lv:18} {'t2/c':9} {r2(3):8.2f} {r2(4):10.2f}")
PY
echo "raw results: $RESULTS"
