#!/usr/bin/env bash
# Side-by-side benchmark turnpike vs coturn on loopback (issue 6, performance.md §6).
#
#   benches/vs-coturn.sh [--rounds 6] [--out DIR] [--skip memory,rate,equal,storm,flood]
#
# 1. builds the release turnpike and turnpike-bench;
# 2. benches/vs_coturn.py: ≥ 6 rounds ABAB of turnpike-bench against a fresh coturn and a
#    fresh turnpike (max loss-free rate at 120 B and 1200 B, server CPU per relayed packet
#    and p99 added latency at half coturn's max rate, authenticated allocations/s, RSS
#    per allocation at 10 k allocations), then a 100 k-source spoofed flood per server;
#    medians, spread and ratios go to benches/results/DATE-COMMIT/;
# 3. benches/uclient-cross-check.sh: the relay rate and CPU per packet again with coturn's
#    turnutils_uclient as the load generator (UCLIENT_ROUNDS, default 6; 0 skips it),
#    appended to the same results directory.
#
# Needs coturn (`apt-get install coturn`), taskset, python3. Takes ~20 minutes; keep the
# machine otherwise idle while it runs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
command -v turnserver >/dev/null || { echo "coturn (turnserver) not installed" >&2; exit 1; }
cargo build --release --locked -p turnpike -p turnpike-bench
OUT=benches/results/$(date +%F)-$(git rev-parse --short HEAD)
for ((i = 1; i <= $#; i++)); do
    if [ "${!i}" = --out ]; then j=$((i + 1)); OUT=${!j}; fi
done
mkdir -p "$OUT"
python3 benches/vs_coturn.py --out "$OUT" "$@" | tee "$OUT/vs_coturn.txt"
UCLIENT_ROUNDS=${UCLIENT_ROUNDS:-6}
if [ "$UCLIENT_ROUNDS" -gt 0 ]; then
    # One level by default: 4 uclients × 50 clients × 1 ms interval, 120-byte messages.
    LEVELS=${UCLIENT_LEVELS:-"120:4:1:50:1000"} \
        benches/uclient-cross-check.sh "$UCLIENT_ROUNDS" 2>&1 | tee "$OUT/uclient-cross-check.txt"
fi
