# Sourced by the benchmark scripts (callgrind-per-packet.sh, uclient-cross-check.sh): the
# turnpike configuration they run on loopback, one worker, peers on 127.0.0.1 allowed.
#
#   loopback_turnpike_config FILE PORT SECRET RELAY_PORTS     (RELAY_PORTS: "A-B")
loopback_turnpike_config() {
    cat >"$1" <<CONF
[listen]
udp = ["127.0.0.1:$2"]
tcp = []
[turn]
realm = "bench"
secrets = ["$3"]
[relay]
ips = ["127.0.0.1"]
ports = "$4"
[peers]
dangerous_allow_loopback_peers = true
[quotas]
allocations_per_user = 100000
[runtime]
workers = 1
[log]
level = "warn"
CONF
}
