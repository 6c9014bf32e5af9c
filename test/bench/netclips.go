package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// clipServers serve one short recorded clip over the network and then end
// the stream, so that a reconnectbin around a network source sees EOS and
// rebuilds its source over and over (the memory scenario): a TCP server
// that writes the clip as MPEG-TS and closes the connection, and an HTTP
// server with a finished (VOD) HLS playlist of one segment of it.
type clipServers struct {
	clip []byte
	tcp  net.Listener
	http *http.Server
	hln  net.Listener
	wg   sync.WaitGroup
}

// makeClip records frames of tiny H.264 in MPEG-TS into dir.
func (b *Bench) makeClip(dir string, frames int) ([]byte, error) {
	path := filepath.Join(dir, "clip.ts")
	if _, err := b.runCPU([]string{"-q", "videotestsrc", fmt.Sprintf("num-buffers=%d", frames), "!",
		"video/x-raw,width=64,height=48,framerate=25/1", "!", "x264enc", "speed-preset=ultrafast", "tune=zerolatency", "!",
		"h264parse", "!", "mpegtsmux", "!", "filesink", "location=" + path}, time.Minute); err != nil {
		return nil, fmt.Errorf("recording the clip: %w", err)
	}
	return os.ReadFile(path)
}

func startClipServers(clip []byte) (*clipServers, error) {
	c := &clipServers{clip: clip}
	var err error
	if c.tcp, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("clip server: %w", err)
	}
	if c.hln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		c.tcp.Close()
		return nil, fmt.Errorf("clip server: %w", err)
	}
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := c.tcp.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			go func() {
				defer conn.Close()
				_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
				_, _ = conn.Write(c.clip)
			}()
		}
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("/vod.m3u8", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		fmt.Fprint(w, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:0.200,\nclip.ts\n#EXT-X-ENDLIST\n")
	})
	mux.HandleFunc("/clip.ts", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "video/mp2t")
		_, _ = w.Write(c.clip)
	})
	c.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer c.wg.Done()
		_ = c.http.Serve(c.hln)
	}()
	return c, nil
}

// TCPPort is the port of the TCP clip server.
func (c *clipServers) TCPPort() int { return c.tcp.Addr().(*net.TCPAddr).Port }

// PlaylistURL is the VOD playlist's URL.
func (c *clipServers) PlaylistURL() string {
	return fmt.Sprintf("http://127.0.0.1:%d/vod.m3u8", c.hln.Addr().(*net.TCPAddr).Port)
}

func (c *clipServers) Close() {
	c.tcp.Close()
	_ = c.http.Close()
	c.wg.Wait()
}
