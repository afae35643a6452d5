#!/usr/bin/env bash
# DNSSEC: signed answers a second, with the DO bit, from infrad signing online, from
# infrad unsigned (the cost of signing), from a stock CoreDNS signing online with its
# dnssec plugin (file + dnssec, one ECDSA P-256 key), and from NSD serving zones
# signed beforehand by dnssec-signzone; for names that exist (the A+PTR mix of
# bench/dns.sh) and for names that do not (each asked once: a denial signed on the
# spot). Then the first transfer of the signed zone (every RRset signed) against the
# next (from the signature cache). Server on core 0, dnsperf on core 1, alternating.
#
# Usage: bench/dnssec.sh [ROUNDS] [SECONDS]   (needs bin/infrad, dnsperf, dig, nsd,
# dnssec-keygen, dnssec-signzone, taskset)
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

for tool in dnsperf dig curl nsd dnssec-keygen dnssec-signzone taskset; do
  command -v "$tool" >/dev/null || { echo "bench/dnssec.sh: $tool is missing (make deps)" >&2; exit 1; }
done
[ -x bin/infrad ] || { echo "bench/dnssec.sh: build first (make build)" >&2; exit 1; }
coredns_version=$(go list -m -f '{{.Version}}' github.com/coredns/coredns)
if [ ! -x "$out/coredns-$coredns_version" ]; then
  echo "building stock CoreDNS $coredns_version ..."
  GOBIN="$work/gobin" go install "github.com/coredns/coredns@$coredns_version"
  mv "$work/gobin/coredns" "$out/coredns-$coredns_version"
fi

