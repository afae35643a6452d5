#!/usr/bin/env bash
# Cold start to ready of the demo site: a fresh data directory each run (so the store
# is created, migrated and fsync'ed, and the API token written), timed from exec to the
# first 200 from /readyz. Usage: bench/startup.sh [RUNS]   (needs bin/infrad: make build)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
bin=$PWD/bin/infrad
url=http://127.0.0.1:8080/readyz
[ -x "$bin" ] || { echo "bench/startup.sh: build first (make build)" >&2; exit 1; }
if curl -s -o /dev/null "$url"; then
  echo "bench/startup.sh: something already answers on 127.0.0.1:8080; stop it first" >&2
  exit 1
fi

work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

times=()
for i in $(seq "$runs"); do
  dir=$work/run$i
  mkdir -p "$dir"
  t0=$(date +%s%N)
  (cd "$dir" && exec "$bin" serve >"$dir/log" 2>&1) &
  pid=$!
  # Poll without sleeping: curl's own start-up (~2 ms) is the resolution.
  until curl -sf -o /dev/null "$url"; do
    kill -0 "$pid" 2>/dev/null || { echo "infrad exited:"; cat "$dir/log"; exit 1; }
  done
  t1=$(date +%s%N)
  kill -TERM "$pid"; wait "$pid" || true; pid=
  times+=($(( (t1 - t0) / 1000 )))
done

sorted=($(printf '%s\n' "${times[@]}" | sort -n))
ms() { awk -v us="$1" 'BEGIN { printf "%.1f", us / 1000 }'; }
echo "cold start to ready, demo site, $runs runs: min $(ms "${sorted[0]}") ms, median $(ms "${sorted[$((runs / 2))]}") ms, max $(ms "${sorted[$((runs - 1))]}") ms"
