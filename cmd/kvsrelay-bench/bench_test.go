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

func TestQuickBenchProducesParsableReport(t *testing.T) {
	pluginDir := os.Getenv("KVSRELAY_TEST_PLUGIN_DIR")
	if pluginDir == "" {
		local, _ := filepath.Abs(filepath.Join("..", "..", "build", "test-plugins"))
		if _, err := os.Stat(filepath.Join(local, "libgstkvsrelay.so")); err != nil {
			t.Skip("no plugin build: set KVSRELAY_TEST_PLUGIN_DIR or run make build")
		}
		pluginDir = local
	}
	if testing.Short() {
		t.Skip("the quick bench takes about 3 minutes")
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
	for _, section := range []string{"Fresh start", "HLS fault A", "HLS fault B", "HLS fault C", "MPEG-TS over TCP", "SRT", "Stall detection", "Fault storm", "Data-path overhead", "Memory", "Credentials"} {
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
}
