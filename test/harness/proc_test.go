package harness

import (
	"os"
	"testing"
)

func TestParseProcStatus(t *testing.T) {
	cases := []struct {
		name    string
		status  string
		want    ProcSample
		wantErr bool
	}{
		{"running process", "Name:\tgst-launch-1.0\nState:\tS (sleeping)\nVmPeak:\t  900000 kB\nVmRSS:\t   81234 kB\nThreads:\t37\n",
			ProcSample{RSSKiB: 81234, Threads: 37}, false},
		{"zombie has no memory lines", "Name:\tgst-launch-1.0\nState:\tZ (zombie)\nThreads:\t1\n", ProcSample{}, true},
		{"garbled number", "VmRSS:\t  12x kB\nThreads:\t3\n", ProcSample{}, true},
		{"empty", "", ProcSample{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseProcStatus([]byte(tc.status))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ParseProcStatus = %+v, %v; want %+v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestSampleProcessSelf(t *testing.T) {
	s, err := SampleProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSSKiB <= 0 || s.Threads <= 0 || s.FDs < 3 {
		t.Errorf("sample of this test process: %+v, want RSS, threads and at least stdin/out/err", s)
	}
}
