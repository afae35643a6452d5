# Sourced by the bench scripts after they cd to the repository: the arithmetic their
# summaries share.

# median prints the median of its numeric arguments (the lower one of an even count).
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# ticks prints the CPU time (user and system, in clock ticks) process $pid has used.
ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
