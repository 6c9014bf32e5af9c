//go:build cgo

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/plugininfo"
	"github.com/kvsrelay/kvsrelay/plugin/kvsrelay"
)

// runDocsCmd runs the docs subcommand as the user would.
func runDocsCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"docs"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestDocsListEveryElementAndPropertyAndAreReproducible(t *testing.T) {
	dir := t.TempDir()
	first, second := filepath.Join(dir, "a.md"), filepath.Join(dir, "b.md")
	for _, path := range []string{first, second} {
		if code, _, stderr := runDocsCmd(t, "-o", path); code != 0 {
			t.Fatalf("docs -o %s exited %d: %s", path, code, stderr)
		}
	}
	a, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(second)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("two runs differ at line %d", firstDifferentLine(a, b))
	}
	doc := string(a)

	if len(kvsrelay.Elements) < 2 {
		t.Fatalf("kvsrelay.Elements = %v, want reconnectbin and kvscredprovider", kvsrelay.Elements)
	}
	for _, name := range kvsrelay.Elements {
		section := elementSection(t, doc, name)
		// Property names from a different path than the generator's
		// (go-glib on a live instance), so a generator that drops
		// properties is caught.
		el, err := gst.NewElement(name)
		if err != nil {
			t.Fatalf("creating %s: %v", name, err)
		}
		for _, p := range el.Class().ListProperties() {
			// go-glib v1.4.0 gives each spec it lists an Unref finalizer,
			// but g_object_class_list_properties lends them: once the
			// collector ran it, the classes' specs (GstObject's "name" and
			// "parent" among them) were freed, and a later GObject
			// construction crashed (gst_stream_new, in most runs).
			runtime.SetFinalizer(p, nil)
			if !strings.Contains(section, "`"+p.Name()+"`") {
				t.Errorf("%s section lacks property %q", name, p.Name())
			}
		}
	}
	// What a reader looks for in reconnectbin's section.
	rb := elementSection(t, doc, "reconnectbin")
	for _, want := range []string{"#### `stall-timeout`", "- Type: `guint64`", "- Default: `5000000000`",
		"Source/Generic/Bin", "| `src` | src | always | `ANY` |", "readable, read-only"} {
		if !strings.Contains(rb, want) {
			t.Errorf("reconnectbin section lacks %q", want)
		}
	}
	if strings.Contains(doc, os.TempDir()) || strings.Contains(doc, dir) {
		t.Error("docs contain a machine path")
	}
}

// elementSection returns the text of `## name` up to the next element.
func elementSection(t *testing.T, doc, name string) string {
	t.Helper()
	start := strings.Index(doc, "\n## "+name+"\n")
	if start < 0 {
		t.Fatalf("docs have no section for %s", name)
	}
	rest := doc[start+1:]
	if end := strings.Index(rest[3:], "\n## "); end >= 0 {
		return rest[:end+3]
	}
	return rest
}

func TestDocsCheckReportsStaleFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "elements.md")
	if code, _, stderr := runDocsCmd(t, "-o", path); code != 0 {
		t.Fatalf("docs exited %d: %s", code, stderr)
	}
	if code, _, stderr := runDocsCmd(t, "-o", path, "-check"); code != 0 {
		t.Fatalf("-check on a fresh file exited %d: %s", code, stderr)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), "stall-timeout", "stall-timeout-old", 1)
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runDocsCmd(t, "-o", path, "-check")
	if code != 1 {
		t.Errorf("-check on an edited file exited %d, want 1", code)
	}
	if !strings.Contains(stderr, path+" is stale: run make docs") {
		t.Errorf("stderr = %q, want it to say the file is stale and to run make docs", stderr)
	}
	after, _ := os.ReadFile(path)
	if string(after) != edited {
		t.Error("-check modified the file")
	}

	missing := filepath.Join(t.TempDir(), "nope.md")
	if code, _, stderr := runDocsCmd(t, "-o", missing, "-check"); code != 1 || !strings.Contains(stderr, "is stale: run make docs") {
		t.Errorf("-check on a missing file: exit %d, stderr %q", code, stderr)
	}
}

// TestCommittedDocsUpToDate makes `make test` fail when someone changes an
// element's properties without regenerating docs/elements.md.
func TestCommittedDocsUpToDate(t *testing.T) {
	want, err := generateDocs()
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(filepath.Join("..", "..", "docs", "elements.md"))
	if err != nil {
		t.Fatalf("docs/elements.md is stale: run make docs (cannot read it: %v)", err)
	}
	if !bytes.Equal(have, want) {
		t.Fatalf("docs/elements.md is stale: run make docs (first difference at line %d)", firstDifferentLine(have, want))
	}
}

