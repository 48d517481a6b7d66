#!/usr/bin/env bash
# Soak with churn (issue 16): steady relayed flows through many allocations while a share
# of clients churns every minute, then a check that the server gave everything back.
#
#   benches/soak.sh [--allocations 5000] [--minutes 10] [--churn 10] [--rate 5]
#                   [--size 120] [--ports 12000-19999] [--vanish-ttl 60] [--churn-every 60]
#                   [--warmup 20] [--out FILE] [--no-build] [--bin DIR]
#
# 1. starts the release turnpike on 127.0.0.1 (any free port; relay ports --ports; RUST_LOG
#    warn), bounded by `timeout`, and stops it by its PID at the end;
# 2. warm-up: a 20 s (--warmup) `turnpike-bench load` with the same clients (allocations made, used
#    and deleted), then the baseline: VmRSS, open descriptors (/proc/PID/fd),
#    turnpike_relay_ports_in_use and turnpike_allocations from /metrics;
# 3. the steady flows: `turnpike-bench load --clients ALLOCATIONS --rate RATE` for MINUTES
#    (a channel to a peer socket of the bench per allocation; refreshed every 120 s);
# 4. meanwhile, every minute (--churn-every), CHURN % of ALLOCATIONS more clients come and go: half as a
#    `storm` (Allocate, then Refresh lifetime 0), half as a `hold` (Allocate,
#    CreatePermission, ChannelBind, Refresh every 10 s) that is killed (SIGKILL) after 20 s
#    (or --churn-every if shorter):
#    clients that vanish without deleting. Their REST credential expires VANISH_TTL s after
#    it is minted, and with `[turn] strict_expiry` an allocation ends with its credential, so the vanished allocations
#    expire within VANISH_TTL s (max_lifetime_secs cannot go below 600);
# 5. every 10 s a sample of RSS, descriptors, relay ports and allocations (CSV);
# 6. after the load, waits until the vanished allocations have expired, then the final
#    sample. PASS: zero loss on the steady flows, relay ports and allocations back to the
#    baseline, descriptors back to the baseline, RSS within max(2 MB, 5 %) of the baseline.
#
# Every process it starts runs under `timeout` and is stopped by its PID. Loopback only.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

ALLOCATIONS=5000 MINUTES=10 CHURN=10 RATE=5 SIZE=120 PORTS=12000-19999 VANISH_TTL=60
CHURN_EVERY=60 WARMUP=20
OUT="" BUILD=1 BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
while [ $# -gt 0 ]; do
    case "$1" in
    --allocations) ALLOCATIONS=$2; shift 2 ;;
    --minutes) MINUTES=$2; shift 2 ;;
    --churn) CHURN=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --ports) PORTS=$2; shift 2 ;;
    --vanish-ttl) VANISH_TTL=$2; shift 2 ;;
    --churn-every) CHURN_EVERY=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --bin) BIN=$2; shift 2 ;;
    *) echo "soak.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
# Bounds: the run is finite in count and time whatever the arguments.
[ "$ALLOCATIONS" -ge 2 ] && [ "$ALLOCATIONS" -le 20000 ] || { echo "--allocations 2..20000" >&2; exit 2; }
awk -v m="$MINUTES" 'BEGIN { exit !(m > 0 && m <= 120) }' || { echo "--minutes (0, 120]" >&2; exit 2; }
[ "$CHURN" -ge 0 ] && [ "$CHURN" -le 100 ] || { echo "--churn 0..100" >&2; exit 2; }
[ "$VANISH_TTL" -ge 10 ] && [ "$VANISH_TTL" -le 600 ] || { echo "--vanish-ttl 10..600" >&2; exit 2; }
[ "$CHURN_EVERY" -ge 5 ] && [ "$CHURN_EVERY" -le 600 ] || { echo "--churn-every 5..600" >&2; exit 2; }
[ "$WARMUP" -ge 1 ] && [ "$WARMUP" -le 120 ] || { echo "--warmup 1..120" >&2; exit 2; }

for tool in curl jq openssl timeout; do
    command -v "$tool" >/dev/null || { echo "soak.sh needs $tool (apt-get install curl jq openssl)" >&2; exit 1; }
done
if [ "$BUILD" = 1 ]; then
    cargo build --release --locked -p turnpike -p turnpike-bench
fi
TURNPIKE=$BIN/turnpike BENCH=$BIN/turnpike-bench
[ -x "$TURNPIKE" ] && [ -x "$BENCH" ] || { echo "no $TURNPIKE or $BENCH" >&2; exit 1; }

