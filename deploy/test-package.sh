#!/bin/bash
# Proves the Debian package on a clean Debian 12: debootstrap a minbase bookworm root,
# install the package's dependencies with apt and the package with `dpkg -i`, check what
# it installed (user, permissions, man page, unit), then run the unit's ExecStartPre and
# ExecStart as its User= inside that root and ask for a STUN Binding.
#
# systemd cannot run as PID 1 on the machines this was written on (the sandbox's own init
# is PID 1), so the service is not started by systemd here: the script reads ExecStart=
# and User= from the installed unit and runs that command with setpriv, as that user,
# with CAP_NET_BIND_SERVICE as the only (ambient) capability, as the unit grants it. It
# runs in a network namespace of its own with only loopback, so the default
# configuration's 0.0.0.0:3478 binds nothing outside it. The unit itself is checked with
# `systemd-analyze verify` and scored with `systemd-analyze security --offline` inside
# the root.
#
# Usage: deploy/test-package.sh [PACKAGE.deb]   (default: build it with build-deb.sh)
# Needs root, debootstrap, iproute2, python3 and a reachable Debian mirror
# (MIRROR=..., default the one in the host's apt sources). Everything it makes is under
# one directory in /tmp, removed at the end.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
began=$(date +%s)
say() { printf '[%4ss] %s\n' "$(($(date +%s) - began))" "$*"; }

deb=${1:-}
if [ -z "$deb" ]; then
    say "building the package"
    "$repo/deploy/build-deb.sh" >/dev/null
    deb=$(find "${CARGO_TARGET_DIR:-$repo/target}/debian" -name 'turnpike_*.deb' -printf '%T@ %p\n' |
        sort -n | tail -n1 | cut -d' ' -f2-)
fi
deb=$(readlink -f "$deb")
mirror=${MIRROR:-http://deb.debian.org/debian}

work=$(mktemp -d /tmp/turnpike-pkgtest.XXXXXX)
root=$work/root
ns=turnpike-pkgtest-$$
server_pid=
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || true
    for m in "$root/proc" "$root/dev"; do
        if mountpoint -q "$m" 2>/dev/null; then umount -l "$m"; fi
    done
    rm -rf "$work"
}
trap cleanup EXIT
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

say "debootstrap --variant=minbase bookworm ($mirror)"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log"; exit 1; }
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"

# The package's Depends, installed as apt would, then the package itself with dpkg -i.
# systemd and man-db come too, only to check the unit and the man page below.
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/^ *//; s/[ (|].*//; /^$/d' | tr '\n' ' ')
say "apt-get install $depends+ systemd man-db (for the checks)"
# shellcheck disable=SC2086 # one word per package
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $depends systemd man-db >"$work/apt.log" 2>&1 || { tail -n 20 "$work/apt.log"; exit 1; }
cp "$deb" "$root/tmp/turnpike.deb"
say "dpkg -i $(basename "$deb")"
in_root dpkg -i /tmp/turnpike.deb

say "checking what the package installed"
unit=$(in_root dpkg -L turnpike | grep -E '/systemd/system/turnpike\.service$')
user=$(sed -n 's/^User=//p' "$root$unit")
exec_start=$(sed -n 's/^ExecStart=//p' "$root$unit")
exec_pre=$(sed -n 's/^ExecStartPre=//p' "$root$unit")
in_root getent passwd "$user" >/dev/null || { echo "no user $user"; exit 1; }
perms=$(in_root stat -c '%U:%G %a' /etc/turnpike/turnserver.toml)
[ "$perms" = "root:$user 640" ] || { echo "turnserver.toml is $perms"; exit 1; }
grep -qx /etc/turnpike/turnserver.toml "$root/var/lib/dpkg/info/turnpike.conffiles" ||
    { echo "turnserver.toml is not a conffile"; exit 1; }
in_root man -w turnpike >/dev/null || { echo "no man page"; exit 1; }
in_root test -L /etc/systemd/system/multi-user.target.wants/turnpike.service ||
    { echo "the unit was not enabled"; exit 1; }
