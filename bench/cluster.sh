#!/usr/bin/env bash
# A three-node cluster against one infrad, in the same run: DHCP 4-way exchanges a
# second (perfdhcp broadcasting on one bridge: the nodes share the clients by hash,
# and every lease is committed through Raft to a majority and fsync'ed on each node
# before its ACK), DNS queries a second to one node of each (dnsperf), and the time
# from the leader's death (SIGKILL) to the first write a survivor acknowledges.
# Every server runs on core 0 (the three nodes share the core the one infrad has
# alone), perfdhcp and dnsperf on core 1: unpinned, the clients starved, and perfdhcp's
# socket dropped a third of the replies the cluster had sent. Needs root.
#
# Usage: bench/cluster.sh [ROUNDS] [SECONDS] [RATE]   (needs bin/infrad, perfdhcp, dnsperf)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/stats.sh
rounds=${1:-3}
secs=${2:-5}
rate=${3:-12000}
out=$PWD/bench/out
mkdir -p "$out"
for tool in perfdhcp dnsperf ip curl; do
  command -v "$tool" >/dev/null || { echo "bench/cluster.sh: $tool is missing (make deps)" >&2; exit 1; }
done
infrad=${INFRAD:-bin/infrad}
[ -x "$infrad" ] || { echo "bench/cluster.sh: build first (make build)" >&2; exit 1; }
infrad=$(realpath "$infrad")

id=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
sw=ifdc-sw-$id cli=ifdc-cli-$id
nodes=(ifdc-n1-$id ifdc-n2-$id ifdc-n3-$id)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for ns in "$sw" "$cli" "${nodes[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

# A bridge in the switch namespace; the nodes at 10.0.0.1-3/8, the clients at 10.0.0.99.
ip netns add "$sw"; ip -n "$sw" link add br0 type bridge; ip -n "$sw" link set br0 up
plug() { # namespace, port, address
  ip netns add "$1"; ip -n "$1" link set lo up
  ip -n "$sw" link add "$2" type veth peer name eth0 netns "$1"
  ip -n "$sw" link set "$2" master br0 up
  ip -n "$1" addr add "$3/8" dev eth0; ip -n "$1" link set eth0 up
}
for i in 1 2 3; do plug "${nodes[$((i - 1))]}" "p$i" "10.0.0.$i"; done
plug "$cli" pc 10.0.0.99

