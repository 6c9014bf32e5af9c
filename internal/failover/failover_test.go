package failover

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/fielderr"
)

// step is one event the element reports, at a time in seconds since the
// start, then what the failover should say right after it.
type step struct {
	at    float64
	event func(f *Failover, now time.Time)
	// what is expected after the event (Tick at the same time).
	want    Source
	start   bool
	release bool
}

func started(src Source, gen uint64) func(*Failover, time.Time) {
	return func(f *Failover, _ time.Time) { f.Started(src, gen) }
}
func buffer(src Source, gen uint64) func(*Failover, time.Time) {
	return func(f *Failover, now time.Time) { f.Buffer(src, gen, now) }
}
func down(src Source) func(*Failover, time.Time) {
	return func(f *Failover, _ time.Time) { f.Down(src) }
}
func switched(src Source) func(*Failover, time.Time) {
	return func(f *Failover, _ time.Time) { f.Switched(src) }
}
func tick() func(*Failover, time.Time) { return func(*Failover, time.Time) {} }

func TestFailover(t *testing.T) {
	steady := 10 * time.Second
	cases := []struct {
		name  string
		steps []step
	}{
		{"the main alone: no backup is started while it never failed", []step{
			{at: 0, event: started(Main, 1), want: None},
			{at: 0.5, event: buffer(Main, 1), want: Main},
			{at: 0.5, event: switched(Main), want: Main},
			{at: 30, event: buffer(Main, 1), want: Main},
		}},
		{"a main that fails at the start starts the backup, which is wanted once up", []step{
			{at: 0, event: started(Main, 1), want: None},
			{at: 1, event: down(Main), want: None, start: true},
			{at: 1, event: started(Backup, 1), want: None},
			{at: 1.5, event: buffer(Backup, 1), want: Backup},
			{at: 1.5, event: switched(Backup), want: Backup},
			{at: 2, event: started(Main, 2), want: Backup},
		}},
		{"the output stays on the backup until the main has been up for MainSteadyTime, then the backup is released", []step{
			{at: 0, event: started(Main, 1)},
			{at: 0.2, event: buffer(Main, 1), want: Main},
			{at: 0.2, event: switched(Main), want: Main},
			{at: 5, event: down(Main), want: None, start: true},
			{at: 5, event: started(Backup, 1), want: None},
			{at: 5.3, event: buffer(Backup, 1), want: Backup},
			{at: 5.3, event: switched(Backup), want: Backup},
			{at: 7, event: started(Main, 2), want: Backup},
			{at: 7.5, event: buffer(Main, 2), want: Backup},
			{at: 17.4, event: buffer(Main, 2), want: Backup},
			{at: 17.5, event: buffer(Main, 2), want: Main},
			{at: 17.5, event: tick(), want: Main},
			{at: 17.6, event: switched(Main), want: Main, release: true},
			{at: 17.7, event: down(Backup), want: Main},
		}},
		{"the main turns steady on the clock too (Tick), not only on its buffers", []step{
			{at: 0, event: started(Main, 1)},
			{at: 1, event: down(Main), start: true},
			{at: 1, event: started(Backup, 1)},
			{at: 1.2, event: buffer(Backup, 1), want: Backup},
			{at: 1.2, event: switched(Backup), want: Backup},
			{at: 2, event: started(Main, 2), want: Backup},
			{at: 2.1, event: buffer(Main, 2), want: Backup},
			{at: 12.2, event: tick(), want: Main},
		}},
		{"a main that flaps never takes the output back from the backup", []step{
			{at: 0, event: started(Main, 1)},
			{at: 1, event: down(Main), start: true},
			{at: 1, event: started(Backup, 1)},
			{at: 1.2, event: buffer(Backup, 1), want: Backup},
			{at: 1.2, event: switched(Backup), want: Backup},
			{at: 2, event: started(Main, 2), want: Backup},
			{at: 2.1, event: buffer(Main, 2), want: Backup},
			{at: 9, event: down(Main), want: Backup},
			{at: 10, event: started(Main, 3), want: Backup},
			{at: 10.1, event: buffer(Main, 3), want: Backup},
			{at: 19, event: buffer(Main, 3), want: Backup},
		}},
		{"the backup failing while it feeds hands the output to a main that is up, steady or not", []step{
			{at: 0, event: started(Main, 1)},
			{at: 1, event: down(Main), start: true},
			{at: 1, event: started(Backup, 1)},
			{at: 1.2, event: buffer(Backup, 1), want: Backup},
			{at: 1.2, event: switched(Backup), want: Backup},
			{at: 2, event: started(Main, 2), want: Backup},
			{at: 2.1, event: buffer(Main, 2), want: Backup},
			{at: 3, event: down(Backup), want: Main},
		}},
		{"both down: none, and the backup is started again (its backoff is the element's)", []step{
			{at: 0, event: started(Main, 1)},
			{at: 1, event: down(Main), start: true},
			{at: 1, event: started(Backup, 1)},
			{at: 1.2, event: buffer(Backup, 1), want: Backup},
			{at: 1.2, event: switched(Backup), want: Backup},
			{at: 3, event: down(Backup), want: None, start: true},
			{at: 3.5, event: started(Backup, 2), want: None},
			{at: 3.7, event: buffer(Backup, 2), want: Backup},
		}},
		{"a main back before the backup delivered is taken at once, and the backup kept until the main is steady", []step{
			{at: 0, event: started(Main, 1)},
			{at: 0.2, event: buffer(Main, 1), want: Main},
			{at: 0.2, event: switched(Main), want: Main},
			{at: 5, event: down(Main), start: true},
			{at: 5, event: started(Backup, 1)},
			{at: 5.3, event: started(Main, 2)},
			{at: 5.5, event: buffer(Main, 2), want: Main},
			{at: 5.5, event: switched(Main), want: Main},
			{at: 5.6, event: buffer(Backup, 1), want: Main},
			{at: 15.5, event: tick(), want: Main, release: true},
		}},
		{"the main failing again before the backup was released goes straight back to the running backup", []step{
			{at: 0, event: started(Main, 1)},
			{at: 1, event: down(Main), start: true},
			{at: 1, event: started(Backup, 1)},
			{at: 1.2, event: buffer(Backup, 1), want: Backup},
			{at: 1.2, event: switched(Backup), want: Backup},
			{at: 2, event: started(Main, 2), want: Backup},
			{at: 2.1, event: buffer(Main, 2), want: Backup},
			{at: 3, event: down(Backup), want: Main, start: false},
			{at: 3, event: switched(Main), want: Main},
			{at: 4, event: down(Main), want: None, start: true},
		}},
		{"buffers of a replaced or downed instance change nothing", []step{
			{at: 0, event: started(Main, 1)},
			{at: 0.1, event: buffer(Main, 1), want: Main},
			{at: 0.1, event: switched(Main), want: Main},
			{at: 1, event: started(Main, 2), want: None},
			{at: 1.1, event: buffer(Main, 1), want: None},
			{at: 1.3, event: buffer(Main, 2), want: Main},
			{at: 2, event: down(Main), want: None, start: true},
			{at: 2.1, event: buffer(Main, 2), want: None, start: true},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := New(Options{MainSteadyTime: steady})
			if err != nil {
				t.Fatal(err)
			}
			epoch := time.Unix(1_000_000, 0)
			for i, s := range tc.steps {
				now := epoch.Add(time.Duration(s.at * float64(time.Second)))
				s.event(f, now)
				p := f.Tick(now)
				if p.Want != s.want || f.Want() != s.want || p.StartBackup != s.start || p.ReleaseBackup != s.release ||
					(p.StartBackup && !f.BackupWanted()) {
					t.Fatalf("step %d (t=%vs): want=%v start=%v release=%v; expected want=%v start=%v release=%v",
						i, s.at, p.Want, p.StartBackup, p.ReleaseBackup, s.want, s.start, s.release)
				}
			}
		})
	}
}

