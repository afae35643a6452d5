#!/usr/bin/env bash
# Memory under hostile load: floods each of infrad's per-client tables (the rate limits
# of NTP, DNS, DHCP per MAC and per relay, and the API; DHCP's offers) with requests
# from more distinct clients than a table keeps, each client once: spoofed sources for
# NTP and DNS, new MACs and relay addresses for DHCP, new loopback addresses for the
# API (a tenth as many). It reports the peak RSS (VmHWM) each flood reached above idle,
# a fresh infrad for each, and the clients each table forgot to stay within its size.
# The bar: under 64 MB above idle.
# Needs root (a raw socket, network namespaces).
#
# Usage: bench/flood.sh [CLIENTS [KINDS]]   (needs bin/infrad, curl, ip; KINDS defaults
# to "ntp dns dhcp-mac dhcp-relay api")
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-1000000}
kinds=${2:-ntp dns dhcp-mac dhcp-relay api}
out=$PWD/bench/out
mkdir -p "$out"
infrad=${INFRAD:-bin/infrad}
[ -x "$infrad" ] || { echo "bench/flood.sh: build first (make build)" >&2; exit 1; }
infrad=$(realpath "$infrad")

# The server at 10.0.0.1/8 in one namespace (NTP, DNS and the API on its loopback,
# DHCP on its veth), the DHCP flood from 10.0.0.2 in another. The pool is large, so
# that every new client is offered an address: the offers are a table too.
. bench/netns.sh
two_namespaces iffl 10.0.0.1/8 10.0.0.2/8
go build -o "$work/flood" ./bench/flood

cat >"$work/site.yaml" <<YAML
domain: flood.example
data_dir: $work/infrad
api: {listen: "127.0.0.1:8080", rate_limit: 50}
dns: {listen: ["127.0.0.1:1053"], rate_limit: 100}
ntp: {listen: ["127.0.0.1:1123"], local_stratum: 10, chronyd: none, rate_limit: 16}
ca: {listen: "127.0.0.1:8443"}
dhcp: {interfaces: [s0], lease_time: 1h, rate_limit: 10, relay_rate_limit: 1000}
subnets:
  - name: lan
    cidr: 10.0.0.0/8
    ranges: [{kind: dhcp, start: 10.1.0.0, end: 10.254.255.255}]
hosts:
  - {name: ns1, ip: 10.0.0.1}
YAML

start() { # a fresh infrad for each flood, so that none inherits another's memory
  rm -rf "$work/infrad"
  ip netns exec "$srv" "$infrad" serve -c "$work/site.yaml" >"$work/infrad.log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do ip netns exec "$srv" curl -sf http://127.0.0.1:8080/readyz >/dev/null 2>&1 && break; sleep 0.05; done
  ip netns exec "$srv" curl -sf http://127.0.0.1:8080/readyz >/dev/null || { echo "infrad did not start:" >&2; cat "$work/infrad.log" >&2; exit 1; }
  sleep 2
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$pid/status"; }
evictions() { ip netns exec "$srv" curl -s http://127.0.0.1:8080/metrics | awk -v t="table=\"$1\"" 'index($0, "infrad_ratelimit_evictions_total{") == 1 && index($0, t) { print $2 }'; }
results=()
flood() { # kind, table, namespace, address, clients
  local kind=$1 table=$2 ns=$3 to=$4 n=$5 idle peak line
  [[ " $kinds " == *" $kind "* ]] || return 0
  start
  idle=$(kb VmRSS)
  echo 5 >"/proc/$pid/clear_refs" # the peak RSS starts again from now
  line=$(ip netns exec "$ns" "$work/flood" -kind "$kind" -to "$to" -count "$n" -name ns1.flood.example)
  sleep 1
  peak=$(kb VmHWM)
  kill -0 "$pid" || { echo "infrad died during the $kind flood:" >&2; tail -20 "$work/infrad.log" >&2; exit 1; }
  line+="; idle $((idle / 1024)) MB, peak $(( (peak - idle) / 1024 )) MB above it, $(evictions "$table") clients forgotten"
  if [ "$kind" = dhcp-mac ]; then
    line+=", $(ip netns exec "$srv" curl -s http://127.0.0.1:8080/metrics | awk '/^infrad_dhcp_offers_dropped_total / { print $2 }') offers dropped"
  fi
  results+=("$line")
  echo "${results[-1]}"
  [ -n "${DEBUG:-}" ] && ip netns exec "$srv" curl -s http://127.0.0.1:8080/metrics | grep -E '^go_(goroutines|memstats_(heap_inuse|heap_alloc|stack_inuse|sys))' >&2
  stop
}
flood ntp ntp "$srv" 127.0.0.1:1123 "$clients"
flood dns dns "$srv" 127.0.0.1:1053 "$clients"
flood dhcp-mac dhcp_mac "$cli" 10.0.0.1:67 "$clients"
flood dhcp-relay dhcp_relay "$cli" 10.0.0.1:67 "$clients"
flood api api "$srv" 127.0.0.1:8080 $(( clients / 10 ))

summary="flood: $clients spoofed or new clients a table ($(( clients / 10 )) for the API), a fresh infrad for each; $(IFS=';'; echo "${results[*]}")"
echo "$summary" | tee "$out/flood-$(date +%Y%m%d-%H%M%S).txt"
