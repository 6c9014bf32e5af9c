package servers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const hlsSegmentTimeout = 30 * time.Second

func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, body
}

func fetchPlaylist(t *testing.T, s *HLSServer) ([]byte, Playlist) {
	t.Helper()
	code, body := httpGet(t, s.PlaylistURL())
	if code != http.StatusOK {
		t.Fatalf("GET playlist: status %d", code)
	}
	pl, err := ParsePlaylist(body)
	if err != nil {
		t.Fatalf("served playlist invalid: %v\n%s", err, body)
	}
	return body, pl
}

func firstIndex(t *testing.T, pl Playlist) int {
	t.Helper()
	if len(pl.Segments) == 0 {
		t.Fatalf("playlist has no segments: %+v", pl)
	}
	n, ok := SegmentIndex(pl.Segments[0])
	if !ok {
		t.Fatalf("unexpected segment name %q", pl.Segments[0])
	}
	return n
}

func lastIndex(t *testing.T, pl Playlist) int {
	t.Helper()
	n, ok := SegmentIndex(pl.Segments[len(pl.Segments)-1])
	if !ok {
		t.Fatalf("unexpected segment name %q", pl.Segments[len(pl.Segments)-1])
	}
	return n
}

// TestHLSServer runs the fault modes against one server, in order, to keep
// the number of encoders (and the run time) down.
func TestHLSServer(t *testing.T) {
	t.Parallel()
	s := NewHLSServer(t, HLSOptions{Media: MediaOptions{Audio: true}})

	_, pl := fetchPlaylist(t, s)
	if pl.MediaSequence != 0 || pl.TargetDuration != 1 || len(pl.Segments) < 2 {
		t.Fatalf("startup playlist = %+v, want media sequence 0, target 1 s, >= 2 segments", pl)
	}
	code, firstGenSegment0 := httpGet(t, s.SegmentURL(SegmentName(0)))
	if code != http.StatusOK || len(firstGenSegment0) < 188 || firstGenSegment0[0] != 0x47 {
		t.Fatalf("GET segment00000.ts: status %d, %d bytes, want 200 and MPEG-TS", code, len(firstGenSegment0))
	}

	t.Run("ffprobe sees h264 and aac", func(t *testing.T) {
		requireH264(t, s.PlaylistURL(), 320, 240, true)
	})

	t.Run("hlsdemux plays it", func(t *testing.T) {
		requireGstClientPlays(t, "souphttpsrc location="+s.PlaylistURL()+" ! hlsdemux ! tsdemux ! h264parse")
	})

	t.Run("frozen playlist stops changing", func(t *testing.T) {
		s.FreezePlaylist(true)
		frozen, pl := fetchPlaylist(t, s)
		if err := s.WaitSegments(lastIndex(t, pl)+3, hlsSegmentTimeout); err != nil {
			t.Fatal(err)
		}
		again, _ := fetchPlaylist(t, s)
		if !bytes.Equal(frozen, again) {
			t.Fatalf("frozen playlist changed:\n%s\n---\n%s", frozen, again)
		}
		s.FreezePlaylist(false)
		_, live := fetchPlaylist(t, s)
		if lastIndex(t, live) <= lastIndex(t, pl) {
			t.Fatalf("after unfreeze playlist still ends at %d", lastIndex(t, live))
		}
	})

	t.Run("status faults", func(t *testing.T) {
		_, pl := fetchPlaylist(t, s)
		seg := s.SegmentURL(pl.Segments[len(pl.Segments)-1])
		s.SegmentStatus(http.StatusServiceUnavailable)
		if code, _ := httpGet(t, seg); code != http.StatusServiceUnavailable {
			t.Errorf("segment with SegmentStatus(503): %d", code)
		}
		if code, _ := httpGet(t, s.PlaylistURL()); code != http.StatusOK {
			t.Errorf("playlist with only segments faulted: %d", code)
		}
		s.SegmentStatus(0)
		s.PlaylistStatus(http.StatusNotFound)
		if code, _ := httpGet(t, s.PlaylistURL()); code != http.StatusNotFound {
			t.Errorf("playlist with PlaylistStatus(404): %d", code)
		}
		s.PlaylistStatus(0)
		if code, _ := httpGet(t, seg); code != http.StatusOK {
			t.Errorf("segment after clearing faults: %d", code)
		}
	})

	t.Run("mid-segment drop gives a short body", func(t *testing.T) {
		_, pl := fetchPlaylist(t, s)
		url := s.SegmentURL(pl.Segments[len(pl.Segments)-1])
		_, full := httpGet(t, url)
		s.DropMidSegment(true)
		defer s.DropMidSegment(false)
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		if resp.ContentLength != int64(len(full)) {
			t.Errorf("Content-Length %d, want the full %d", resp.ContentLength, len(full))
		}
		body, err := io.ReadAll(resp.Body)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("reading dropped segment: err %v, want unexpected EOF", err)
		}
		if len(body) >= len(full) || len(body) == 0 {
			t.Errorf("dropped segment body %d bytes, want between 0 and %d", len(body), len(full))
		}
	})

	t.Run("HTML page instead of the playlist", func(t *testing.T) {
		s.HTMLPlaylist(true)
		code, body := httpGet(t, s.PlaylistURL())
		s.HTMLPlaylist(false)
		if code != http.StatusOK || !strings.Contains(string(body), "<html>") {
			t.Errorf("playlist with HTMLPlaylist(true): status %d, body %q, want 200 and an HTML page", code, body)
		}
		if _, err := ParsePlaylist(body); err == nil {
			t.Errorf("the HTML page parses as a playlist")
		}
		fetchPlaylist(t, s)
	})

	t.Run("truncated segment is a complete short response", func(t *testing.T) {
		_, pl := fetchPlaylist(t, s)
		url := s.SegmentURL(pl.Segments[len(pl.Segments)-1])
		_, full := httpGet(t, url)
		s.TruncateSegments(true)
		code, cut := httpGet(t, url) // fails the test on a body shorter than its Content-Length
		s.TruncateSegments(false)
		if code != http.StatusOK || len(cut) != len(full)/3 || !bytes.Equal(cut, full[:len(cut)]) {
			t.Errorf("truncated segment: status %d, %d bytes, want 200 and the first %d of %d bytes", code, len(cut), len(full)/3, len(full))
		}
		if _, again := httpGet(t, url); len(again) != len(full) {
			t.Errorf("segment after TruncateSegments(false): %d bytes, want %d", len(again), len(full))
		}
	})

	t.Run("HTTP down and up on the same port", func(t *testing.T) {
		s.StopHTTP()
		requireRefused(t, fmt.Sprintf("127.0.0.1:%d", s.Port()))
		if err := s.StartHTTP(); err != nil {
			t.Fatal(err)
		}
		fetchPlaylist(t, s)
	})

	t.Run("request counting", func(t *testing.T) {
		s.ResetRequestCounts()
		fetchPlaylist(t, s)
		fetchPlaylist(t, s)
		httpGet(t, s.SegmentURL("segment99999.ts"))
		if got := s.Requests("/" + PlaylistName); got != 2 {
			t.Errorf("playlist requests = %d, want 2", got)
		}
		if got := s.SegmentRequests(); got != 1 {
			t.Errorf("segment requests = %d, want 1 (counts: %v)", got, s.RequestCounts())
		}
	})

	if testing.Short() {
		return
	}

	t.Run("encoder restart continuing numbering", func(t *testing.T) {
		_, before := fetchPlaylist(t, s)
		if err := s.RestartEncoder(false); err != nil {
			t.Fatal(err)
		}
		if err := s.WaitSegments(1, hlsSegmentTimeout); err != nil {
			t.Fatal(err)
		}
		_, after := fetchPlaylist(t, s)
		if after.MediaSequence <= before.MediaSequence || firstIndex(t, after) <= lastIndex(t, before) {
			t.Fatalf("numbering did not continue: before %+v, after %+v", before, after)
		}
		code, body := httpGet(t, s.SegmentURL(after.Segments[0]))
		if code != http.StatusOK || len(body) == 0 {
			t.Fatalf("renumbered segment %s: status %d, %d bytes", after.Segments[0], code, len(body))
		}
	})

	t.Run("encoder restart from 0", func(t *testing.T) {
		if err := s.RestartEncoder(true); err != nil {
			t.Fatal(err)
		}
		if err := s.WaitSegments(2, hlsSegmentTimeout); err != nil {
			t.Fatal(err)
		}
		_, pl := fetchPlaylist(t, s)
		if pl.MediaSequence != 0 || pl.Segments[0] != SegmentName(0) {
			t.Fatalf("after RestartEncoder(true) playlist = %+v, want media sequence 0 from segment00000.ts", pl)
		}
		code, body := httpGet(t, s.SegmentURL(SegmentName(0)))
		if code != http.StatusOK || bytes.Equal(body, firstGenSegment0) {
			t.Fatalf("segment00000.ts after restart: status %d, same bytes as the first encoder's: %v",
				code, bytes.Equal(body, firstGenSegment0))
		}
	})

	t.Run("encoder restart behind frozen playlist", func(t *testing.T) {
		// Let the current generation move past 0 so the restart is visible.
		if err := s.WaitSegments(4, hlsSegmentTimeout); err != nil {
			t.Fatal(err)
		}
		_, before := fetchPlaylist(t, s)
		if before.MediaSequence == 0 && lastIndex(t, before) < 3 {
			t.Fatalf("precondition: playlist %+v has not advanced", before)
		}
		generation := s.Generation()
		done := make(chan error, 1)
		go func() { done <- s.RestartEncoderBehindFrozenPlaylist(2, hlsSegmentTimeout) }()
		// While the new encoder works, clients keep seeing the old playlist.
		waitFor(t, "new encoder generation", 20*time.Second, func() bool { return s.Generation() > generation })
		frozen, _ := fetchPlaylist(t, s)
		if !strings.Contains(string(frozen), before.Segments[len(before.Segments)-1]) {
			t.Errorf("during restart, served playlist lost %s:\n%s", before.Segments[len(before.Segments)-1], frozen)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		_, after := fetchPlaylist(t, s)
		if after.MediaSequence != 0 || after.Segments[0] != SegmentName(0) || len(after.Segments) < 2 {
			t.Fatalf("after unfreeze playlist = %+v, want sequence restarted at 0 with >= 2 segments", after)
		}
	})
}

func TestParsePlaylistRejectsPartialAndShifts(t *testing.T) {
	full := "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-TARGETDURATION:1\n\n#EXTINF:1,\nsegment00004.ts\n#EXTINF:1,\nsegment00005.ts\n"
	tests := []struct {
		name    string
		data    string
		wantErr bool
		want    Playlist
	}{
		{name: "full", data: full, want: Playlist{MediaSequence: 4, TargetDuration: 1, Segments: []string{"segment00004.ts", "segment00005.ts"}}},
		{name: "empty", data: "", wantErr: true},
		{name: "cut before target duration", data: full[:30], wantErr: true},
		{name: "not a playlist", data: "<html>", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePlaylist([]byte(tt.data))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}

	shifted, err := ParsePlaylist(shiftPlaylist([]byte(full), 10))
	if err != nil {
		t.Fatal(err)
	}
	if shifted.MediaSequence != 14 || shifted.Segments[0] != "segment00014.ts" || shifted.Segments[1] != "segment00015.ts" {
		t.Fatalf("shifted by 10: %+v", shifted)
	}
}
