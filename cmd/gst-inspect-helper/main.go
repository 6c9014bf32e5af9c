// Command gst-inspect-helper keeps kvsrelay's element reference in sync with
// the code and checks that a relay host is ready to run kvsrelay pipelines.
//
//	gst-inspect-helper docs [-o docs/elements.md] [-check]
//	gst-inspect-helper doctor [-env-file /etc/kvs-relay/cam1.env] [-imds-timeout 1s]
//
// docs registers the elements statically (package plugin/kvsrelay) and never
// loads libgstkvsrelay.so: a Go process must not host a second Go runtime.
// doctor looks at the installed plugin only through gst-inspect-1.0
// subprocesses for the same reason.
//
// doctor needs no cgo: `make install` installs a CGO_ENABLED=0 build, which
// runs on a host without GStreamer's libraries and says what is missing
// instead of failing to start. docs needs cgo (docs.go, introspect.go); a
// CGO_ENABLED=0 build's docs says so (docs_nocgo.go).
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  gst-inspect-helper docs [-o docs/elements.md] [-check]
      Write the element reference generated from GObject introspection;
      -check exits 1 when the file on disk is stale.
  gst-inspect-helper doctor [-env-file FILE] [-imds-timeout 1s]
      Check this host for running kvsrelay relays; exits 0 (all pass),
      1 (warnings) or 2 (failures).
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "docs":
		return runDocs(args[1:], stdout, stderr)
	case "doctor":
		return runDoctor(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "gst-inspect-helper: unknown subcommand %q\n%s", args[0], usage)
	return 2
}
