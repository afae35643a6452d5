#!/usr/bin/env bash
# The write path's cost against the site's size: the Go benchmarks of pkg/ipam (a host
# write and a lease commit, through the whole path and the check alone), at 1,000,
# 30,000 and 100,000 hosts and at 1,000 and 500,000 leases, and the ratio of each size
# to the smallest. No peer: no other tool has this write path.
# Usage: bench/write.sh [N]   (N writes a benchmark; default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
n=${1:-2000}
out=$PWD/bench/out
mkdir -p "$out"
go test -run '^$' -bench 'BenchmarkHost|BenchmarkLease' -benchmem -benchtime "${n}x" ./pkg/ipam 2>/dev/null |
  grep '^Benchmark' | tee "$out/write.last" |
  awk '{ split($1, p, "/"); name = p[1]; size = p[2]; sub(/-[0-9]+$/, "", size)
         if (!(name in base)) base[name] = $3
         printf "%-22s %-28s %10.1f µs/write  %5.2fx the smallest\n", name, size, $3 / 1000, $3 / base[name] }' |
  tee "$out/write-$(date +%Y%m%d-%H%M%S).txt"