func TestDocsRejectsBadArguments(t *testing.T) {
	if code, _, stderr := runDocsCmd(t, "-o", "-", "-check"); code != 2 || !strings.Contains(stderr, "-check needs a file") {
		t.Errorf("-o - -check: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runDocsCmd(t, "extra"); code != 2 || !strings.Contains(stderr, `unexpected argument "extra"`) {
		t.Errorf("extra argument: exit %d, stderr %q", code, stderr)
	}
}

func TestRenderMarkdownEscapesAndListsValues(t *testing.T) {
	doc := PluginDoc{Name: "p", Version: "1", Description: "d", Elements: []ElementDoc{{
		Name: "fake", LongName: "Fake", Klass: "Generic", Description: "uses a|b", Author: "A <a@example.com>",
		TypeName: "fake", Ancestors: []string{"GstElement"},
		Properties: []PropertyDoc{{
			Name: "mode", Nick: "Mode", Blurb: "pick *one* | other", Type: "FakeMode", Owner: "fake",
			Default: `1, "fast"`, Flags: []string{"readable", "writable"}, ValuesKind: "enum",
			Values: []EnumValue{{"0", "slow", "FAKE_SLOW"}, {"1", "fast", "FAKE_FAST"}},
		}},
		Signals: []SignalDoc{{Name: "ping", Owner: "fake", Return: "void", Params: []string{"guint64"}, Action: true}},
	}}}
	var b bytes.Buffer
	if err := renderMarkdown(&b, doc); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| [fake](#fake) | Fake | Generic |",
		"A &lt;a@example.com&gt;",
		"pick \\*one\\* | other",
		"- Default: `1, \"fast\"`",
		"- Values (enum):\n  - `0` `slow`: FAKE\\_SLOW\n  - `1` `fast`: FAKE\\_FAST",
		"| `ping` | `void user_function (fake* object, guint64 arg0, gpointer user_data)` | action signal |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestMDCodeSurvivesBackticksAndPipes(t *testing.T) {
	for in, want := range map[string]string{
		"plain":   "`plain`",
		"a`b":     "``a`b``",
		"`x`":     "`` `x` ``",
		"a|b":     "`a\\|b`",
		"two\nln": "`two ln`",
	} {
		if got := mdCode(in); got != want {
			t.Errorf("mdCode(%q) = %q, want %q", in, got, want)
		}
	}
}

// builtPlugin is where `make build` leaves the shared object.
var builtPlugin = filepath.Join("..", "..", "build", "libgstkvsrelay.so")

// TestMain points GST_PLUGIN_PATH at the built plugin, as on a developer's
// machine, so that the tests exercise the registry isolation of
// initGStreamer: the docs must come from the static registration, and the
// .so must never be loaded into this (Go) process.
func TestMain(m *testing.M) {
	if _, err := os.Stat(builtPlugin); err == nil {
		if abs, err := filepath.Abs(filepath.Dir(builtPlugin)); err == nil {
			os.Setenv("GST_PLUGIN_PATH", abs)
		}
	}
	os.Exit(m.Run())
}

func TestDocsNeverLoadThePluginSharedObject(t *testing.T) {
	if _, err := os.Stat(builtPlugin); err != nil {
		t.Skipf("no built plugin at %s to guard against (make build): %v", builtPlugin, err)
	}
	if _, err := generateDocs(); err != nil {
		t.Fatal(err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("cannot read /proc/self/maps: %v", err)
	}
	if strings.Contains(string(maps), "libgstkvsrelay") {
		t.Fatal("libgstkvsrelay.so is mapped into the docs generator: a second Go runtime in one process")
	}
}

// TestIntrospectionOfCoreTypes checks the generic property code on core
// GStreamer types that have what kvsrelay's elements may gain later: enums,
// flags, numeric ranges, construct-only and inherited properties.
func TestIntrospectionOfCoreTypes(t *testing.T) {
	if err := initGStreamer(); err != nil {
		t.Fatal(err)
	}
	// Making a stream registers GstStream; the caps stay alive across the
	// call, which only hands over their pointer.
	caps := gst.NewAnyCaps()
	gst.NewStream("s", caps, gst.StreamTypeVideo, gst.StreamFlagSparse)
	runtime.KeepAlive(caps)

	prop := func(typeName, name string) PropertyDoc {
		t.Helper()
		props, err := typeProperties(typeName)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range props {
			if p.Name == name {
				return p
			}
		}
		t.Fatalf("%s has no property %q", typeName, name)
		return PropertyDoc{}
	}

	clockType := prop("GstSystemClock", "clock-type")
	if clockType.Type != "GstClockType" || clockType.Default != `1, "monotonic"` || clockType.ValuesKind != "enum" || clockType.Inherited {
		t.Errorf("clock-type = %+v", clockType)
	}
	if len(clockType.Values) < 3 || clockType.Values[0] != (EnumValue{"0", "realtime", "GST_CLOCK_TYPE_REALTIME"}) {
		t.Errorf("clock-type values = %+v", clockType.Values)
	}

	timeout := prop("GstSystemClock", "timeout")
	if !timeout.Inherited || timeout.Owner != "GstClock" || timeout.Type != "guint64" || timeout.Range == nil {
		t.Errorf("timeout = %+v", timeout)
	}

	flags := prop("GstStream", "stream-flags")
	if flags.ValuesKind != "flags" || flags.Default != `0x00000000, "(none)"` {
		t.Errorf("stream-flags = %+v", flags)
	}
	var nicks []string
	for _, v := range flags.Values {
		nicks = append(nicks, v.Nick)
	}
	if !strings.Contains(strings.Join(nicks, " "), "sparse") {
		t.Errorf("stream-flags values %v lack sparse", nicks)
	}

	presence := prop("GstPadTemplate", "presence")
	if strings.Join(presence.Flags, ",") != "readable,writable,construct-only" || presence.Default != `0, "always"` {
		t.Errorf("presence = %+v", presence)
	}

	if _, err := typeProperties("NoSuchType"); err == nil {
		t.Error("typeProperties of an unknown type did not fail")
	}
}

// TestPluginInfoMatchesRegistration keeps the cgo-free plugin identity the
// doctor checks against equal to what plugin/kvsrelay registers.
func TestPluginInfoMatchesRegistration(t *testing.T) {
	if !slices.Equal(plugininfo.Elements, kvsrelay.Elements) {
		t.Errorf("internal/plugininfo.Elements = %v, plugin/kvsrelay registers %v: update plugininfo", plugininfo.Elements, kvsrelay.Elements)
	}
}
