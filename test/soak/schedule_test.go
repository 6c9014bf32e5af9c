package soak

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

var testTargets = []Target{
	{Name: "hls", Kinds: []Kind{ServerKill, SIGSTOP, HTTP404, HTTP503, PlaylistFreeze}},
	{Name: "tcp", Kinds: []Kind{ServerKill, TCPReset, TCPGarbage}},
	{Name: "rtsp", Kinds: []Kind{ServerKill, SIGSTOP}},
}

func testOptions(seed uint64) Options {
	return Options{Seed: seed, Window: 10 * time.Minute, MinHold: 2 * time.Second, MaxHold: 8 * time.Second,
		MinGap: 10 * time.Second, MaxGap: 25 * time.Second}
}

func TestPlanIsReplayableBySeed(t *testing.T) {
	a, err := Plan(testOptions(7), testTargets)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Plan(testOptions(7), testTargets)
	c, _ := Plan(testOptions(8), testTargets)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("the same seed gave two schedules")
	}
	if reflect.DeepEqual(a, c) {
		t.Errorf("seeds 7 and 8 gave the same schedule")
	}
}

func TestPlanShape(t *testing.T) {
	cases := []struct {
		name string
		opts Options
	}{
		{"ten minutes", testOptions(1)},
		{"one minute", Options{Seed: 2, Window: time.Minute, MinHold: 2 * time.Second, MaxHold: 5 * time.Second, MinGap: 8 * time.Second, MaxGap: 12 * time.Second}},
		{"1000 faults", Options{Seed: 3, Count: 1000, MinHold: 2 * time.Second, MaxHold: 8 * time.Second, MinGap: 10 * time.Second, MaxGap: 25 * time.Second}},
		{"equal bounds", Options{Seed: 4, Window: time.Minute, MinHold: time.Second, MaxHold: time.Second, MinGap: time.Second, MaxGap: time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			plan, err := Plan(o, testTargets)
			if err != nil {
				t.Fatal(err)
			}
			if o.Count > 0 && len(plan) != o.Count {
				t.Errorf("%d faults, asked for %d", len(plan), o.Count)
			}
			for i, f := range plan {
				if f.Index != i {
					t.Errorf("fault %d has index %d", i, f.Index)
				}
				if i > 0 && f.Start < plan[i-1].Start {
					t.Errorf("fault %d starts at %v, before fault %d at %v", i, f.Start, i-1, plan[i-1].Start)
				}
				if o.Count == 0 && f.Start >= o.Window {
					t.Errorf("fault %d starts at %v, outside the %v window", i, f.Start, o.Window)
				}
				if f.Hold < o.MinHold || f.Hold > o.MaxHold {
					t.Errorf("fault %d held %v, outside [%v, %v]", i, f.Hold, o.MinHold, o.MaxHold)
				}
			}
			for _, target := range testTargets {
				faults := ForTarget(plan, target.Name)
				if len(faults) == 0 {
					t.Errorf("%s got no fault", target.Name)
					continue
				}
				if faults[0].Start > o.MaxGap {
					t.Errorf("%s's first fault at %v, after its first gap (%v)", target.Name, faults[0].Start, o.MaxGap)
				}
				for k := 1; k < len(faults); k++ {
					gap := faults[k].Start - faults[k-1].End()
					if gap < o.MinGap || gap > o.MaxGap {
						t.Errorf("%s: %v between fault %d's end and the next fault, outside [%v, %v]", target.Name, gap, k-1, o.MinGap, o.MaxGap)
					}
				}
				// Every full round of len(Kinds) faults has each kind once.
				for round := 0; (round+1)*len(target.Kinds) <= len(faults); round++ {
					seen := map[Kind]int{}
					for _, f := range faults[round*len(target.Kinds) : (round+1)*len(target.Kinds)] {
						seen[f.Kind]++
					}
					for _, k := range target.Kinds {
						if seen[k] != 1 {
							t.Errorf("%s round %d has %s %d times: %v", target.Name, round, k, seen[k], seen)
						}
					}
				}
			}
		})
	}
}

func TestPlanRejectsBadOptions(t *testing.T) {
	good := testOptions(1)
	cases := []struct {
		name    string
		opts    func(Options) Options
		targets []Target
		want    string
	}{
		{"no relays", func(o Options) Options { return o }, nil, "no relays"},
		{"relay without kinds", func(o Options) Options { return o }, []Target{{Name: "x"}}, `"x" has no fault kinds`},
		{"duplicate relay", func(o Options) Options { return o }, []Target{{Name: "x", Kinds: []Kind{SIGSTOP}}, {Name: "x", Kinds: []Kind{SIGSTOP}}}, "unique"},
		{"neither count nor duration", func(o Options) Options { o.Window = 0; return o }, testTargets, "SOAK_FAULTS"},
		{"zero hold", func(o Options) Options { o.MinHold = 0; return o }, testTargets, "holds"},
		{"hold bounds swapped", func(o Options) Options { o.MaxHold = o.MinHold - 1; return o }, testTargets, "holds"},
		{"gap bounds swapped", func(o Options) Options { o.MaxGap = o.MinGap - 1; return o }, testTargets, "gaps"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Plan(tc.opts(good), tc.targets)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Plan error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
