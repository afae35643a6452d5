package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/infrad/infrad/pkg/client"
	"github.com/infrad/infrad/pkg/config"
)

// plan shows what reloading a site file would change in a running infrad (+ added,
// ~ changed, - removed), changing nothing, and whether the change budget allows it.
func plan(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "the site file")
	maxDeletes := fs.Int("max-deletes", -1, "refuse a plan that removes more objects than this (default: the file's max_deletes)")
	connect := clientFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: infrad plan -c site.yaml [--max-deletes N] [--api URL] [--token T]")
		return exitUsage
	}
	site, err := config.Load(*path)
	var mistakes config.Errors
	if errors.As(err, &mistakes) {
		fmt.Fprintln(stderr, mistakes.Error())
		return exitFail
	}
	if err != nil {
		fmt.Fprintf(stderr, "infrad plan: %v\n", err)
		return exitFail
	}
	budget := site.MaxDeletes
	if *maxDeletes >= 0 {
		budget = *maxDeletes
	}
	data, _ := os.ReadFile(*path)
	c, err := connect()
	var result struct {
		Changes []struct{ Op, What string }
		Deletes int
	}
	if err == nil {
		var resp *http.Response
		if resp, err = c.Do(http.MethodPost, "/api/v1/plan", bytes.NewReader(data)); err == nil {
			err = client.DecodeJSON(resp, &result)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "infrad plan: %v\n", err)
		return exitFail
	}
	count := map[string]int{}
	for _, ch := range result.Changes {
		fmt.Fprintf(stdout, "%s %s\n", ch.Op, ch.What)
		count[ch.Op]++
	}
	fmt.Fprintf(stdout, "%d to add, %d to change, %d to remove\n", count["+"], count["~"], count["-"])
	if budget >= 0 && result.Deletes > budget {
		fmt.Fprintf(stdout, "a reload would be refused: it removes %d objects, more than max_deletes (%d)\n", result.Deletes, budget)
		return exitFail
	}
	return exitOK
}
