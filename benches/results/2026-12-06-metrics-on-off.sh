#!/usr/bin/env bash
# Relay throughput with metrics on (scraped every 1 s) vs `[metrics] enabled = false`,
# alternated A B A B in one session. Server pinned to CPU 1, generator and scraper to CPU 0.
# Each round: a loss-free-rate search (100 clients, 120 B ChannelData, 2 s trials, at most
# 8 trials, up to 450 k pkt/s) and a fixed overload (400 k pkt/s asked for 3 s: delivered pkt/s).
# Usage: ROUNDS=4 benches/results/2026-12-06-metrics-on-off.sh OUTDIR
set -euo pipefail
cd "$(dirname "$0")/../.."
. benches/loopback-config.sh
OUT=${1:?out dir}
ROUNDS=${ROUNDS:-4}
MAX_PPS=${MAX_PPS:-450000}   # top of the loss-free search
RATE=${RATE:-4000}           # per client (100 clients) for the fixed overload
BIN=${BIN:-target/release}
PORT=34790 METRICS_PORT=34791 SECRET=benchsecret
mkdir -p "$OUT"
: >"$OUT/commands.txt"
log() { echo "$*" >>"$OUT/commands.txt"; }

one() { # one MODE ROUND
  local mode=$1 r=$2 cfg="$OUT/turnpike-$1.toml" spid="" tpid
  loopback_turnpike_config "$cfg" "$PORT" "$SECRET" "40000-49999"
  printf '[admin]\nenabled = false\n' >>"$cfg"
  if [ "$mode" = on ]; then
    printf '[metrics]\nlisten = "127.0.0.1:%s"\n' "$METRICS_PORT" >>"$cfg"
  else
    printf '[metrics]\nenabled = false\n' >>"$cfg"
  fi
  log "taskset -c 1 $BIN/turnpike run --config $cfg"
  taskset -c 1 "$BIN/turnpike" run --config "$cfg" >"$OUT/server-$mode-r$r.out" 2>&1 &
  tpid=$!
  sleep 0.2
  for _ in $(seq 100); do grep -q '^ready' "$OUT/server-$mode-r$r.out" && break; sleep 0.1; done
  grep -q '^ready' "$OUT/server-$mode-r$r.out" || { kill "$tpid"; echo "server not ready" >&2; exit 1; }
  if [ "$mode" = on ]; then
    log "scraper: while :; do curl -s --max-time 1 http://127.0.0.1:$METRICS_PORT/metrics >/dev/null && echo ok; sleep 1; done (taskset -c 0)"
    ( while :; do
        curl -s --max-time 1 -o /dev/null -w '%{http_code} %{size_download}\n' \
          "http://127.0.0.1:$METRICS_PORT/metrics" || echo fail
        sleep 1
      done ) >"$OUT/scrapes-r$r.txt" 2>&1 &
    spid=$!
    taskset -pc 0 "$spid" >/dev/null
  fi
  local common="--server 127.0.0.1:$PORT --secret $SECRET --clients 100 --size 120 --json --quiet"
  log "timeout 120 taskset -c 0 $BIN/turnpike-bench search $common --trial-secs 2.0 --min-pps 5000 --max-pps $MAX_PPS --max-trials 8"
  timeout 120 taskset -c 0 "$BIN/turnpike-bench" search $common --trial-secs 2.0 \
    --min-pps 5000 --max-pps "$MAX_PPS" --max-trials 8 >"$OUT/search-$mode-r$r.json"
  log "timeout 60 taskset -c 0 $BIN/turnpike-bench load $common --rate $RATE --duration 3"
  timeout 60 taskset -c 0 "$BIN/turnpike-bench" load $common --rate "$RATE" --duration 3 \
    >"$OUT/load-$mode-r$r.json"
  if [ -n "$spid" ]; then kill "$spid"; wait "$spid" 2>/dev/null || true; fi
  kill "$tpid"; wait "$tpid" 2>/dev/null || true
}

for r in $(seq "$ROUNDS"); do
  one on "$r"
  one off "$r"
done