func TestZeroSteadyTimeSwitchesBackOnTheFirstBuffer(t *testing.T) {
	f, _ := New(Options{})
	now := time.Unix(0, 0)
	f.Started(Main, 1)
	f.Down(Main)
	f.Started(Backup, 1)
	f.Buffer(Backup, 1, now)
	f.Switched(Backup)
	f.Started(Main, 2)
	f.Buffer(Main, 2, now)
	if got := f.Want(); got != Main {
		t.Fatalf("want %v with MainSteadyTime 0, expected main", got)
	}
}

func TestNegativeSteadyTimeIsRejected(t *testing.T) {
	_, err := New(Options{MainSteadyTime: -time.Second})
	var fe *fielderr.Error
	if !errors.As(err, &fe) || fe.Field != "MainSteadyTime" {
		t.Fatalf("err = %v, want a fielderr naming MainSteadyTime", err)
	}
}

// Streaming threads report buffers and switches while the loop ticks.
func TestConcurrentUse(t *testing.T) {
	f, _ := New(Options{MainSteadyTime: time.Millisecond})
	f.Started(Main, 1)
	f.Started(Backup, 1)
	var wg sync.WaitGroup
	start := time.Now()
	for _, src := range []Source{Main, Backup} {
		wg.Add(1)
		go func(src Source) {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				f.Buffer(src, 1, start.Add(time.Duration(i)*time.Millisecond))
				if f.Want() == src {
					f.Switched(src)
				}
			}
		}(src)
	}
	for i := 0; i < 1000; i++ {
		f.Tick(start.Add(time.Duration(i) * time.Millisecond))
	}
	wg.Wait()
	if got := f.Want(); got != Main {
		t.Fatalf("want %v once the main is steady, expected main", got)
	}
}
