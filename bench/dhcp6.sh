#!/usr/bin/env bash
# DHCPv6 throughput: perfdhcp -6 against infrad and against ISC Kea's DHCPv6 server on
# the same pair of network namespaces, in the same run, alternating (as bench/dhcp.sh:
# a pool far larger than the offered rate times the duration, so no run exhausts it).
# Each exchange is Solicit, Advertise, Request, Reply: a lease committed before its
# Reply. The server runs on core 0, perfdhcp on core 1. Needs root.
#
# Usage: bench/dhcp6.sh [ROUNDS] [SECONDS] [RATE]   (needs bin/infrad, perfdhcp, kea-dhcp6)
# INFRAD=path runs another build (to compare two, alternate them round by round).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/stats.sh
rounds=${1:-3}
secs=${2:-10}
rate=${3:-40000}
out=$PWD/bench/out
mkdir -p "$out"
for tool in perfdhcp kea-dhcp6 ip taskset curl; do
  command -v "$tool" >/dev/null || { echo "bench/dhcp6.sh: $tool is missing (make deps)" >&2; exit 1; }
done
infrad=${INFRAD:-bin/infrad}
[ -x "$infrad" ] || { echo "bench/dhcp6.sh: build first (make build)" >&2; exit 1; }

# Two namespaces joined by a veth pair: the server at fd00:b::1/64, perfdhcp (a client
# on the link) at fd00:b::2/64; no duplicate address detection, so both are usable at once.
. bench/netns.sh
two_namespaces ifdb6 10.0.0.1/24 10.0.0.2/24
ip -n "$srv" addr add fd00:b::1/64 dev s0 nodad
ip -n "$cli" addr add fd00:b::2/64 dev c0 nodad

cat > "$work/site.yaml" <<YAML
domain: bench.example
data_dir: $work/infrad
api: {listen: "127.0.0.1:8080"}
dns: {listen: ["127.0.0.1:1053"]}
ntp: {listen: ["127.0.0.1:1123"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:8443"}
dhcp: {interfaces: [s0], lease_time: 1h}
subnets:
  - name: bench
    cidr: "fd00:b::/64"
    dhcp6: stateful
    ranges: [{kind: dhcp, start: "fd00:b::1:0", end: "fd00:b::ffff:ffff"}]
YAML
cat > "$work/kea.json" <<JSON
{ "Dhcp6": {
    "interfaces-config": { "interfaces": ["s0"] },
    "server-id": { "type": "LL", "persist": false },
    "lease-database": { "type": "memfile", "persist": true, "name": "$work/kea/leases6.csv", "lfc-interval": 0 },
    "preferred-lifetime": 3600, "valid-lifetime": 3600, "renew-timer": 1800, "rebind-timer": 2880,
    "subnet6": [ { "id": 1, "subnet": "fd00:b::/64", "interface": "s0", "pools": [ { "pool": "fd00:b::1:0 - fd00:b::ffff:ffff" } ] } ],
    "loggers": [ { "name": "kea-dhcp6", "output_options": [ { "output": "$work/kea/kea.log" } ], "severity": "WARN" } ]
} }
JSON

family=6 kea=kea-dhcp6
. bench/perfdhcp.sh
rounds "$rounds"

mi=$(median "${infrad_rates[@]}"); mk=$(median "${kea_rates[@]}")
ci=$(median "${infrad_cpu[@]}"); ck=$(median "${kea_cpu[@]}")
ratio=$(awk -v a="$mi" -v b="$mk" 'BEGIN { printf "%.2f", a / b }')
summary="dhcp6: 2^32-address pool, perfdhcp -6 -r $rate for ${secs}s x $rounds rounds, server on core 0, perfdhcp on core 1: infrad $mi Solicit-Advertise-Request-Reply exchanges/s, $ci µs CPU each (every lease fsync'ed before its Reply, group commit), Kea $(kea-dhcp6 -v) $mk, $ck µs CPU each (memfile persist, no fsync), ratio ${ratio}x"
echo "$summary" | tee "$out/dhcp6-$(date +%Y%m%d-%H%M%S).txt"
