package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is one mistake in a site file, placed by key path and line.
type Error struct {
	File string // as given to Parse
	Line int    // 1-based; 0 when the mistake has no line (a missing top-level key)
	Path string // key path: "hosts[3].mac"; "" for the file as a whole
	Msg  string
}

// Error renders "site.yaml:12: hosts[3].mac: "zz" is not a MAC address", the form
// editors and compilers use.
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every mistake found in one site file, in file order.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es Errors) sort() {
	slices.SortStableFunc(es, func(a, b Error) int { return cmp.Compare(a.Line, b.Line) })
}
