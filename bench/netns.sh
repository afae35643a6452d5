# Sourced by the bench scripts that run a server and its clients in two network
# namespaces joined by a veth pair. two_namespaces PREFIX SERVER CLIENT makes the
# namespaces $srv and $cli (PREFIX-srv-ID, PREFIX-cli-ID), the server's end s0 at
# SERVER and the clients' end c0 at CLIENT (addresses with their prefix lengths), and
# a scratch directory $work; on exit, the process $pid (when set) is stopped and all
# three are removed.

cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true
  [ -n "${srv:-}" ] && ip netns del "$srv" 2>/dev/null || true
  [ -n "${cli:-}" ] && ip netns del "$cli" 2>/dev/null || true
  [ -n "${work:-}" ] && rm -rf "$work"
}

two_namespaces() {
  local id
  id=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
  srv=$1-srv-$id cli=$1-cli-$id work=$(mktemp -d) pid=
  trap cleanup EXIT
  ip netns add "$srv"; ip netns add "$cli"
  ip -n "$srv" link set lo up; ip -n "$cli" link set lo up
  ip -n "$srv" link add s0 type veth peer name c0 netns "$cli"
  ip -n "$srv" addr add "$2" dev s0; ip -n "$srv" link set s0 up
  ip -n "$cli" addr add "$3" dev c0; ip -n "$cli" link set c0 up
}
