package main

import (
	"os"
	"strings"
)

// The section make soak (test/soak) keeps in the same file; the bench
// rewrites everything else. The markers must match test/soak's
// SectionBegin and SectionEnd (cmd/ never imports test/).
const (
	soakSectionBegin = "<!-- soak: begin (written by make soak; edits here are replaced) -->"
	soakSectionEnd   = "<!-- soak: end -->"
)

// withSoakSection appends to a freshly generated report the soak section
// of the file it replaces (old), if that has a whole one, so make bench
// does not erase make soak's results.
func withSoakSection(old, report string) string {
	begin := strings.Index(old, soakSectionBegin)
	end := strings.Index(old, soakSectionEnd)
	if begin < 0 || end < begin {
		return report
	}
	return strings.TrimRight(report, "\n") + "\n\n" + old[begin:end+len(soakSectionEnd)] + "\n"
}

// readOld is the current content of path, "" when it does not exist yet
// or cannot be read (the bench then writes its report alone).
func readOld(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(data)
}
