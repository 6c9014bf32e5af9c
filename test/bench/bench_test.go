package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mdTable is a markdown table read back from the report.
type mdTable struct {
	header []string
	rows   [][]string
}

func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(strings.TrimSuffix(line, "|"), "|")
	// Cells may contain escaped pipes.
	parts := regexp.MustCompile(`[^\\]\|`).FindAllStringIndex(line, -1)
	var cells []string
	prev := 0
	for _, p := range parts {
		cells = append(cells, strings.TrimSpace(line[prev:p[0]+1]))
		prev = p[1]
	}
	return append(cells, strings.TrimSpace(line[prev:]))
}

// parseMarkdownTables finds every table in a markdown document and checks
// that each row has the header's column count.
func parseMarkdownTables(doc string) ([]mdTable, error) {
	var tables []mdTable
	var cur *mdTable
	for i, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "|") {
			cur = nil
			continue
		}
		cells := splitRow(line)
		switch {
		case cur == nil:
			tables = append(tables, mdTable{header: cells})
			cur = &tables[len(tables)-1]
		case len(cur.rows) == 0 && strings.Trim(strings.Join(cells, ""), "-: ") == "" && len(cur.header) == len(cells):
			// separator line
		default:
			if len(cells) != len(cur.header) {
				return nil, fmt.Errorf("line %d has %d cells, header has %d: %s", i+1, len(cells), len(cur.header), line)
			}
			cur.rows = append(cur.rows, cells)
		}
	}
	return tables, nil
}

var (
	unitColumn = regexp.MustCompile(`\([^)]+\)$`)
	numberCell = regexp.MustCompile(`^[<>]?-?\d+(\.\d+)?$`)
)

// benchPluginDir is the plugin build the quick bench measures, as make
// bench does: the shipped build ($KVSRELAY_PLUGIN_DIR, else the repository's
// build/), and the test build ($KVSRELAY_TEST_PLUGIN_DIR) only without one.
func benchPluginDir() string {
	shipped, _ := filepath.Abs(filepath.Join("..", "..", "build"))
	test, _ := filepath.Abs(filepath.Join("..", "..", "build-test"))
	for _, dir := range []string{os.Getenv("KVSRELAY_PLUGIN_DIR"), shipped, os.Getenv("KVSRELAY_TEST_PLUGIN_DIR"), test} {
		if dir == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "libgstkvsrelay.so")); err == nil {
			return dir
		}
	}
	return ""
}

// column returns the index of the named column, or -1.
func (t mdTable) column(name string) int {
	for i, h := range t.header {
		if h == name {
			return i
		}
	}
	return -1
}

