package main

import (
	"fmt"
	"strings"
)

// Table is one scenario's result. Columns whose name ends in a unit in
// parentheses, e.g. "median (s)", hold numbers (or n/a, or censored ">x" /
// "<x" values); the others are labels.
type Table struct {
	Title   string
	Columns []string
	Rows    [][]string
	Notes   []string
	// Text, for a table without columns, is all the section says (a
	// scenario that skipped says why).
	Text string
}

// AddRow appends a row; it panics on a column-count mismatch because that
// is a bug in the bench itself, caught by its tests.
func (t *Table) AddRow(cells ...string) {
	if len(cells) != len(t.Columns) {
		panic(fmt.Sprintf("table %q: row has %d cells, want %d", t.Title, len(cells), len(t.Columns)))
	}
	t.Rows = append(t.Rows, cells)
}

// Markdown renders the table as a GitHub-flavoured markdown section.
func (t Table) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n", t.Title)
	if len(t.Columns) == 0 {
		fmt.Fprintf(&b, "%s\n\n", oneLine(t.Text))
		return b.String()
	}
	writeRow(&b, t.Columns)
	seps := make([]string, len(t.Columns))
	for i := range seps {
		seps[i] = "---"
	}
	writeRow(&b, seps)
	for _, row := range t.Rows {
		writeRow(&b, row)
	}
	if len(t.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range t.Notes {
			fmt.Fprintf(&b, "- %s\n", oneLine(n))
		}
	}
	b.WriteString("\n")
	return b.String()
}

func writeRow(b *strings.Builder, cells []string) {
	b.WriteString("|")
	for _, c := range cells {
		b.WriteString(" ")
		b.WriteString(strings.ReplaceAll(oneLine(c), "|", `\|`))
		b.WriteString(" |")
	}
	b.WriteString("\n")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
