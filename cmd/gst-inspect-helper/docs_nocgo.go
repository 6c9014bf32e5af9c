//go:build !cgo

package main

import (
	"fmt"
	"io"
)

// docsNeedsCgo is what a CGO_ENABLED=0 build (the installed doctor) says
// when asked for docs, which introspect the elements through GStreamer.
const docsNeedsCgo = "docs needs a cgo build of gst-inspect-helper (GStreamer's development files and a C compiler): " +
	"run make docs, or go run ./cmd/gst-inspect-helper docs, in a kvsrelay checkout"

// runDocs stands in for the cgo build's docs subcommand.
func runDocs(_ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "gst-inspect-helper: "+docsNeedsCgo)
	return 2
}