func TestQuickBenchProducesParsableReport(t *testing.T) {
	pluginDir := benchPluginDir()
	if pluginDir == "" {
		t.Skip("no plugin build: set KVSRELAY_PLUGIN_DIR or KVSRELAY_TEST_PLUGIN_DIR, or run make build")
	}
	if testing.Short() {
		t.Skip("the quick bench takes about 4 minutes")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "kvsrelay-bench")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	report := filepath.Join(dir, "b.md")
	cmd := exec.Command(bin, "-quick", "-plugin-dir", pluginDir, "-o", report)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	started := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("kvsrelay-bench -quick: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
	}
	t.Logf("quick bench took %s", time.Since(started).Round(time.Second))

	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	if doc != stdout.String() {
		t.Error("the report file differs from what was printed")
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^- CPU: \S`),
		regexp.MustCompile(`(?m)^- Cores: [1-9]\d*$`),
		regexp.MustCompile(`(?m)^- GStreamer: 1\.\d+\.\d+$`),
		regexp.MustCompile(`(?m)^- Go: go1\.\d+`),
	} {
		if !want.MatchString(doc) {
			t.Errorf("machine header lacks %s", want)
		}
	}
	if !regexp.MustCompile(`(?m)^\[\d+/\d+\] `).MatchString(stderr.String()) {
		t.Error("no progress lines on stderr")
	}
	tables, err := parseMarkdownTables(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, section := range []string{"Fresh start", "HLS fault A", "HLS fault B", "HLS fault C", "MPEG-TS over TCP", "SRT", "Stall detection", "Fault storm", "Data-path overhead", "Memory", "Density", "Network cut", "Credentials"} {
		if !strings.Contains(doc, "### "+section) {
			t.Errorf("report has no %q table", section)
		}
	}
	if len(tables) < 11 {
		t.Errorf("report has %d tables, want at least 11", len(tables))
	}
	for _, tb := range tables {
		numbers := 0
		for _, row := range tb.rows {
			for i, cell := range row {
				if !unitColumn.MatchString(tb.header[i]) {
					continue
				}
				if cell == naCell {
					continue
				}
				if !numberCell.MatchString(cell) {
					t.Errorf("table %v: column %q has %q, not a number", tb.header, tb.header[i], cell)
					continue
				}
				if _, err := strconv.ParseFloat(strings.TrimLeft(cell, "<>"), 64); err != nil {
					t.Errorf("table %v: %q: %v", tb.header, cell, err)
				}
				numbers++
			}
		}
		if len(tb.rows) == 0 || numbers == 0 {
			t.Errorf("table %v has no measured numbers", tb.header)
		}
	}
	if !strings.Contains(doc, "| reconnectbin |") {
		t.Error("no reconnectbin row in the recovery tables")
	}
	if !regexp.MustCompile(`(?m)^- Plugin: \S+libgstkvsrelay\.so, elements .*reconnectbin`).MatchString(doc) {
		t.Error("machine header does not say which plugin build was measured")
	}
	checkReportColumns(t, tables)
	if t.Failed() {
		t.Logf("report:\n%s", doc)
	}
}

// checkReportColumns checks the columns people read the results off: the
// recovery tables' start-limit recovery, ratio and minus-floor, the storm's
// ratio and lag, the overhead's slope and start-up, the memory scenario's
// network sources, the density ramp's cost columns and both its modes.
func checkReportColumns(t *testing.T, tables []mdTable) {
	t.Helper()
	recovery, ratios, minusFloors, density := 0, 0, 0, 0
	for _, tb := range tables {
		switch {
		case tb.column("recovery median (s)") >= 0:
			recovery++
			for _, col := range []string{"recovery under start limit median (s)", "ratio vs reconnectbin under start limit (x)",
				"own fresh-start floor (s)", "recovery minus floor (s)", "lag behind live at recovery median (s)", "start-limit hits (count)"} {
				if tb.column(col) < 0 {
					t.Errorf("recovery table %v has no %q column", tb.header, col)
				}
			}
			ratio, minus := tb.column("ratio vs reconnectbin under start limit (x)"), tb.column("recovery minus floor (s)")
			if ratio < 0 || minus < 0 {
				continue
			}
			// The numbers are for people to read; that the columns are
			// filled in (the floor scenario runs first) is checked over all
			// tables: a contender that did not recover shows n/a.
			for _, row := range tb.rows {
				if numberCell.MatchString(row[ratio]) {
					ratios++
				}
				if numberCell.MatchString(row[minus]) {
					minusFloors++
				}
			}
		case tb.column("time with real frames (%)") >= 0:
			for _, col := range []string{"real frames under start limit (%)", "lag behind live median (s)", "lag behind live at end (s)",
				"reconnectbin fallback=none real-frame time / this row's under start limit (x)"} {
				if tb.column(col) < 0 {
					t.Errorf("storm table %v has no %q column", tb.header, col)
				}
			}
			var names []string
			for _, row := range tb.rows {
				names = append(names, row[0])
			}
			for _, want := range []string{"reconnectbin fallback=none", "reconnectbin fallback=black", "reconnectbin fallback=image"} {
				if !strings.Contains(strings.Join(names, "\n"), want) {
					t.Errorf("storm table has no %q row (rows %q)", want, names)
				}
			}
		case strings.HasPrefix(tb.header[0], "Path"):
			for _, col := range []string{"without per frame (us)", "with reconnectbin per frame (us)", "extra per frame (us)", "start-up without (s)", "start-up with reconnectbin (s)"} {
				if tb.column(col) < 0 {
					t.Errorf("overhead table %v has no %q column", tb.header, col)
				}
			}
		case tb.column("frames delivered, worst relay (%)") >= 0:
			density++
			for _, col := range []string{"relays (count)", "CPU per relay (% of a core)", "RSS per relay (MiB)", "PSS per relay (MiB)", "camera CPU (% of a core)", "machine busy (%)", "holds"} {
				if tb.column(col) < 0 {
					t.Errorf("density table %v has no %q column", tb.header, col)
				}
			}
			modes := map[string]bool{}
			for _, row := range tb.rows {
				modes[row[0]] = true
			}
			if len(modes) != 2 {
				t.Errorf("density table has the modes %v, want per process and one process", modes)
			}
		case tb.header[0] == "Source" && tb.column("change median (value)") >= 0:
			var sources []string
			for _, row := range tb.rows {
				sources = append(sources, row[0])
			}
			for _, want := range []string{"tcpclientsrc", "souphttpsrc"} {
				if !strings.Contains(strings.Join(sources, "\n"), want) {
					t.Errorf("memory table has no network source %q (rows %q)", want, sources)
				}
			}
		}
	}
	if density != 1 {
		t.Errorf("report has %d density ramp tables, want 1", density)
	}
	if recovery < 5 {
		t.Errorf("report has %d recovery tables, want 5 (HLS A, B, C, TCP, SRT)", recovery)
	}
	if ratios == 0 || minusFloors == 0 {
		t.Errorf("the recovery tables have %d ratios and %d recovery-minus-floor numbers, want some of each", ratios, minusFloors)
	}
}
