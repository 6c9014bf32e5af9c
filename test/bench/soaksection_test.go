package main

import "testing"

func TestWithSoakSection(t *testing.T) {
	section := soakSectionBegin + "\n## Soak\n\ntable\n\n" + soakSectionEnd
	cases := []struct{ name, old, want string }{
		{"no old file", "", "# new\n"},
		{"old file without a soak section", "# old\n\n## Memory\n", "# new\n"},
		{"soak section kept at the end", "# old\n\n" + section + "\n\n## Memory\nold\n", "# new\n\n" + section + "\n"},
		{"damaged markers: left out", "# old\n" + soakSectionEnd + "\n" + soakSectionBegin + "\n", "# new\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := withSoakSection(tc.old, "# new\n"); got != tc.want {
				t.Errorf("withSoakSection = %q, want %q", got, tc.want)
			}
		})
	}
}