say "unit $unit, User=$user, config $perms, conffile, man page, enabled: ok"
in_root systemd-analyze verify "$unit"
score=$(in_root systemd-analyze security --offline=true --no-pager "$unit" | tail -n 1)
say "systemd-analyze verify: ok; security: $score"

ip netns add "$ns"
ip -n "$ns" link set lo up
# shellcheck disable=SC2054 # the commas belong to setpriv's capability lists
caps=(setpriv "--reuid=$user" "--regid=$user" --init-groups --no-new-privs
    --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service
    --bounding-set=-all,+net_bind_service)
say "ExecStartPre as $user: $exec_pre"
# shellcheck disable=SC2086 # the unit's command lines are split as systemd splits them
ip netns exec "$ns" chroot "$root" "${caps[@]}" $exec_pre
say "ExecStart as $user in a loopback-only namespace: $exec_start"
# shellcheck disable=SC2086
ip netns exec "$ns" chroot "$root" "${caps[@]}" $exec_start >"$work/server.out" 2>"$work/server.err" &
server_pid=$!

# A STUN Binding request (RFC 8489 §5) to 127.0.0.1:3478; the answer's XOR-MAPPED-ADDRESS
# must be the client's own address.
stun_probe() {
    ip netns exec "$ns" python3 - <<'PY'
import os, socket, struct, sys, time
COOKIE = 0x2112A442
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(0.5)
deadline = time.monotonic() + 15
while time.monotonic() < deadline:
    tid = os.urandom(12)
    s.sendto(struct.pack("!HHI", 0x0001, 0, COOKIE) + tid, ("127.0.0.1", 3478))
    try:
        data, _ = s.recvfrom(1500)
    except (socket.timeout, ConnectionRefusedError):
        time.sleep(0.2)
        continue
    kind, length, cookie = struct.unpack("!HHI", data[:8])
    if kind != 0x0101 or cookie != COOKIE or data[8:20] != tid:
        sys.exit(f"not a Binding success for our transaction: {data[:20].hex()}")
    at = 20
    while at + 4 <= 20 + length:
        t, n = struct.unpack("!HH", data[at:at + 4])
        if t == 0x0020:
            port = struct.unpack("!H", data[at + 6:at + 8])[0] ^ (COOKIE >> 16)
            ip = struct.unpack("!I", data[at + 8:at + 12])[0] ^ COOKIE
            mapped = (socket.inet_ntoa(struct.pack("!I", ip)), port)
            if mapped != s.getsockname():
                sys.exit(f"mapped {mapped}, expected {s.getsockname()}")
            print(f"Binding answered: XOR-MAPPED-ADDRESS {mapped[0]}:{mapped[1]}")
            sys.exit(0)
        at += 4 + ((n + 3) & ~3)
    sys.exit("Binding success without XOR-MAPPED-ADDRESS")
sys.exit("no STUN answer on 127.0.0.1:3478 within 15 s")
PY
}
if ! stun_probe; then
    cat "$work/server.out" "$work/server.err"
    exit 1
fi
# UIDs, not names: the host's /etc/passwd does not know the root's users.
server_uid=$(ps -o uid= -p "$server_pid" | tr -d ' ' || true)
[ "$server_uid" = "$(in_root id -u "$user")" ] || { echo "the server runs as UID '$server_uid'"; exit 1; }
say "the server (PID $server_pid, UID $server_uid = $user) answers STUN"

# ExecReload= is `kill -HUP $MAINPID`: the file is read again and the server goes on.
kill -HUP "$server_pid"
for _ in $(seq 50); do grep -q reloaded "$work/server.err" && break; sleep 0.1; done
grep -q reloaded "$work/server.err" || { cat "$work/server.err"; exit 1; }
stun_probe >/dev/null
say "SIGHUP: reloaded, still answering"

kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=
[ "$status" = 0 ] || { echo "exit status $status after SIGTERM"; cat "$work/server.err"; exit 1; }
say "SIGTERM: clean exit (0)"
say "PASS: $(basename "$deb") installed and served on a clean Debian 12 root"
