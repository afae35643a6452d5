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

in_srv() { ip netns exec "$srv" "$@"; }
start_infrad() {
  rm -rf "$work/infrad"
  # Not through in_srv: a backgrounded function is a subshell, and $! must be the server.
  ip netns exec "$srv" taskset -c 0 "$infrad" serve -c "$work/site.yaml" >"$work/infrad.log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do in_srv curl -sf http://127.0.0.1:8080/readyz >/dev/null 2>&1 && return; sleep 0.05; done
  echo "infrad did not start:" >&2; cat "$work/infrad.log" >&2; exit 1
}
start_kea() {
  rm -rf "$work/kea"; mkdir -p "$work/kea"
  KEA_PIDFILE_DIR=$work/kea KEA_LOCKFILE_DIR=$work/kea ip netns exec "$srv" taskset -c 0 kea-dhcp6 -c "$work/kea.json" >"$work/kea.out" 2>&1 &
  pid=$!
  sleep 1
}
stop_server() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

exchanges() { # perfdhcp on core 1; print the 4-way exchanges per second it saw; $1 names the server
  local report
  report=$(ip netns exec "$cli" taskset -c 1 perfdhcp -6 -l c0 -r "$rate" -R 100000000 -p "$secs" 2>&1 || true)
  echo "$report" >"$out/perfdhcp6-$1.last"
  if grep -q 'non unique addresses: [1-9]' <<<"$report"; then
    echo "perfdhcp saw an address given twice:" >&2; grep 'non unique' <<<"$report" >&2; exit 1
  fi
  awk '/^Rate:/ { print $2; exit }' <<<"$report"
}

# measure NAME: as bench/dhcp.sh's: the rate, and the server's CPU per exchange.
measure() {
  local t0 t1 seen
  t0=$(ticks); seen=$(exchanges "$1"); t1=$(ticks)
  eval "$1_rates+=($seen)"
  eval "$1_cpu+=($(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v r="$seen" -v s="$secs" 'BEGIN { printf "%.1f", t / hz * 1e6 / (r * s) }'))"
}

infrad_rates=() kea_rates=() infrad_cpu=() kea_cpu=()
for r in $(seq "$rounds"); do
  start_infrad
  measure infrad
  token=$(cat "$work/infrad/api-token")
  leases=$(in_srv curl -s -H "Authorization: Bearer $token" http://127.0.0.1:8080/api/v1/dhcp/leases)
  grep -q '"ip"' <<<"$leases" || { echo "no leases from infrad: $(head -c 300 <<<"$leases")" >&2; tail -5 "$work/infrad.log" >&2; exit 1; }
  total=$(grep -c '"ip"' <<<"$leases" || true)
  unique=$(grep '"ip"' <<<"$leases" | sort -u | wc -l)
  [ "$total" = "$unique" ] || { echo "an address was leased twice: $total leases, $unique addresses" >&2; exit 1; }
  stop_server
  start_kea
  measure kea
  stop_server
  echo "round $r: infrad ${infrad_rates[-1]} exchanges/s, ${infrad_cpu[-1]} µs CPU each ($total leases, all distinct, fsync'ed), Kea ${kea_rates[-1]} exchanges/s, ${kea_cpu[-1]} µs CPU each (memfile, no fsync)"
done

mi=$(median "${infrad_rates[@]}"); mk=$(median "${kea_rates[@]}")
ci=$(median "${infrad_cpu[@]}"); ck=$(median "${kea_cpu[@]}")
ratio=$(awk -v a="$mi" -v b="$mk" 'BEGIN { printf "%.2f", a / b }')
summary="dhcp6: 2^32-address pool, perfdhcp -6 -r $rate for ${secs}s x $rounds rounds, server on core 0, perfdhcp on core 1: infrad $mi Solicit-Advertise-Request-Reply exchanges/s, $ci µs CPU each (every lease fsync'ed before its Reply, group commit), Kea $(kea-dhcp6 -v) $mk, $ck µs CPU each (memfile persist, no fsync), ratio ${ratio}x"
echo "$summary" | tee "$out/dhcp6-$(date +%Y%m%d-%H%M%S).txt"
