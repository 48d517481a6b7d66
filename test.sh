#!/usr/bin/env bash
# Runs every turnpike test. Installs what the interop tests need first, if it is missing:
# coturn's client tools (turnutils_stunclient, turnutils_uclient, turnutils_peer), iproute2 and
# nftables (the network namespace test), Python 3, Chromium and Node.js/npm from Debian's packages,
# playwright-core (to drive that Chromium) from npm, and aioice (a Python TURN client) from PyPI.
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
command -v turnutils_stunclient >/dev/null 2>&1 || need_apt+=(coturn)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# turn_nat_hairpin.rs builds network namespaces with ip and nft.
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
# metrics.rs checks the /metrics output with promtool.
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
# benches/soak.sh (its 30 s version runs in CI) reads the metrics with curl and jq.
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# The in-kernel fast path (crates/offload, feature ebpf) is C compiled by clang against
# libbpf's headers.
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
[ -f /usr/include/bpf/bpf_helpers.h ] || need_apt+=(libbpf-dev)
# playwright-core (below) comes from npm.
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "test.sh: installing ${need_apt[*]}" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# playwright-core only drives the Debian Chromium above; it downloads no browser.
interop=crates/turnpike/tests/interop
if [ ! -d "$interop/node_modules/playwright-core" ]; then
  (cd "$interop" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

# turn_nat_hairpin.rs drives aioice, a Python TURN client, in its namespaces. Debian's own
# python3 refuses pip installs outside a venv unless told (PEP 668).
if ! python3 -c 'import aioice' >/dev/null 2>&1; then
  echo "test.sh: installing aioice" >&2
  python3 -m pip install -q aioice==0.13.0 2>/dev/null ||
    python3 -m pip install -q --break-system-packages aioice==0.13.0
fi

# admin_api.rs checks crates/admin/openapi.yaml against the running server with
# schemathesis.
if ! python3 -c 'import schemathesis' >/dev/null 2>&1; then
  echo "test.sh: installing schemathesis" >&2
  python3 -m pip install -q schemathesis==4.32.5 2>/dev/null ||
    python3 -m pip install -q --break-system-packages schemathesis==4.32.5
fi

# The competitor codecs of benches/ are not built here: .ci/run builds and tests them apart.
# The fast path's feature is on, so its namespace tests (turn_offload.rs,
# turn_offload_browser.rs, offload's netns.rs) run too.
cargo test --workspace --exclude turnpike-benches --locked \
  --features turnpike/ebpf,turnpike-offload/ebpf "$@"
