package service

import "runtime"

// cpus is how many CPUs the process may use, as the Go runtime found them when the
// process started (its default GOMAXPROCS: the CPUs of its affinity mask, and its
// cgroup's CPU quota), read before infrad raises GOMAXPROCS for the write path's
// sake (cmd/infrad's tuneRuntime). Set once, at package initialisation.
var cpus = runtime.GOMAXPROCS(0)

// CPUs is how many CPUs the process may use: the services size their socket readers
// by it, one a CPU.
func CPUs() int { return cpus }