SECS=$(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60 }')
CHURN_N=$((ALLOCATIONS * CHURN / 100))
STORM_N=$((CHURN_N / 2))
VANISH_N=$((CHURN_N - STORM_N))
SECRET=soak-secret
TMP=$(mktemp -d /tmp/turnpike-soak.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    [ -n "${SERVER_PID:-}" ] && kill -TERM "$SERVER_PID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

cat >"$TMP/turnserver.toml" <<EOF
[listen]
udp = ["127.0.0.1:0"]
tcp = []
[turn]
realm = "soak.test"
secrets = ["$SECRET"]
# An allocation ends when its REST credential does: how the vanished clients expire.
strict_expiry = true
[relay]
ips = ["127.0.0.1"]
ports = "$PORTS"
[peers]
dangerous_allow_loopback_peers = true
[quotas]
allocations_per_user = 20000
[metrics]
listen = "127.0.0.1:0"
EOF

# The server runs at most the soak plus warm-up, expiry and slack.
SERVER_LIMIT=$((SECS + VANISH_TTL + 600))
RUST_LOG=warn timeout -s TERM "$SERVER_LIMIT" "$TURNPIKE" --config "$TMP/turnserver.toml" \
    >"$TMP/server.out" 2>"$TMP/server.err" &
SERVER_PID=$!
for _ in $(seq 100); do
    grep -q '^ready' "$TMP/server.out" 2>/dev/null && break
    sleep 0.1
done
grep -q '^ready' "$TMP/server.out" || { cat "$TMP/server.err" >&2; echo "server not ready" >&2; exit 1; }
# `timeout` is the child of this shell; the server is its child.
TP_PID=$(pgrep -P "$SERVER_PID" -x turnpike || echo "$SERVER_PID")
SERVER=$(awk '$1 == "listening" && $2 == "udp" { print $3; exit }' "$TMP/server.out")
METRICS=$(awk '$1 == "metrics" { print $2; exit }' "$TMP/server.out")
echo "soak: turnpike PID $TP_PID on $SERVER, metrics $METRICS/metrics"

metric() { # metric NAME-PREFIX: the sum of the samples of that series
    curl -s --max-time 5 "$METRICS/metrics" |
        awk -v n="$1" 'index($0, n) == 1 && $0 !~ /^#/ { s += $NF } END { printf "%d", s }'
}
sample() { # elapsed,rss_kib,fds,relay_ports,allocations
    local rss fds
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$TP_PID/status")
    fds=$(find "/proc/$TP_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
    echo "$1,$rss,$fds,$(metric turnpike_relay_ports_in_use),$(metric 'turnpike_allocations{')"
}


echo "soak: warm-up ($WARMUP s, $ALLOCATIONS clients at $RATE pkt/s)"
timeout 300 "$BENCH" load --server "$SERVER" --secret "$SECRET" --user steady \
    --clients "$ALLOCATIONS" --rate "$RATE" --size "$SIZE" --duration "$WARMUP" --json -q \
    >"$TMP/warmup.json"
sleep 3
BASE=$(sample 0)
echo "soak: baseline elapsed,rss_kib,fds,relay_ports,allocations = $BASE"

echo "soak: steady flows for $SECS s, churn $CHURN_N clients every $CHURN_EVERY s ($STORM_N storm, $VANISH_N vanish)"
timeout $((SECS + 600)) "$BENCH" load --server "$SERVER" --secret "$SECRET" --user steady \
    --clients "$ALLOCATIONS" --rate "$RATE" --size "$SIZE" --duration "$SECS" \
    --drain-ms 2000 --json -q >"$TMP/steady.json" 2>"$TMP/steady.err" &
LOAD_PID=$!
PIDS+=("$LOAD_PID")
echo "elapsed_s,rss_kib,fds,relay_ports,allocations" >"$TMP/samples.csv"
echo "$BASE" >>"$TMP/samples.csv"

# Wait for the steady allocations to be made before the clock of the churn starts.
for _ in $(seq 600); do
    [ "$(metric 'turnpike_allocations{')" -ge "$ALLOCATIONS" ] && break
    sleep 0.5
done
# The load sends for SECS from about now (its setup is done).
START=$(date +%s)
# A vanishing client lives this long before it vanishes.
HOLD_LIFE=$((CHURN_EVERY < 20 ? CHURN_EVERY : 20))
STORMS_OK=0 STORMS_FAILED=0 VANISHED=0 CHURN_ROUNDS=0
next_sample=$(($(date +%s) + 10))
next_churn=$(date +%s)
while kill -0 "$LOAD_PID" 2>/dev/null; do
    now=$(date +%s)
    if [ "$now" -ge "$next_sample" ]; then
        sample $((now - START)) >>"$TMP/samples.csv"
        next_sample=$((next_sample + 10))
    fi
    # No round starts later than a vanishing client's life before the end.
    if [ "$CHURN_N" -gt 0 ] && [ "$now" -ge "$next_churn" ] && [ $((now - START)) -le $((SECS - HOLD_LIFE)) ]; then
        next_churn=$((next_churn + CHURN_EVERY))
        CHURN_ROUNDS=$((CHURN_ROUNDS + 1))
        # Vanishing clients: a REST credential that expires VANISH_TTL s from now.
        exp=$((now + VANISH_TTL))
        user="$exp:vanish$CHURN_ROUNDS"
        pass=$(printf %s "$user" | openssl dgst -binary -sha1 -hmac "$SECRET" | base64)
        if [ "$VANISH_N" -gt 0 ]; then
            (timeout -s KILL "$HOLD_LIFE" "$BENCH" hold --server "$SERVER" --user "$user" --password "$pass" \
                --clients "$VANISH_N" --hold-secs 3600 --refresh-secs 10 \
                >"$TMP/hold-$CHURN_ROUNDS.out" 2>&1 || true) 2>/dev/null &
            VANISHED=$((VANISHED + VANISH_N))
        fi
        if [ "$STORM_N" -gt 0 ]; then
            if timeout 60 "$BENCH" storm --server "$SERVER" --secret "$SECRET" --user churn \
                --allocations "$STORM_N" --concurrency 32 --json -q >"$TMP/storm-$CHURN_ROUNDS.json"; then
                ok=$(jq '.deleted' "$TMP/storm-$CHURN_ROUNDS.json" 2>/dev/null || echo 0)
                STORMS_OK=$((STORMS_OK + ok))
            else
                STORMS_FAILED=$((STORMS_FAILED + 1))
            fi
        fi
    fi
    sleep 1
done
wait "$LOAD_PID" || echo "soak: the steady load exited with $?" >&2
END_LOAD=$(date +%s)
sample $((END_LOAD - START)) >>"$TMP/samples.csv"

# The last vanished allocations end with their credential: VANISH_TTL after the last
# churn round (plus the sweep). Wait for it, bounded.
echo "soak: load over; waiting for the vanished clients' allocations to expire"
deadline=$((END_LOAD + VANISH_TTL + 90))
while [ "$(date +%s)" -lt "$deadline" ]; do
    [ "$(metric 'turnpike_allocations{')" -le "$(echo "$BASE" | cut -d, -f5)" ] && break
    sleep 2
done
sleep 3
FINAL=$(sample $(($(date +%s) - START)))
echo "$FINAL" >>"$TMP/samples.csv"

loss=$(jq -r '.loss_pct' "$TMP/steady.json")
sent=$(jq -r '.sent' "$TMP/steady.json")
lost=$(jq -r '.lost' "$TMP/steady.json")
delivered=$(jq -r '.delivered' "$TMP/steady.json")
senderr=$(jq -r '.send_errors' "$TMP/steady.json")
refreshes=$(jq -r '.refreshes' "$TMP/steady.json")
IFS=, read -r _ b_rss b_fds b_ports b_allocs <<<"$BASE"
IFS=, read -r _ f_rss f_fds f_ports f_allocs <<<"$FINAL"
peak_rss=$(tail -n +2 "$TMP/samples.csv" | cut -d, -f2 | sort -n | tail -1)
peak_allocs=$(tail -n +2 "$TMP/samples.csv" | cut -d, -f5 | sort -n | tail -1)
rss_slack=$((b_rss / 20 > 2048 ? b_rss / 20 : 2048))
verdict=PASS
reasons=()
[ "$lost" = 0 ] || { verdict=FAIL; reasons+=("lost $lost packets"); }
[ "$f_ports" = "$b_ports" ] || { verdict=FAIL; reasons+=("relay ports $f_ports != $b_ports"); }
[ "$f_allocs" = "$b_allocs" ] || { verdict=FAIL; reasons+=("allocations $f_allocs != $b_allocs"); }
[ "$f_fds" = "$b_fds" ] || { verdict=FAIL; reasons+=("descriptors $f_fds != $b_fds"); }
[ $((f_rss - b_rss)) -le "$rss_slack" ] || { verdict=FAIL; reasons+=("RSS +$((f_rss - b_rss)) KiB > $rss_slack KiB"); }

{
    echo "## soak: $ALLOCATIONS allocations x $RATE pkt/s x $SIZE B for $MINUTES min, churn $CHURN % every $CHURN_EVERY s"
    echo
    echo "turnpike $(git rev-parse --short HEAD) ($(basename "$BIN") build), $(date -u +%FT%TZ), $(nproc) cores, $(uname -r)"
    echo
    echo "| | baseline | peak | final |"
    echo "|---|---|---|---|"
    echo "| VmRSS KiB | $b_rss | $peak_rss | $f_rss |"
    echo "| open descriptors | $b_fds | | $f_fds |"
    echo "| relay ports in use | $b_ports | | $f_ports |"
    echo "| allocations | $b_allocs | $peak_allocs | $f_allocs |"
    echo
    echo "steady flows: sent $sent, delivered $delivered, lost $lost ($loss %), send errors $senderr, refresh rounds $refreshes"
    echo "churn: $CHURN_ROUNDS rounds; storm allocations deleted $STORMS_OK (storm runs failed: $STORMS_FAILED); vanished clients $VANISHED (credential TTL $VANISH_TTL s)"
    echo
    echo "verdict: $verdict ${reasons[*]:-}"
    echo
    echo "samples (every 10 s): elapsed_s,rss_kib,fds,relay_ports,allocations"
    echo '```'
    cat "$TMP/samples.csv"
    echo '```'
} | tee "${OUT:-/dev/null}"
[ "$verdict" = PASS ]