site() { # the site file, with or without the cluster key
  cat <<YAML
domain: bench.example
data_dir: $work/one
api: {listen: "127.0.0.1:8080"}
dns: {listen: ["0.0.0.0:1053"]}
ntp: {listen: ["127.0.0.1:1123"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:8443"}
dhcp: {interfaces: [eth0], lease_time: 1h}
subnets:
  - name: bench
    cidr: 10.0.0.0/8
    ranges: [{kind: dhcp, start: 10.1.0.0, end: 10.254.255.255}]
hosts:
  - {name: node1, ip: 10.0.0.1}
  - {name: node2, ip: 10.0.0.2}
  - {name: node3, ip: 10.0.0.3}
YAML
  [ "$1" = cluster ] && cat <<YAML
cluster:
  nodes:
    - {name: node1, address: 10.0.0.1}
    - {name: node2, address: 10.0.0.2}
    - {name: node3, address: 10.0.0.3}
YAML
  true
}
site one >"$work/one.yaml"
site cluster >"$work/cluster.yaml"

ready() { # wait until the infrad in namespace $1 is ready
  for _ in $(seq 400); do ip netns exec "$1" curl -sf http://127.0.0.1:8080/readyz >/dev/null 2>&1 && return; sleep 0.05; done
  echo "infrad in $1 did not start:" >&2; cat "$work"/*.log >&2; exit 1
}
start() { # namespace, log name, infrad arguments...
  local ns=$1 name=$2; shift 2
  ip netns exec "$ns" taskset -c 0 "$infrad" "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
}
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }

start_one() { rm -rf "$work/one"; start "${nodes[0]}" one serve -c "$work/one.yaml"; ready "${nodes[0]}"; }
start_cluster() {
  rm -rf "$work"/node?
  start "${nodes[0]}" node1 serve -c "$work/cluster.yaml" --node node1 --data "$work/node1"; ready "${nodes[0]}"
  local token; token=$(cat "$work/node1/join-token")
  for i in 2 3; do start "${nodes[$((i - 1))]}" "node$i" serve -c "$work/cluster.yaml" --node "node$i" --data "$work/node$i" --join "$token"; ready "${nodes[$((i - 1))]}"; done
}

ticks() { for p in "${pids[@]}"; do awk '{ printf "%d ", $14 + $15 }' "/proc/$p/stat"; done; }
exchanges() { # perfdhcp broadcasting from the clients' namespace; print exchanges/s, and
  # each server's share of a core during the run (on stderr)
  local report t0 t1
  t0=($(ticks))
  report=$(ip netns exec "$cli" taskset -c 1 perfdhcp -4 -l eth0 -r "$rate" -R 100000000 -p "$secs" 2>&1 || true)
  t1=($(ticks))
  echo "$report" >"$out/perfdhcp-cluster-$1.last"
  for i in "${!t0[@]}"; do
    awk -v t="$(( t1[i] - t0[i] ))" -v hz="$(getconf CLK_TCK)" -v s="$secs" -v n="$1 $((i + 1))" 'BEGIN { printf "%s: %.0f%% of a core\n", n, t / hz / s * 100 }' >&2
  done
  awk '/^Rate:/ { print $2; exit }' <<<"$report"
}
queries() { # dnsperf from the clients' namespace against node 1; print queries/s
  printf 'node1.bench.example A\nnode2.bench.example A\n1.0.0.10.in-addr.arpa PTR\n' >"$work/queries"
  ip netns exec "$cli" taskset -c 1 dnsperf -s 10.0.0.1 -p 1053 -d "$work/queries" -l "$secs" -c 4 -q 256 2>&1 |
    awk '/Queries per second/ { print $4; exit }'
}
failover() { # kill the leader, and time the first write a survivor acknowledges
  local token leader t0 t1 n
  token=$(cat "$work/node1/api-token")
  leader=$(ip netns exec "${nodes[0]}" curl -s -H "Authorization: Bearer $token" http://127.0.0.1:8080/api/v1/cluster | awk -F'"' '/"leader"/ { print $4; exit }')
  n=${leader#node}
  kill -9 "${pids[$((n - 1))]}"
  t0=$(date +%s%N)
  local survivor=${nodes[$(( n % 3 ))]}
  until ip netns exec "$survivor" curl -sf -o /dev/null -H "Authorization: Bearer $token" -X POST http://127.0.0.1:8080/api/v1/hosts \
      -d "{\"name\":\"after$RANDOM\",\"ip\":\"10.0.0.$(( 10 + RANDOM % 200 ))\"}"; do sleep 0.02; done
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}

one_dhcp=() cl_dhcp=() one_dns=() cl_dns=() fail=()
for r in $(seq "$rounds"); do
  start_one
  one_dhcp+=($(exchanges one)); one_dns+=($(queries))
  stop_all
  start_cluster
  cl_dhcp+=($(exchanges cluster)); cl_dns+=($(queries))
  fail+=($(failover))
  stop_all
  echo "round $r: one infrad ${one_dhcp[-1]} exchanges/s, ${one_dns[-1]} q/s; three nodes ${cl_dhcp[-1]} exchanges/s, ${cl_dns[-1]} q/s on one node; writes resumed ${fail[-1]} ms after the leader's death"
done

od=$(median "${one_dhcp[@]}") cd=$(median "${cl_dhcp[@]}") oq=$(median "${one_dns[@]}") cq=$(median "${cl_dns[@]}") f=$(median "${fail[@]}")
summary="cluster: perfdhcp broadcast -r $rate for ${secs}s x $rounds rounds, every process on this machine's $(nproc) cores: three nodes $cd exchanges/s against one infrad $od ($(awk -v a="$cd" -v b="$od" 'BEGIN { printf "%.2f", a / b }')x); DNS on one node $cq q/s against $oq ($(awk -v a="$cq" -v b="$oq" 'BEGIN { printf "%.2f", a / b }')x); writes resumed a median $f ms after the leader's death"
echo "$summary" | tee "$out/cluster-$(date +%Y%m%d-%H%M%S).txt"
