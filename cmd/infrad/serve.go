package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/daemon"
)

// minProcs is the fewest goroutines infrad runs at once (see tuneRuntime).
const minProcs = 2

// stopBound is how long SIGTERM may take: services share it to stop in reverse order.
const stopBound = 8 * time.Second

// serve runs every service until SIGTERM or SIGINT; SIGHUP re-reads the site file.
// As witness, it runs the node as a cluster voter that serves nothing.
func serve(args []string, stderr io.Writer, witness bool) int {
	name := "serve"
	if witness {
		name = "witness"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "the site file (none: the built-in demo site)")
	dataDir := fs.String("data", "", "the data directory (overrides data_dir of the site file)")
	node := fs.String("node", "", "this box's name among the site file's cluster.nodes")
	join := fs.String("join", os.Getenv("INFRAD_JOIN_TOKEN"), "the join token of the cluster's first node, to join it ($INFRAD_JOIN_TOKEN)")
	joinFile := fs.String("join-file", "", "a file holding the join token")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "infrad %s: unexpected argument %q\n", name, fs.Arg(0))
		return exitUsage
	}
	if witness && (*path == "" || *node == "") {
		fmt.Fprintln(stderr, "infrad witness: give the site file (-c) and this node's name (--node)")
		return exitUsage
	}
	token := *join
	if *joinFile != "" {
		raw, err := os.ReadFile(*joinFile)
		if err != nil {
			fmt.Fprintf(stderr, "infrad %s: %v\n", name, err)
			return exitUsage
		}
		token = strings.TrimSpace(string(raw))
	}
	log := setupLogging(stderr)
	tuneRuntime()
	if path := os.Getenv("INFRAD_CPUPROFILE"); path != "" {
		stop, err := cpuProfile(fmt.Sprintf("%s.%d", path, os.Getpid()))
		if err != nil {
			log.Error("no CPU profile", "err", err)
		} else {
			defer stop()
		}
	}

	load := func() (*config.Site, error) {
		site := config.Demo()
		if *path != "" {
			var err error
			if site, err = config.Load(*path); err != nil {
				return nil, err
			}
		}
		if *dataDir != "" {
			site.DataDir = *dataDir
		}
		return site, nil
	}
	site, err := load()
	if err != nil {
		logSiteErrors(log, "site file refused", err)
		return exitFail
	}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(signals)

	d, err := daemon.Start(context.Background(), daemon.Options{Site: site, Build: build(), Logger: log, Node: *node, JoinToken: token, Witness: witness})
	if err != nil {
		logSiteErrors(log, "infrad cannot start", err)
		return exitFail
	}
	for sig := range signals {
		if sig != syscall.SIGHUP {
			log.Info("stopping", "signal", sig.String())
			return stop(log, d, signals)
		}
		if *path == "" || witness {
			log.Info("SIGHUP: nothing to re-read (the demo site has no file; a witness serves nothing)")
			continue
		}
		next, err := load()
		if err == nil {
			err = d.Reload(next)
		}
		if err != nil {
			logSiteErrors(log, "SIGHUP: site file refused; the running site stays", err)
		}
	}
	return exitOK
}

// stop stops the daemon within stopBound. A second signal, or a stop that overruns
// the bound, ends the process at once.
func stop(log *slog.Logger, d *daemon.Daemon, signals <-chan os.Signal) int {
	ctx, cancel := context.WithTimeout(context.Background(), stopBound)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Stop(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			log.Error("stopped with errors", "err", err)
			return exitFail
		}
		log.Info("stopped")
		return exitOK
	case <-time.After(stopBound + time.Second):
		log.Error("stop overran its bound; exiting", "bound", stopBound)
	case sig := <-signals:
		log.Error("second signal while stopping; exiting", "signal", sig.String())
	}
	return exitFail
}

// logSiteErrors logs each mistake of a site file on its own line.
func logSiteErrors(log *slog.Logger, msg string, err error) {
	var errs config.Errors
	if !errors.As(err, &errs) {
		log.Error(msg, "err", err)
		return
	}
	for _, e := range errs {
		log.Error(msg, "mistake", e.Error())
	}
}

// tuneRuntime lets the heap grow to three times what is live (GOGC=200) under a soft
// limit of a quarter of the machine's memory (GOMEMLIMIT), unless the environment sets
// either. The write path makes much short-lived garbage (the model's copied paths, a
// few KB a lease); with Go's default (GOGC=100) a DHCP storm once spent a sixth of its
// CPU collecting it. GOGC=400 saved no CPU that bench/dhcp.sh could tell from 200, and
// let a flood from a million spoofed sources (bench/flood.sh) hold 130 MB more than
// idle where 200 held under 64. The limit keeps a large site on a small box from
// growing past it.
//
// It also runs at least minProcs goroutines at once (GOMAXPROCS) on a box of fewer
// CPUs, unless the environment sets it: the write path waits in fsync (Raft's log,
// the store) in its own goroutines, and with one P the others wait for the runtime to
// notice and hand the P over. Pinned to one core, a lease commit took 388 µs with one
// P and 85 µs with two (BenchmarkCommitLease in pkg/cluster). More than two cost the
// other services: pinned to one core, NTP answered 0.71x to 0.79x of chronyd's rate
// with four Ps against 0.82x to 0.86x with two, and DHCP did no better with four
// (bench/ntp.sh and bench/dhcp.sh alternating, 2026-12-07, in BENCHMARKS.md).
func tuneRuntime() {
	if os.Getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) < minProcs {
		runtime.GOMAXPROCS(minProcs)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		var info syscall.Sysinfo_t
		if syscall.Sysinfo(&info) == nil {
			total := int64(info.Totalram) * int64(info.Unit)
			debug.SetMemoryLimit(max(total/4, 256<<20))
		}
	}
}

// cpuProfile writes a CPU profile to path until stop is called: INFRAD_CPUPROFILE, for
// the benchmarks (the file gets the process's ID appended).
func cpuProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
