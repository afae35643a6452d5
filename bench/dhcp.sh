#!/usr/bin/env bash
# DHCP throughput: perfdhcp against infrad and against ISC Kea on the same pair of
# network namespaces, in the same run, alternating (ISC's method: a /8 pool, and an
# offered rate times duration far below the pool's size, so no run exhausts it).
# The server runs on core 0, perfdhcp on core 1. Needs root.
#
# Usage: bench/dhcp.sh [ROUNDS] [SECONDS] [RATE]   (needs bin/infrad, perfdhcp, kea-dhcp4)
# INFRAD=path runs another build (to compare two, alternate them round by round).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/stats.sh
rounds=${1:-3}
secs=${2:-10}
rate=${3:-40000}
out=$PWD/bench/out
mkdir -p "$out"
for tool in perfdhcp kea-dhcp4 ip taskset curl; do
  command -v "$tool" >/dev/null || { echo "bench/dhcp.sh: $tool is missing (make deps)" >&2; exit 1; }
done
infrad=${INFRAD:-bin/infrad}
[ -x "$infrad" ] || { echo "bench/dhcp.sh: build first (make build)" >&2; exit 1; }

# Two namespaces joined by a veth pair: the server at 10.0.0.1/8, perfdhcp (a relay to
# the server) at 10.0.0.2/8.
. bench/netns.sh
two_namespaces ifdb 10.0.0.1/8 10.0.0.2/8

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
    cidr: 10.0.0.0/8
    ranges: [{kind: dhcp, start: 10.1.0.0, end: 10.254.255.255}]
YAML
cat > "$work/kea.json" <<JSON
{ "Dhcp4": {
    "interfaces-config": { "interfaces": ["s0"], "dhcp-socket-type": "udp" },
    "lease-database": { "type": "memfile", "persist": true, "name": "$work/kea/leases.csv", "lfc-interval": 0 },
    "valid-lifetime": 3600,
    "subnet4": [ { "id": 1, "subnet": "10.0.0.0/8", "pools": [ { "pool": "10.1.0.0 - 10.254.255.255" } ] } ],
    "loggers": [ { "name": "kea-dhcp4", "output_options": [ { "output": "$work/kea/kea.log" } ], "severity": "WARN" } ]
} }
JSON

family=4 kea=kea-dhcp4
. bench/perfdhcp.sh
rounds "$rounds"

mi=$(median "${infrad_rates[@]}"); mk=$(median "${kea_rates[@]}")
ci=$(median "${infrad_cpu[@]}"); ck=$(median "${kea_cpu[@]}")
ratio=$(awk -v a="$mi" -v b="$mk" 'BEGIN { printf "%.2f", a / b }')
summary="dhcp: /8 pool, perfdhcp -r $rate for ${secs}s x $rounds rounds, server on core 0, perfdhcp on core 1: infrad $mi 4-way exchanges/s, $ci µs CPU each (every lease fsync'ed before its ACK, group commit), Kea $(kea-dhcp4 -v) $mk, $ck µs CPU each (memfile persist, no fsync), ratio ${ratio}x"
echo "$summary" | tee "$out/dhcp-$(date +%Y%m%d-%H%M%S).txt"
