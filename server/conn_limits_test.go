package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/server/servertest"
)

// dialFrom connects to the server at addr (host:port) from the loopback address from.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// clientFrom is an HTTP client whose connections come from the loopback address from.
func clientFrom(from string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// TestSlowRequestBody: a request body that does not arrive within ReadBodyTimeout has its
// connection closed, whether it drips in under a Content-Length or in chunks, and however
// large it says it is; nothing is logged at ERROR for it. A body sent in pieces, but in time,
// reaches the handler whole.
func TestSlowRequestBody(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	ts := servertest.Start(t, server.Config{Registration: true}, slog.New(slog.NewTextHandler(logs, nil)))
	addr := strings.TrimPrefix(ts.URL, "http://")

	tests := []struct {
		name   string
		header string // request line and headers, without the blank line
		first  string // the body's start, sent with the headers
		drip   string // then sent a byte at a time, forever
		status int    // the status answered before the connection closes; 0: none
	}{
		{"content-length", "POST /api/auth/login HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 65000",
			`{"username":"`, "a", 0},
		{"chunked", "POST /api/auth/login HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked",
			"1\r\n{\r\n", "1\r\n \r\n", 0},
		{"over 64 KiB", "POST /api/auth/login HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 200000",
			`{"username":"`, "a", http.StatusRequestEntityTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialFrom(t, "127.0.0.1", addr)
			if _, err := io.WriteString(c, tc.header+"\r\nHost: kaiwa\r\n\r\n"+tc.first); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(500 * time.Millisecond):
					}
					if _, err := io.WriteString(c, tc.drip); err != nil {
						return
					}
				}
			}()
			limit := server.ReadBodyTimeout + 20*time.Second
			c.SetReadDeadline(time.Now().Add(limit))
			r := bufio.NewReader(c)
			if tc.status != 0 {
				resp, err := http.ReadResponse(r, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
				}
			}
			rest, err := io.ReadAll(r)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the connection was still open %v after the headers", limit)
			}
			if len(rest) > 0 {
				t.Fatalf("answered %q; want the connection closed", rest)
			}
		})
	}
	t.Run("in pieces, in time", func(t *testing.T) {
		t.Parallel()
		c := dialFrom(t, "127.0.0.1", addr)
		body := `{"username":"pieces","password":"correct horse"}`
		fmt.Fprintf(c, "POST /api/auth/register HTTP/1.1\r\nHost: kaiwa\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
		for _, piece := range []string{body[:10], body[10:30], body[30:]} {
			time.Sleep(200 * time.Millisecond)
			if _, err := io.WriteString(c, piece); err != nil {
				t.Fatal(err)
			}
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("status %d, want %d", resp.StatusCode, http.StatusCreated)
		}
	})
	t.Cleanup(func() {
		if strings.Contains(logs.String(), "level=ERROR") {
			t.Errorf("logged at ERROR:\n%s", logs)
		}
	})
}

// refusedPerIP reads kaiwa_tcp_connections_refused_total{cap="per_ip"} from /metrics, asked
// with client; -1 when it is not there.
func refusedPerIP(t *testing.T, client *http.Client, base string) int {
	t.Helper()
	if n, ok := servertest.Metrics(t, client, base)[`kaiwa_tcp_connections_refused_total{cap="per_ip"}`]; ok {
		return int(n)
	}
	return -1
}

// TestHealthzWhileOneAddressHoldsSlowBodies: one address that opens many more connections than
// its cap, each a request whose body never comes, gets the cap and has the rest closed at once;
// another address is answered meanwhile.
func TestHealthzWhileOneAddressHoldsSlowBodies(t *testing.T) {
	t.Parallel()
	const ipConnLimit, flood = 16, 300
	limit := server.TCPConnsPerIP(ipConnLimit)
	ts := servertest.Start(t, server.Config{IPConnLimit: ipConnLimit}, nil)
	addr := strings.TrimPrefix(ts.URL, "http://")
	for range flood {
		c := dialFrom(t, "127.0.0.1", addr)
		io.WriteString(c, "POST /api/auth/login HTTP/1.1\r\nHost: kaiwa\r\nContent-Type: application/json\r\nContent-Length: 65000\r\n\r\n{")
	}
	other := clientFrom("127.0.0.2")
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; n < flood-limit; n = refusedPerIP(t, other, ts.URL) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections from one address refused, want %d (%d opened, cap %d)", n, flood-limit, flood, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/healthz", nil)
	resp, err := other.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Fatalf("/healthz from another address: %d %q", resp.StatusCode, body)
	}
}
