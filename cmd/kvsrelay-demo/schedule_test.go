package main

import (
	"strings"
	"testing"
	"time"
)

func TestPlanSchedule(t *testing.T) {
	s := time.Second
	tests := []struct {
		name    string
		total   time.Duration
		want    []phase // nil: only check the invariants
		wantErr string
	}{
		{
			name:  "default 45s is the reference timetable",
			total: 45 * s,
			want: []phase{
				{sourceUp, 0, 8 * s},
				{sourceKilled, 8 * s, 5 * s},
				{sourceUp, 13 * s, 11 * s},
				{sourceFrozen, 24 * s, 6 * s},
				{sourceUp, 30 * s, 15 * s},
			},
		},
		{
			name:  "90s doubles every phase",
			total: 90 * s,
			want: []phase{
				{sourceUp, 0, 16 * s},
				{sourceKilled, 16 * s, 10 * s},
				{sourceUp, 26 * s, 22 * s},
				{sourceFrozen, 48 * s, 12 * s},
				{sourceUp, 60 * s, 30 * s},
			},
		},
		{
			name:  "20s keeps the freeze well above the 2s stall timeout",
			total: 20 * s,
			want: []phase{
				{sourceUp, 0, 3600 * time.Millisecond},
				{sourceKilled, 3600 * time.Millisecond, 3 * s},
				{sourceUp, 6600 * time.Millisecond, 4900 * time.Millisecond},
				{sourceFrozen, 11500 * time.Millisecond, 4 * s},
				{sourceUp, 15500 * time.Millisecond, 4500 * time.Millisecond},
			},
		},
		{name: "odd length still adds up", total: 33*s + 300*time.Millisecond},
		{name: "too short", total: 19 * s, wantErr: "-duration 19s is too short"},
		{name: "zero", total: 0, wantErr: "too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := planSchedule(tt.total)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("planSchedule(%v) error = %v, want one containing %q", tt.total, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("planSchedule(%v): %v", tt.total, err)
			}
			if tt.want != nil {
				if len(got) != len(tt.want) {
					t.Fatalf("got %d phases %v, want %v", len(got), got, tt.want)
				}
				for i := range got {
					if got[i] != tt.want[i] {
						t.Errorf("phase %d = %+v, want %+v", i, got[i], tt.want[i])
					}
				}
			}
			// Invariants for every length: back to back, ending at total,
			// every phase at or above its floor.
			if got.total() != tt.total {
				t.Errorf("timetable ends at %v, want %v", got.total(), tt.total)
			}
			var at time.Duration
			for i, p := range got {
				if p.Start != at {
					t.Errorf("phase %d starts at %v, want %v (phases must be back to back)", i, p.Start, at)
				}
				if p.Length < timetable[i].floor {
					t.Errorf("phase %d (%v) lasts %v, below its floor %v", i, p.State, p.Length, timetable[i].floor)
				}
				at = p.End()
			}
			if f := got.faults(); len(f) != 2 || f[0].State != sourceKilled || f[1].State != sourceFrozen {
				t.Errorf("faults() = %+v, want a kill then a freeze", f)
			}
		})
	}
}
