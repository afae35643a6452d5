#!/usr/bin/env bash
# TFTP: what a room of PXE machines fetching iPXE costs, infrad against dnsmasq's TFTP
# server on the same pair of network namespaces, in the same run, alternating. Four
# curl clients at once (infrad serves at most four transfers to one client address)
# fetch Debian's ipxe.efi (about 850 KB) with a 1468-byte block, as PXE firmware does,
# over and over. The server runs on core 0, the clients on core 1. Needs root.
#
# Usage: bench/tftp.sh [ROUNDS] [FETCHES]   (needs bin/infrad, dnsmasq, curl, Debian's ipxe)
# INFRAD=path runs another build.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/stats.sh
rounds=${1:-3}
fetches=${2:-100}
out=$PWD/bench/out
mkdir -p "$out"
for tool in dnsmasq curl ip taskset; do
  command -v "$tool" >/dev/null || { echo "bench/tftp.sh: $tool is missing (make deps)" >&2; exit 1; }
done
[ -f /usr/lib/ipxe/ipxe.efi ] || { echo "bench/tftp.sh: /usr/lib/ipxe/ipxe.efi is missing (make deps)" >&2; exit 1; }
infrad=${INFRAD:-bin/infrad}
[ -x "$infrad" ] || { echo "bench/tftp.sh: build first (make build)" >&2; exit 1; }

. bench/netns.sh
two_namespaces iftb 10.0.0.1/24 10.0.0.2/24
mkdir -p "$work/root"
cp /usr/lib/ipxe/ipxe.efi "$work/root/ipxe.efi"
size=$(stat -c %s "$work/root/ipxe.efi")

cat > "$work/site.yaml" <<YAML
domain: bench.example
data_dir: $work/infrad
api: {listen: "127.0.0.1:8080"}
dns: {listen: ["127.0.0.1:1053"]}
ntp: {listen: ["127.0.0.1:1123"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:8443"}
boot:
  root: $work/root
  tftp_listen: "10.0.0.1:69"
  http_listen: "10.0.0.1:8081"
  profiles: [{name: bench, kernel: ipxe.efi}]
YAML

start_infrad() {
  rm -rf "$work/infrad"
  ip netns exec "$srv" taskset -c 0 "$infrad" serve -c "$work/site.yaml" >"$work/infrad.log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do ip netns exec "$srv" curl -sf http://127.0.0.1:8080/readyz >/dev/null 2>&1 && return; sleep 0.05; done
  echo "infrad did not start:" >&2; cat "$work/infrad.log" >&2; exit 1
}
start_dnsmasq() {
  # --user=root: the root is in a 0700 scratch directory, which dnsmasq's own user cannot read.
  ip netns exec "$srv" taskset -c 0 dnsmasq -k --conf-file=/dev/null --user=root --port=0 --listen-address=10.0.0.1 --bind-interfaces \
    --enable-tftp --tftp-root="$work/root" --pid-file="$work/dnsmasq.pid" >"$work/dnsmasq.log" 2>&1 &
  pid=$!
  sleep 0.5
}
stop_server() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

# measure NAME: four clients fetch the file FETCHES times between them; append the
# files a second to NAME_rates and the server's CPU a file (µs) to NAME_cpu.
measure() {
  local t0 t1 start end each=$((fetches / 4))
  t0=$(ticks); start=$(date +%s.%N)
  local clients=()
  for c in 1 2 3 4; do
    ip netns exec "$cli" taskset -c 1 sh -c "for i in \$(seq $each); do curl -sf --tftp-blksize 1468 -o /dev/null tftp://10.0.0.1/ipxe.efi || echo fail; done" >"$work/c$c" &
    clients+=($!)
  done
  wait "${clients[@]}" # not the server
  end=$(date +%s.%N); t1=$(ticks)
  if grep -q fail "$work"/c[1-4]; then echo "bench/tftp.sh: $1 failed $(cat "$work"/c[1-4] | grep -c fail) fetches" >&2; exit 1; fi
  eval "$1_rates+=($(awk -v n="$((each * 4))" -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", n / (e - s) }'))"
  eval "$1_cpu+=($(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v n="$((each * 4))" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }'))"
}

infrad_rates=() dnsmasq_rates=() infrad_cpu=() dnsmasq_cpu=()
for r in $(seq "$rounds"); do
  start_infrad; measure infrad; stop_server
  start_dnsmasq; measure dnsmasq; stop_server
  echo "round $r: infrad ${infrad_rates[-1]} files/s, ${infrad_cpu[-1]} µs CPU each; dnsmasq ${dnsmasq_rates[-1]} files/s, ${dnsmasq_cpu[-1]} µs CPU each"
done

mi=$(median "${infrad_rates[@]}"); md=$(median "${dnsmasq_rates[@]}")
ci=$(median "${infrad_cpu[@]}"); cd=$(median "${dnsmasq_cpu[@]}")
ratio=$(awk -v a="$mi" -v b="$md" 'BEGIN { printf "%.2f", a / b }')
summary="tftp: ipxe.efi ($size bytes, blksize 1468), 4 clients, $fetches fetches x $rounds rounds, server on core 0: infrad $mi files/s, $ci µs CPU each; $(dnsmasq --version | head -1 | cut -d' ' -f1-3) $md files/s, $cd µs CPU each; ratio ${ratio}x"
echo "$summary" | tee "$out/tftp-$(date +%Y%m%d-%H%M%S).txt"