# The data of bench/dns.sh: host i is h<i>.bench.example at 10.20.<i/250>.<i%250+1>.
site() { # $1: data dir, $2: dns.dnssec
  cat <<EOF
domain: bench.example
data_dir: $1
api: {listen: "127.0.0.1:18082"}
dns: {listen: ["127.0.0.1:15311"], advertise: 127.0.0.1, dnssec: $2, transfer_from: [127.0.0.0/8]}
ntp: {listen: ["127.0.0.1:11124"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:18445"}
subnets:
  - {name: bench, cidr: 10.20.0.0/16}
hosts:
EOF
  for i in $(seq 0 $((hosts - 1))); do
    printf '  - {name: h%04d, ip: 10.20.%d.%d}\n' "$i" $((i / 250)) $((i % 250 + 1))
  done
}
site "$work/signed" true > "$work/signed.yaml"
site "$work/plain" false > "$work/plain.yaml"
fwd=$work/bench.example rev=$work/20.10.in-addr.arpa
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
# Keys: one combined key a zone for CoreDNS; a KSK and a ZSK a zone for NSD's zones,
# signed beforehand (NSEC, as infrad's transfers).
corefile=$work/Corefile
: > "$corefile"
for z in bench.example 20.10.in-addr.arpa; do
  csk=$(dnssec-keygen -q -K "$work" -a ECDSAP256SHA256 -f KSK "$z")
  printf '%s:15312 {\n    bind 127.0.0.1\n    file %s/%s\n    dnssec {\n        key file %s/%s\n    }\n}\n' "$z" "$work" "$z" "$work" "$csk" >> "$corefile"
  mkdir -p "$work/nsd-keys"
  dnssec-keygen -q -K "$work/nsd-keys" -a ECDSAP256SHA256 -f KSK "$z" >/dev/null
  dnssec-keygen -q -K "$work/nsd-keys" -a ECDSAP256SHA256 "$z" >/dev/null
  dnssec-signzone -q -S -K "$work/nsd-keys" -d "$work" -o "$z" -f "$work/$z.signed" "$work/$z" >/dev/null  # -d: its dsset files too
done
cat > "$work/nsd.conf" <<EOF
server:
    ip-address: 127.0.0.1
    port: 15313
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "$work"
    zonelistfile: "$work/nsd.zonelist"
    xfrdfile: "$work/nsd.xfrd"
    pidfile: "$work/nsd.pid"
    database: ""
    hide-version: yes
    rrl-ratelimit: 0    # NSD limits NXDOMAIN answers by default; the others do not
remote-control:
    control-enable: no
zone:
    name: bench.example
    zonefile: $fwd.signed
zone:
    name: 20.10.in-addr.arpa
    zonefile: $rev.signed
EOF
{
  for i in $(seq 0 $((hosts - 1))); do
    printf 'h%04d.bench.example A\n' "$i"
    printf '%d.%d.20.10.in-addr.arpa PTR\n' $((i % 250 + 1)) $((i / 250))
  done
} | shuf --random-source=<(yes) > "$work/exist"
# Names that do not exist, more than a run asks: none is asked twice.
awk 'BEGIN { for (i = 0; i < 1500000; i++) printf "nx%07d.bench.example A\n", i }' > "$work/nx"

wait_port() {
  for _ in $(seq 200); do
    dig @127.0.0.1 -p "$1" +time=1 +tries=1 +short h0000.bench.example >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "server on port $1 did not answer" >&2; exit 1
}
wait_ready() { # infrad: ready once its keys are made (signing waits for NTP's first word)
  for _ in $(seq 200); do curl -sf http://127.0.0.1:18082/readyz >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "infrad did not get ready" >&2; exit 1
}
start() { # $1: infrad-signed, infrad-plain, coredns or nsd
  case $1 in
    infrad-signed) taskset -c 0 bin/infrad serve -c "$work/signed.yaml" >"$work/infrad.log" 2>&1 & pids+=($!); wait_ready ;;
    infrad-plain)  taskset -c 0 bin/infrad serve -c "$work/plain.yaml" >"$work/infrad.log" 2>&1 & pids+=($!); wait_ready ;;
    coredns) taskset -c 0 "$out/coredns-$coredns_version" -conf "$corefile" -quiet >"$work/coredns.log" 2>&1 & pids+=($!); wait_port 15312 ;;
    nsd)     taskset -c 0 nsd -d -c "$work/nsd.conf" >"$work/nsd.log" 2>&1 & pids+=($!); wait_port 15313 ;;
  esac
}
port() { case $1 in infrad-*) echo 15311 ;; coredns) echo 15312 ;; nsd) echo 15313 ;; esac; }
stop_last() { kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'; }

# Each signer signs: an answer and a denial with the DO bit carry signatures.
for s in infrad-signed coredns nsd; do
  start "$s"
  for q in "h0042.bench.example A" "-x 10.20.3.7" "nope.bench.example A"; do
    # shellcheck disable=SC2086 # $q is a name and type, or "-x address"
    a=$(dig @127.0.0.1 -p "$(port "$s")" +dnssec $q)
    grep -q RRSIG <<<"$a" || { echo "bench/dnssec.sh: $s did not sign $q" >&2; exit 1; }
  done
  stop_last
done

qps() { # $1: port, $2: query file; queries a second, with DO
  local report
  report=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$1" -d "$2" -l "$secs" -c 4 -q 256 -D 2>&1)
  if grep -q 'Queries lost: *[1-9]' <<<"$report" && ! grep -q 'Queries lost: *[1-9][0-9]* (0\.0' <<<"$report"; then
    echo "bench/dnssec.sh: port $1 lost queries:" >&2; grep -E 'Queries lost' <<<"$report" >&2
  fi
  awk '/Queries per second/ { printf "%d\n", $4 }' <<<"$report"
}

warm() { taskset -c 1 dnsperf -s 127.0.0.1 -p "$1" -d "$2" -l 2 -c 4 -q 256 -D >/dev/null 2>&1; }

declare -A exist nx
servers=(infrad-signed infrad-plain coredns nsd)
for r in $(seq "$rounds"); do
  line="round $r:"
  for s in "${servers[@]}"; do
    # Two seconds of the same names first, unmeasured: each server's caches fill,
    # and infrad sets the zones' signing time, which starts its answer cache anew.
    start "$s"; warm "$(port "$s")" "$work/exist"; e=$(qps "$(port "$s")" "$work/exist"); stop_last
    start "$s"; n=$(qps "$(port "$s")" "$work/nx"); stop_last
    exist[$s]+="$e "; nx[$s]+="$n "
    line+=" $s $e/$n q/s;"
  done
  echo "$line (existing/nonexistent names)"
done

# The transfer: the first signs every RRset and builds the NSEC chain; the next
# finds the signatures made.
start infrad-signed
axfr_ms() { local t0; t0=$(date +%s%N); dig @127.0.0.1 -p 15311 +tcp bench.example AXFR > "$work/axfr"; echo $((($(date +%s%N) - t0) / 1000000)); }
cold=$(axfr_ms); warm=$(axfr_ms)
rrsigs=$(grep -c 'RRSIG' "$work/axfr")
stop_last

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
exist_m=() nx_m=()
for s in "${servers[@]}"; do exist_m[${#exist_m[@]}]=$(median ${exist[$s]}); nx_m[${#nx_m[@]}]=$(median ${nx[$s]}); done
summary="dnssec: $hosts hosts, DO bit, ${secs}s x $rounds rounds, server on core 0, dnsperf on core 1; existing names (A+PTR): infrad signed ${exist_m[0]} q/s, unsigned ${exist_m[1]} q/s ($(ratio "${exist_m[0]}" "${exist_m[1]}")x), stock CoreDNS $coredns_version dnssec plugin ${exist_m[2]} q/s ($(ratio "${exist_m[0]}" "${exist_m[2]}")x), NSD presigned ${exist_m[3]} q/s ($(ratio "${exist_m[0]}" "${exist_m[3]}")x); nonexistent names, each asked once: infrad signed ${nx_m[0]} q/s, unsigned ${nx_m[1]} q/s ($(ratio "${nx_m[0]}" "${nx_m[1]}")x), CoreDNS ${nx_m[2]} q/s ($(ratio "${nx_m[0]}" "${nx_m[2]}")x), NSD ${nx_m[3]} q/s ($(ratio "${nx_m[0]}" "${nx_m[3]}")x); AXFR of the signed forward zone ($rrsigs RRSIGs): first ${cold} ms, next ${warm} ms"
echo "$summary" | tee "$out/dnssec-$(date +%Y%m%d-%H%M%S).txt"
