#!/usr/bin/env bash
# The offload benchmark (issue 18): turnpike's in-kernel ChannelData fast path (TC) against
# turnpike in user space, Debian's coturn 4.6.1 and coturn 4.17.1 built from source, in
# network namespaces of its own (see benches/offload.py for the topology and measures).
#
#   sudo benches/offload.sh [--rounds 3] [--out FILE.json] [offload.py options]
#
# Builds the release turnpike with the `ebpf` feature (clang + libbpf-dev) and
# turnpike-bench, then runs benches/offload.py. coturn 4.17.1 is expected at
# /tmp/coturn-4.17.1/bin/turnserver (--coturn-new PATH; left out when missing; how it was
# built is in benches/results/2026-12-07-offload.md). Needs root, iproute2, taskset,
# python3, Debian's coturn. Not part of any test run; about 20–30 minutes with 3 rounds.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
command -v turnserver >/dev/null || { echo "coturn (turnserver) not installed" >&2; exit 1; }
cargo build --release --locked -p turnpike --features ebpf -p turnpike-bench
OUT=benches/results/$(date +%F)-offload.json
for ((i = 1; i <= $#; i++)); do
    if [ "${!i}" = --out ]; then j=$((i + 1)); OUT=${!j}; fi
done
args=("$@")
[[ " $* " == *" --out "* ]] || args+=(--out "$OUT")
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
python3 benches/offload.py --turnpike "$BIN/turnpike" --bench "$BIN/turnpike-bench" "${args[@]}"
