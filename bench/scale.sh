#!/usr/bin/env bash
# Cost against the site's size: a small site (1,000 hosts, 1,000 leases) and a large one
# (100,000 hosts, 1,000,000 leases), each made by bench/gensite (the site file, and a
# store filled through infrad's own write path), then for each:
#   validate   `infrad validate` of the site file (median of 3)
#   start      exec to the first 200 from /readyz: the first start on the data (Raft
#              bootstrapped on the store), then a second, and the RSS once ready
#   API write  a host created through the API (median of 20, curl's total time)
#   lease      a lease committed through DHCP: perfdhcp's mean REQUEST-ACK delay at
#              100 exchanges/s
#   DNS        dnsperf's queries/s with DHCP idle, and while perfdhcp offers 20,000
#              exchanges/s (the bar: at least 0.8x)
# and the ratio of the large site's figure to the small one's (the bar: at most 2x for
# the API write and the lease). infrad runs on core 0, the clients on core 1 (dnsperf
# and perfdhcp share it while they run together). Needs root.
#
# Usage: bench/scale.sh [HOSTS LEASES]   (the large site; needs bin/infrad, perfdhcp, dnsperf, curl)
set -euo pipefail
cd "$(dirname "$0")/.."
big_hosts=${1:-100000}
big_leases=${2:-1000000}
out=$PWD/bench/out
mkdir -p "$out"
for tool in perfdhcp dnsperf curl ip taskset; do
  command -v "$tool" >/dev/null || { echo "bench/scale.sh: $tool is missing (make deps)" >&2; exit 1; }
done
infrad=$(realpath "${INFRAD:-bin/infrad}")
[ -x "$infrad" ] || { echo "bench/scale.sh: build first (make build)" >&2; exit 1; }

# The server's interface at 10.255.255.254/8, perfdhcp (a relay) at 10.255.255.253/8.
. bench/netns.sh
two_namespaces ifsc 10.255.255.254/8 10.255.255.253/8
go build -o "$work/gensite" ./bench/gensite

in_srv() { ip netns exec "$srv" "$@"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
now_us() { echo $(( $(date +%s%N) / 1000 )); }

start() { # site directory; sets pid, and ready to the ms from exec to ready
  local t0 t1
  t0=$(now_us)
  ip netns exec "$srv" taskset -c 0 "$infrad" serve -c "$1/site.yaml" >>"$1/infrad.log" 2>&1 &
  pid=$!
  until in_srv curl -sf -o /dev/null http://127.0.0.1:8080/readyz; do
    kill -0 "$pid" 2>/dev/null || { echo "infrad exited:" >&2; tail -20 "$1/infrad.log" >&2; exit 1; }
    sleep 0.005
  done
  t1=$(now_us)
  ready=$(( (t1 - t0) / 1000 ))
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

measure() { # hosts leases; sets figures to one line of figures, named
  local hosts=$1 leases=$2 dir=$work/site-$1 gen validate first second rss write lease idle busy token
  gen=$("$work/gensite" -dir "$dir" -hosts "$hosts" -leases "$leases")
  echo "  made: $gen" >&2
  validate=$(for _ in 1 2 3; do
    t0=$(now_us); "$infrad" validate -c "$dir/site.yaml" >/dev/null 2>&1; t1=$(now_us); echo $(( (t1 - t0) / 1000 ))
  done | median)
  start "$dir"; first=$ready; stop
  start "$dir"; second=$ready
  rss=$(awk '/^VmRSS:/ { printf "%d", $2 / 1024 }' "/proc/$pid/status")
  token=$(cat "$dir/data/api-token")
  write=$(for i in $(seq 20); do
    in_srv curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $token" -X POST http://127.0.0.1:8080/api/v1/hosts \
      -d "{\"name\":\"new$i\",\"ip\":\"10.127.0.$i\"}"
  done | median | awk '{ printf "%.2f", $1 * 1000 }')
  ip netns exec "$cli" taskset -c 1 perfdhcp -4 -l c0 -r 100 -p 4 10.255.255.254 >"$work/slow" 2>&1 || true
  lease=$(awk '/REQUEST-ACK/ { on = 1 } on && /avg delay/ { print $3; exit }' "$work/slow")
  printf 'h0000001.scale.example A\nh0000002.scale.example A\n1.0.0.10.in-addr.arpa PTR\n2.0.0.10.in-addr.arpa PTR\n' >"$work/queries"
  idle=$(in_srv taskset -c 1 dnsperf -s 127.0.0.1 -p 1053 -d "$work/queries" -l 5 -c 4 -q 256 2>&1 | awk '/Queries per second/ { printf "%d", $4 }')
  ip netns exec "$cli" taskset -c 1 perfdhcp -4 -l c0 -r 20000 -R 100000000 -p 6 10.255.255.254 >"$work/storm" 2>&1 &
  local storm=$!
  sleep 0.5
  busy=$(in_srv taskset -c 1 dnsperf -s 127.0.0.1 -p 1053 -d "$work/queries" -l 5 -c 4 -q 256 2>&1 | awk '/Queries per second/ { printf "%d", $4 }')
  wait "$storm" || true
  stop
  figures="validate $validate start $first then $second rss $rss write $write lease $lease dns_idle $idle dns_busy $busy"
}

field() { awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' <<<"$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "small site: 1,000 hosts, 1,000 leases" >&2
measure 1000 1000; small=$figures
echo "  $small" >&2
echo "large site: $big_hosts hosts, $big_leases leases" >&2
measure "$big_hosts" "$big_leases"; large=$figures
echo "  $large" >&2

report="scale: 1,000 hosts and 1,000 leases against $big_hosts hosts and $big_leases leases (infrad on core 0):"
for k in validate start then rss write lease; do
  s=$(field "$k" "$small") l=$(field "$k" "$large")
  case $k in
    validate) name="infrad validate (ms)";; start) name="first start to ready (ms)";; then) name="second start to ready (ms)";;
    rss) name="RSS when ready (MB)";; write) name="an API host write (ms)";; lease) name="a lease's REQUEST-ACK (ms)";;
  esac
  report+=" $name $s / $l ($(ratio "$l" "$s")x);"
done
for site in small large; do
  line=${!site}
  report+=" DNS q/s on the $site site, DHCP idle $(field dns_idle "$line"), under a DHCP storm $(field dns_busy "$line") ($(ratio "$(field dns_busy "$line")" "$(field dns_idle "$line")")x);"
done
echo "$report" | tee "$out/scale-$(date +%Y%m%d-%H%M%S).txt"
