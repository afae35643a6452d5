#!/usr/bin/env bash
# NTP: replies per second, and the offset and delay a client sees, for infrad and for
# chronyd serving on this machine in the same run, alternating. The server runs on
# core 0, the load (bench/ntpload: batched, many sockets) on core 1. Both serve the
# local clock at stratum 10; neither touches it (chronyd -x). Then the same with NTS
# (RFC 8915): every request authenticated with AES-SIV-CMAC-256, as chronyd's are,
# infrad's NTS-KE certificate from its CA, chronyd's from openssl.
#
# Usage: bench/ntp.sh [ROUNDS] [SECONDS]     (needs bin/infrad, chronyd, taskset)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/stats.sh
rounds=${1:-3}
secs=${2:-10}
out=$PWD/bench/out
mkdir -p "$out"
for tool in chronyd taskset openssl; do
  command -v "$tool" >/dev/null || { echo "bench/ntp.sh: $tool is missing (make deps)" >&2; exit 1; }
done
[ -x bin/infrad ] || { echo "bench/ntp.sh: build first (make build)" >&2; exit 1; }
go build -o "$out/ntpload" ./bench/ntpload

work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cat > "$work/site.yaml" <<YAML
domain: bench.example
data_dir: $work/data
api: {listen: "127.0.0.1:18081"}
dns: {listen: ["127.0.0.1:15303"]}
ntp: {listen: ["127.0.0.1:11230"], local_stratum: 10, rate_limit: 0, chronyd: none, nts: true, nts_listen: ["127.0.0.1:11460"]}
ca: {listen: "127.0.0.1:18444"}
YAML
cat > "$work/chrony.conf" <<CONF
port 11231
bindaddress 127.0.0.1
allow 127.0.0.1
local stratum 10
cmdport 0
pidfile $work/chronyd.pid
ntsserverkey $work/nts.key
ntsservercert $work/nts.crt
ntsport 11461
CONF
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/nts.key" -out "$work/nts.crt" \
  -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null

start_infrad() {
  taskset -c 0 bin/infrad serve -c "$work/site.yaml" >"$work/infrad.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:18081/readyz >/dev/null 2>&1 && return; sleep 0.05; done
  echo "infrad did not start" >&2; cat "$work/infrad.log" >&2; exit 1
}
start_chronyd() {
  taskset -c 0 chronyd -x -d -u root -f "$work/chrony.conf" >"$work/chronyd.log" 2>&1 &
  pid=$!
  sleep 1
}
stop_server() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
load() { taskset -c 1 "$out/ntpload" -server "127.0.0.1:$1" -duration "${secs}s" "${@:2}"; }
client_offset() { # what chronyd, as a client, measures against port $1
  chronyd -Q -f /dev/null -t 30 "server 127.0.0.1 port $1 iburst maxsamples 8" 2>&1 |
    sed -n 's/.*System clock wrong by \(-\?[0-9.]*\) seconds.*/\1/p'
}

infrad_rates=() chronyd_rates=() lines=()
for r in $(seq "$rounds"); do
  start_infrad;  a=$(load 11230); stop_server
  start_chronyd; b=$(load 11231); stop_server
  infrad_rates+=($(awk '{ print $2 }' <<<"$a")); chronyd_rates+=($(awk '{ print $2 }' <<<"$b"))
  echo "round $r: infrad $a | chronyd $b"
done
nts_infrad=() nts_chronyd=()
for r in $(seq "$rounds"); do
  start_infrad;  a=$(load 11230 -nts 127.0.0.1:11460 -root "$work/data/ca/root.crt"); stop_server
  start_chronyd; b=$(load 11231 -nts 127.0.0.1:11461 -root "$work/nts.crt"); stop_server
  nts_infrad+=($(awk '{ print $2 }' <<<"$a")); nts_chronyd+=($(awk '{ print $2 }' <<<"$b"))
  echo "round $r, NTS: infrad $a | chronyd $b"
done
start_infrad;  infrad_off=$(client_offset 11230);  stop_server
start_chronyd; chronyd_off=$(client_offset 11231); stop_server

mi=$(median "${infrad_rates[@]}"); mc=$(median "${chronyd_rates[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
ni=$(median "${nts_infrad[@]}"); nc=$(median "${nts_chronyd[@]}")
summary="ntp: ${secs}s x $rounds rounds, server on core 0, load on core 1: infrad $mi replies/s, chronyd $(chronyd -v | awk '{ print $4 }') $mc replies/s, ratio $(ratio "$mi" "$mc")x; NTS (AES-SIV-CMAC-256): infrad $ni replies/s ($(ratio "$ni" "$mi")x its plain), chronyd $nc replies/s, ratio $(ratio "$ni" "$nc")x; chronyd -Q as a client: offset against infrad ${infrad_off}s, against chronyd ${chronyd_off}s"
echo "$summary" | tee "$out/ntp-$(date +%Y%m%d-%H%M%S).txt"
