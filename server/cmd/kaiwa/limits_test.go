//go:build unix

package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/server/connlimit"
	"kaiwa/server/servertest"
)

// TestServeHealthzUnderSlowBodyFlood: `kaiwa serve` allowed 512 open files; one address opens
// 1 000 sign-ins whose bodies never come, enough to take every descriptor. The server keeps the
// address to its cap per IP, or, with none, to the total cap below the file limit; it closes the
// rest at once, never runs out of descriptors, and answers /healthz to another address meanwhile.
func TestServeHealthzUnderSlowBodyFlood(t *testing.T) {
	t.Parallel()
	const fileLimit, flood = 512, 1000
	tests := []struct {
		ipConnLimit int
		cap         string // the cap the flood meets
		held        int    // connections of the flood the server holds
	}{
		{256, connlimit.ReasonPerIP, server.TCPConnsPerIP(256)},
		{0, connlimit.ReasonTotal, connlimit.ForFileLimit(0, fileLimit).Total},
	}
	for _, tc := range tests {
		t.Run("ip-conn-limit "+strconv.Itoa(tc.ipConnLimit), func(t *testing.T) {
			cmd := kaiwaCommand(context.Background(), nil, "serve", "-addr", "127.0.0.1:0", "-log-format", "json",
				"-db", filepath.Join(t.TempDir(), "kaiwa.db"), "-ip-conn-limit", strconv.Itoa(tc.ipConnLimit))
			// ulimit -n sets the soft and the hard limit, so the Go runtime cannot raise it.
			cmd.Args = append([]string{"sh", "-c", "ulimit -n " + strconv.Itoa(fileLimit) + ` && exec "$0" "$@"`}, cmd.Args...)
			cmd.Path = "/bin/sh"
			p := startServing(t, cmd)
			addr := strings.TrimPrefix(p.base, "http://")

			from := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, Timeout: 30 * time.Second}
			for range flood {
				c, err := from.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				io.WriteString(c, "POST /api/auth/login HTTP/1.1\r\nHost: kaiwa\r\nContent-Type: application/json\r\nContent-Length: 65000\r\n\r\n{")
			}

			otherDialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
			other := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: otherDialer.DialContext, DisableKeepAlives: true}}
			deadline := time.Now().Add(30 * time.Second)
			for n := -1; n < flood-tc.held; n = refused(t, other, p.base, tc.cap) {
				if time.Now().After(deadline) {
					t.Fatalf("%d connections refused to one address over the %s cap, want %d; log:\n%s", n, tc.cap, flood-tc.held, p.stderr)
				}
				time.Sleep(50 * time.Millisecond)
			}
			resp, err := other.Get(p.base + "/healthz")
			if err != nil {
				t.Fatalf("/healthz from another address: %v; log:\n%s", err, p.stderr)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("/healthz from another address: %d", resp.StatusCode)
			}
			if log := p.stderr.String(); strings.Contains(log, "too many open files") {
				t.Fatalf("the server ran out of descriptors:\n%s", log)
			}
		})
	}
}

// refused reads kaiwa_tcp_connections_refused_total for the given cap from the server's
// /metrics, asked with client; -1 when it is not there.
func refused(t *testing.T, client *http.Client, base, capName string) int {
	t.Helper()
	if n, ok := servertest.Metrics(t, client, base)[`kaiwa_tcp_connections_refused_total{cap="`+capName+`"}`]; ok {
		return int(n)
	}
	return -1
}
