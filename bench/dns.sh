#!/usr/bin/env bash
# DNS throughput: dnsperf against infrad, a stock CoreDNS serving the same 5,000-host
# forward and reverse zones with its `file` plugin, and NSD serving the same zone files,
# on this machine, in the same run, alternating. The server runs on core 0 (NSD with one
# server process), dnsperf on core 1.
#
# Usage: bench/dns.sh [ROUNDS] [SECONDS]   (needs bin/infrad, dnsperf, dig, nsd, taskset)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/stats.sh
rounds=${1:-3}
secs=${2:-10}
hosts=5000
out=$PWD/bench/out
work=$(mktemp -d)
mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

for tool in dnsperf dig nsd taskset; do
  command -v "$tool" >/dev/null || { echo "bench/dns.sh: $tool is missing (make deps)" >&2; exit 1; }
done
[ -x bin/infrad ] || { echo "bench/dns.sh: build first (make build)" >&2; exit 1; }

# Stock CoreDNS, the version infrad embeds, built from its own module.
coredns_version=$(go list -m -f '{{.Version}}' github.com/coredns/coredns)
if [ ! -x "$out/coredns-$coredns_version" ]; then
  echo "building stock CoreDNS $coredns_version ..."
  GOBIN="$work/gobin" go install "github.com/coredns/coredns@$coredns_version"
  mv "$work/gobin/coredns" "$out/coredns-$coredns_version"
fi

# The same data for both: host i is h<i>.bench.example at 10.20.<i/250>.<i%250+1>.
site=$work/site.yaml fwd=$work/db.fwd rev=$work/db.rev queries=$work/queries
{
  cat <<EOF
domain: bench.example
data_dir: $work/data
api: {listen: "127.0.0.1:18080"}
dns: {listen: ["127.0.0.1:15301"], advertise: 127.0.0.1}
ntp: {listen: ["127.0.0.1:11123"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:18443"}
subnets:
  - {name: bench, cidr: 10.20.0.0/16}
hosts:
EOF
  for i in $(seq 0 $((hosts - 1))); do
    printf '  - {name: h%04d, ip: 10.20.%d.%d}\n' "$i" $((i / 250)) $((i % 250 + 1))
  done
} > "$site"
soa='300 IN SOA ns.bench.example. hostmaster.bench.example. 1 300 60 1209600 60'
{
  echo "\$ORIGIN bench.example."
  echo "@ $soa"
  echo "@ 300 IN NS ns.bench.example."
  echo "ns 300 IN A 127.0.0.1"
  for i in $(seq 0 $((hosts - 1))); do
    printf 'h%04d 300 IN A 10.20.%d.%d\n' "$i" $((i / 250)) $((i % 250 + 1))
  done
} > "$fwd"
{
  echo "\$ORIGIN 20.10.in-addr.arpa."
  echo "@ $soa"
  echo "@ 300 IN NS ns.bench.example."
  for i in $(seq 0 $((hosts - 1))); do
    printf '%d.%d 300 IN PTR h%04d.bench.example.\n' $((i % 250 + 1)) $((i / 250)) "$i"
  done
} > "$rev"
cat > "$work/nsd.conf" <<EOF
server:
    ip-address: 127.0.0.1
    port: 15303
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "$work"
    zonelistfile: "$work/nsd.zonelist"
    xfrdfile: "$work/nsd.xfrd"
    pidfile: "$work/nsd.pid"
    database: ""
    hide-version: yes
remote-control:
    control-enable: no
zone:
    name: bench.example
    zonefile: $fwd
zone:
    name: 20.10.in-addr.arpa
    zonefile: $rev
EOF
cat > "$work/Corefile" <<EOF
bench.example:15302 {
    bind 127.0.0.1
    file $fwd
}
20.10.in-addr.arpa:15302 {
    bind 127.0.0.1
    file $rev
}
EOF
{
  for i in $(seq 0 $((hosts - 1))); do
    printf 'h%04d.bench.example A\n' "$i"
    printf '%d.%d.20.10.in-addr.arpa PTR\n' $((i % 250 + 1)) $((i / 250))
  done
} | shuf --random-source=<(yes) > "$queries"

wait_port() { # wait until the server on port $1 answers
  for _ in $(seq 200); do
    dig @127.0.0.1 -p "$1" +time=1 +tries=1 +short h0000.bench.example >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "server on port $1 did not answer" >&2; exit 1
}

start_infrad() {
  taskset -c 0 bin/infrad serve -c "$site" >"$work/infrad.log" 2>&1 &
  pids+=($!); wait_port 15301
}
start_coredns() {
  taskset -c 0 "$out/coredns-$coredns_version" -conf "$work/Corefile" -quiet >"$work/coredns.log" 2>&1 &
  pids+=($!); wait_port 15302
}
start_nsd() {
  taskset -c 0 nsd -d -c "$work/nsd.conf" >"$work/nsd.log" 2>&1 &
  pids+=($!); wait_port 15303
}
stop_last() { kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'; }

# Same answers: every one of a sample of names, from all three.
start_infrad; start_coredns; start_nsd
for q in h0000.bench.example h2499.bench.example h4999.bench.example \
         "-x 10.20.0.1" "-x 10.20.9.250" "-x 10.20.19.250"; do
  # shellcheck disable=SC2086 # $q is a name or "-x address"
  a=$(dig @127.0.0.1 -p 15301 +short $q)
  for port in 15302 15303; do
    # shellcheck disable=SC2086
    b=$(dig @127.0.0.1 -p "$port" +short $q)
    [ "$a" = "$b" ] && [ -n "$a" ] || { echo "answers differ for $q: infrad '$a', port $port '$b'" >&2; exit 1; }
  done
done
stop_last; stop_last; stop_last

qps() { # run dnsperf on core 1 against port $1; print queries per second
  local report
  report=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$1" -d "$queries" -l "$secs" -c 4 -q 256 2>&1)
  # Every answer must be NOERROR: a fast wrong answer is no answer.
  if ! grep -q 'Response codes: *NOERROR [0-9]* (100.00%)' <<<"$report"; then
    echo "bench/dns.sh: not every answer from port $1 was NOERROR:" >&2
    grep -E 'Response codes|Queries lost' <<<"$report" >&2
    exit 1
  fi
  awk '/Queries per second/ { print $4 }' <<<"$report"
}

infrad_qps=() coredns_qps=() nsd_qps=()
for r in $(seq "$rounds"); do
  start_infrad;  infrad_qps+=($(qps 15301));  stop_last
  start_coredns; coredns_qps+=($(qps 15302)); stop_last
  start_nsd;     nsd_qps+=($(qps 15303));     stop_last
  echo "round $r: infrad ${infrad_qps[-1]} q/s, stock CoreDNS file ${coredns_qps[-1]} q/s, NSD ${nsd_qps[-1]} q/s"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mi=$(median "${infrad_qps[@]}"); mc=$(median "${coredns_qps[@]}"); mn=$(median "${nsd_qps[@]}")
nsd_version=$(nsd -v 2>&1 | awk 'NR == 1 { print $3 }')
summary="dns: $hosts hosts, A+PTR mix, ${secs}s x $rounds rounds, server on core 0, dnsperf on core 1: infrad $mi q/s; stock CoreDNS $coredns_version file $mc q/s, ratio $(ratio "$mi" "$mc")x; NSD $nsd_version $mn q/s, ratio $(ratio "$mi" "$mn")x"
echo "$summary" | tee "$out/dns-$(date +%Y%m%d-%H%M%S).txt"
