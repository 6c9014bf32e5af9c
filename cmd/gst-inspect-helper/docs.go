//go:build cgo

// The docs subcommand registers the elements through go-gst, so it needs a
// cgo build; docs_nocgo.go says so in a CGO_ENABLED=0 build (the doctor's).

package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/plugin/kvsrelay"
)

// Exit codes of the docs subcommand.
const (
	docsOK    = 0
	docsStale = 1 // -check found a difference
	docsError = 2 // bad flags, generation or I/O failure
)

// runDocs implements `gst-inspect-helper docs [-o FILE] [-check]`.
func runDocs(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("docs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "docs/elements.md", "Markdown file to write (or compare with -check); - writes to stdout")
	check := fs.Bool("check", false, "do not write: exit 1 when the file differs from what would be generated")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: gst-inspect-helper docs [-o docs/elements.md] [-check]\n\n"+
			"Generates the element reference from the elements' GObject introspection.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return docsOK
		}
		return docsError
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "docs: unexpected argument %q\n", fs.Arg(0))
		return docsError
	}

	generated, err := generateDocs()
	if err != nil {
		fmt.Fprintf(stderr, "docs: %v\n", err)
		return docsError
	}
	if *check {
		if *out == "-" {
			fmt.Fprintln(stderr, "docs: -check needs a file, not -o -")
			return docsError
		}
		if err := checkDocs(*out, generated); err != nil {
			fmt.Fprintln(stderr, err)
			return docsStale
		}
		fmt.Fprintf(stdout, "%s is up to date\n", *out)
		return docsOK
	}
	if *out == "-" {
		if _, err := stdout.Write(generated); err != nil {
			fmt.Fprintf(stderr, "docs: writing stdout: %v\n", err)
			return docsError
		}
		return docsOK
	}
	if err := writeFileAtomic(*out, generated); err != nil {
		fmt.Fprintf(stderr, "docs: %v\n", err)
		return docsError
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return docsOK
}

// generateDocs registers kvsrelay's elements in this process and renders
// their reference.
func generateDocs() ([]byte, error) {
	if err := initGStreamer(); err != nil {
		return nil, err
	}
	doc := PluginDoc{Name: kvsrelay.PluginName, Description: kvsrelay.PluginDescription, Version: kvsrelay.Version}
	for _, name := range kvsrelay.Elements {
		e, err := inspectElement(name)
		if err != nil {
			return nil, fmt.Errorf("introspecting %s: %w", name, err)
		}
		doc.Elements = append(doc.Elements, e)
	}
	var buf bytes.Buffer
	if err := renderMarkdown(&buf, doc); err != nil {
		return nil, fmt.Errorf("rendering Markdown: %w", err)
	}
	return buf.Bytes(), nil
}

// checkDocs reports, as an error meant for the user, how the file at path
// differs from want.
func checkDocs(path string, want []byte) error {
	have, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s is stale: run make docs (cannot read it: %w)", path, err)
	}
	if bytes.Equal(have, want) {
		return nil
	}
	return fmt.Errorf("%s is stale: run make docs (first difference at line %d)", path, firstDifferentLine(have, want))
}

func firstDifferentLine(a, b []byte) int {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(la) && i < len(lb); i++ {
		if la[i] != lb[i] {
			return i + 1
		}
	}
	return min(len(la), len(lb)) + 1
}

// writeFileAtomic replaces path in one rename so that an interrupted run
// never leaves half a file for `make test` to trip over.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".elements-*.md")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

var (
	gstInitOnce sync.Once
	gstInitErr  error
)

// initGStreamer initialises GStreamer once with a private, empty plugin
// registry and registers kvsrelay's elements statically.
//
// The registry is isolated on purpose: with GST_PLUGIN_PATH pointing at an
// installed libgstkvsrelay.so, the user's registry cache already holds
// reconnectbin and kvscredprovider features, and gst_element_register would
// reuse those (stale) factories' metadata, making the docs depend on what
// happens to be installed. Nothing is scanned, so no plugin .so, and in
// particular no second Go runtime, is loaded into this process.
func initGStreamer() error {
	gstInitOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gst-inspect-helper-registry-")
		if err != nil {
			gstInitErr = fmt.Errorf("creating a private GStreamer registry: %w", err)
			return
		}
		defer os.RemoveAll(dir)
		restore := setEnvTemporarily(map[string]string{
			"GST_REGISTRY_1_0":           filepath.Join(dir, "registry.bin"),
			"GST_PLUGIN_PATH_1_0":        "",
			"GST_PLUGIN_SYSTEM_PATH_1_0": "",
			"GST_REGISTRY_FORK":          "no",
		})
		defer restore()
		gst.Init(nil)
		if !kvsrelay.Register(nil) {
			gstInitErr = errors.New("registering kvsrelay's elements failed (see GStreamer's messages above)")
		}
	})
	return gstInitErr
}

// setEnvTemporarily sets vars and returns a func restoring the previous
// environment. cgo programs pass os.Setenv through to C's environ, which is
// what gst_init reads.
func setEnvTemporarily(vars map[string]string) (restore func()) {
	type prev struct {
		value string
		set   bool
	}
	saved := make(map[string]prev, len(vars))
	for k, v := range vars {
		old, ok := os.LookupEnv(k)
		saved[k] = prev{old, ok}
		os.Setenv(k, v)
	}
	return func() {
		for k, p := range saved {
			if p.set {
				os.Setenv(k, p.value)
			} else {
				os.Unsetenv(k)
			}
		}
	}
}
