#!/usr/bin/env bash
# Runs every turnpike test. Installs what the interop tests need first, if it is missing:
# coturn's client tools (turnutils_stunclient, turnutils_uclient) from Debian's packages.
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
command -v turnutils_stunclient >/dev/null 2>&1 || need_apt+=(coturn)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "test.sh: installing ${need_apt[*]}" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

cargo test --workspace --locked "$@"
