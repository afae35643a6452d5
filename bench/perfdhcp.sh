# Sourced by bench/dhcp.sh and bench/dhcp6.sh after bench/netns.sh: perfdhcp against
# infrad and against ISC Kea, alternating round by round. The caller sets family (4 or
# 6), kea (kea-dhcp4 or kea-dhcp6), rate, secs, out and infrad, writes $work/site.yaml
# and $work/kea.json, and calls rounds N; then infrad_rates, kea_rates, infrad_cpu and
# kea_cpu hold each round's exchanges a second and the server's CPU (µs) an exchange.
# perfdhcp -4 is a relay to 10.0.0.1; perfdhcp -6 a client on the link.

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
  KEA_PIDFILE_DIR=$work/kea KEA_LOCKFILE_DIR=$work/kea ip netns exec "$srv" taskset -c 0 "$kea" -c "$work/kea.json" >"$work/kea.out" 2>&1 &
  pid=$!
  sleep 1
}
stop_server() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

exchanges() { # perfdhcp on core 1; print the 4-way exchanges per second it saw; $1 names the server
  local report server=()
  [ "$family" = 4 ] && server=(10.0.0.1)
  report=$(ip netns exec "$cli" taskset -c 1 perfdhcp "-$family" -l c0 -r "$rate" -R 100000000 -p "$secs" "${server[@]}" 2>&1 || true)
  echo "$report" >"$out/perfdhcp$family-$1.last"
  if grep -q 'non unique addresses: [1-9]' <<<"$report"; then
    echo "perfdhcp saw an address given twice:" >&2; grep 'non unique' <<<"$report" >&2; exit 1
  fi
  awk '/^Rate:/ { print $2; exit }' <<<"$report"
}

# measure NAME: run perfdhcp against the server, then append its rate to NAME_rates
# and the server's CPU per exchange (µs, user and system, from /proc) to NAME_cpu: a
# figure the machine's other tenants disturb less than the rate.
measure() {
  local t0 t1 seen
  t0=$(ticks); seen=$(exchanges "$1"); t1=$(ticks)
  eval "$1_rates+=($seen)"
  eval "$1_cpu+=($(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v r="$seen" -v s="$secs" 'BEGIN { printf "%.1f", t / hz * 1e6 / (r * s) }'))"
}

# rounds N: N rounds of infrad, then Kea, each checked (infrad's leases each at an
# address once) and printed.
rounds() {
  local r token leases total unique
  infrad_rates=() kea_rates=() infrad_cpu=() kea_cpu=()
  for r in $(seq "$1"); do
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
}
