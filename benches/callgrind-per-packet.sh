#!/usr/bin/env bash
# User-space instructions per relayed packet, turnpike vs coturn, counted by callgrind.
#
#   benches/callgrind-per-packet.sh [RATE] [SHORT_SECS] [LONG_SECS]
#
# Each server runs under `valgrind --tool=callgrind` twice while turnpike-bench sends
# 100 clients × RATE pkt/s (default 200) of 120-byte ChannelData to its own peers, once for
# SHORT_SECS (default 2) and once for LONG_SECS (default 6) seconds. The difference of the
# two runs' instruction totals over the difference of their delivered packets is the
# server's user-space cost per relayed packet: start-up, the allocations and shutdown
# cancel out. Instruction counts do not depend on what else the machine is doing, so
# unlike CPU time this is repeatable on a shared machine; it is blind to the kernel,
# where most of a relay's time goes (benches/perf_split.py measures that part).
#
# Under valgrind a server runs ~50 times slower, so RATE must stay low enough for no
# loss (the script refuses a run that lost packets). Batches are smaller than at full
# speed, so per-wake-up costs weigh more than in the perf profiles.
#
# Needs valgrind, coturn (turnserver) and the release binaries (cargo build --release
# -p turnpike -p turnpike-bench; TURNPIKE=PATH measures another turnpike binary, BENCH=PATH
# loads with another turnpike-bench, KINDS=turnpike leaves coturn out). Uses UDP port 34790
# and relay ports 40000-49999.
set -euo pipefail
shopt -s inherit_errexit
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RATE=${1:-200}
SHORT=${2:-2}
LONG=${3:-6}
PORT=34790
SECRET=benchsecret
TURNPIKE=${TURNPIKE:-$ROOT/target/release/turnpike}
BENCH=${BENCH:-$ROOT/target/release/turnpike-bench}
KINDS=${KINDS:-turnpike coturn}
WORK=$(mktemp -d /tmp/callgrind-per-packet.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
tools=(valgrind "$TURNPIKE" "$BENCH")
[[ " $KINDS " == *" coturn "* ]] && tools+=(turnserver)
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

# shellcheck source=benches/loopback-config.sh
source "$ROOT/benches/loopback-config.sh"
loopback_turnpike_config "$WORK/turnpike.toml" "$PORT" "$SECRET" 40000-49999

# Prints "<delivered> <instructions>" for one server under callgrind for SECS seconds.
run() {
    local kind=$1 secs=$2 out="$WORK/callgrind.$1.$2"
    local cmd
    if [ "$kind" = coturn ]; then
        cmd=(turnserver -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1
            --listening-port=$PORT --min-port=40000 --max-port=49999 --use-auth-secret
            --static-auth-secret=$SECRET --realm=bench --allow-loopback-peers --no-cli
            --no-tls --no-dtls --no-tcp --fingerprint --relay-threads=1
            --userdb="$WORK/turndb" --pidfile="$WORK/coturn.pid" --log-file=stdout
            --no-stun-backward-compatibility)
    else
        cmd=("$TURNPIKE" run --config "$WORK/turnpike.toml")
    fi
    echo "+ valgrind --tool=callgrind ${cmd[*]}" >&2
    valgrind --tool=callgrind --callgrind-out-file="$out" "${cmd[@]}" >"$WORK/$kind.log" 2>&1 &
    local pid=$!
    # Up when it answers a Binding request.
    python3 - "$PORT" <<'PY'
import os, socket, sys, time
req = bytes.fromhex("000100002112a442") + os.urandom(12)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.3)
for _ in range(200):
    try:
        s.sendto(req, ("127.0.0.1", int(sys.argv[1])))
        s.recvfrom(2048)
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit("server did not answer")
PY
    sleep 1
    local load=("$BENCH" load --server 127.0.0.1:$PORT --secret $SECRET --clients 100
        --rate "$RATE" --size 120 --duration "$secs" --json --quiet)
    echo "+ ${load[*]}" >&2
    local report
    report=$("${load[@]}")
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    local delivered
    delivered=$(printf '%s' "$report" | python3 -c '
import json, sys
r = json.load(sys.stdin)
lost = r["lost"]
if lost:
    sys.exit(f"lost {lost} packets under valgrind: lower the rate")
print(r["delivered"])')
    # Every dump's file ("part"), summed; each file states its total once.
    local total
    total=$(cat "$out"* | awk '/^totals:/ {s += $2} END {print s}')
    echo "$delivered $total"
}

declare -A per
for kind in $KINDS; do
    short=$(run "$kind" "$SHORT")
    long=$(run "$kind" "$LONG")
    read -r d1 i1 <<<"$short"
    read -r d2 i2 <<<"$long"
    per[$kind]=$(( (i2 - i1) / (d2 - d1) ))
    echo "$kind: $((d2 - d1)) more packets relayed, $((i2 - i1)) more instructions:" \
        "${per[$kind]} user-space instructions per relayed packet"
done
if [ -n "${per[coturn]:-}" ]; then
    python3 -c "print(f'ratio turnpike / coturn: {${per[turnpike]} / ${per[coturn]}:.2f}')"
fi
