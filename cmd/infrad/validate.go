package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/infrad/infrad/pkg/boot"
	"github.com/infrad/infrad/pkg/config"
)

// validate checks a site file and prints every mistake, one a line, with its key path.
func validate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "the site file to check")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: infrad validate -c site.yaml")
		return exitUsage
	}
	site, err := config.Load(*path)
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(stderr, e.Error())
		}
		fmt.Fprintf(stderr, "%s: %d mistake(s)\n", *path, len(errs))
		return exitFail
	}
	if err != nil {
		fmt.Fprintf(stderr, "infrad: %v\n", err)
		return exitFail
	}
	for _, w := range site.Warnings() {
		fmt.Fprintf(stderr, "%s: warning: %s\n", *path, w)
	}
	if len(site.Boot.Profiles) > 0 { // what this box has to boot machines with
		if missing := boot.MissingLoaders(site.BootRoot(), ""); len(missing) > 0 {
			fmt.Fprintf(stderr, "%s: warning: boot.profiles: PXE firmware is given %s, which neither %s nor %s has on this box: install Debian's ipxe package, or put them in the boot root\n",
				*path, strings.Join(missing, " and "), site.BootRoot(), boot.DefaultIPXEDir)
		}
	}
	fmt.Fprintf(stdout, "%s: valid (domain %s, %d subnets, %d hosts, %d records)\n",
		*path, site.Domain, len(site.Subnets), len(site.Hosts), len(site.DNS.Records))
	return exitOK
}
