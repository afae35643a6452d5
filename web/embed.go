// Package web holds infrad's UI: static files, embedded in the binary, with no build
// step and nothing fetched at run time. The API serves them at /ui/.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS is the UI's files, index.html at the root.
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic("web: " + err.Error())
	}
	return sub
}
