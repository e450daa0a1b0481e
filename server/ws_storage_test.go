package server_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/server/store"
	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// TestStorageFull runs Kaiwa on a 2 MiB tmpfs, fills the disk and sends: each send that cannot be
// stored gets `unavailable` (ref = its id), the socket stays open, /healthz answers 503, reads
// and sign-ins go on; once space is freed a send succeeds and /healthz is 200 again; after a
// restart every acked message is there. It needs to mount a tmpfs (root, as in CI).
func TestStorageFull(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("SKIPPED: cannot mount a size-limited tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	path := filepath.Join(dir, "kaiwa.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	stClosed := false
	defer func() {
		if !stClosed {
			st.Close()
		}
	}()
	var logs syncBuffer
	srv, err := server.New(server.Config{Registration: true, SecureCookies: "never"}, st, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	ts := &testServer{Server: hs, st: st, srv: srv}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			srv.Close()
			hs.Close()
		}
	}
	defer stop()
	healthz := func() int {
		t.Helper()
		resp, err := http.Get(hs.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	tb := ts.register(t, "alice")
	s := ts.connect(t, tb.AccessToken)
	s.write(proto.Join{Type: proto.TypeJoin, Room: "general"})
	s.next(proto.TypeJoined)
	var acked []string
	// send sends one message and returns the frame that answers it: an ack or an error.
	send := func(id, text string) proto.Frame {
		t.Helper()
		s.write(proto.Send{Type: proto.TypeSend, Room: "general", ID: id, Text: text})
		deadline := time.After(30 * time.Second)
		for {
			select {
			case f, ok := <-s.frames:
				if !ok {
					t.Fatalf("socket closed after send %s: %v", id, <-s.closed)
				}
				if f.Type == proto.TypeAck && f.ID == id {
					acked = append(acked, id)
					return f
				}
				if f.Type == proto.TypeError && f.Ref == id {
					return f
				}
			case <-deadline:
				t.Fatalf("no answer to send %s within 30 s", id)
			}
		}
	}
	if f := send("first", "before the disk fills"); f.Type != proto.TypeAck {
		t.Fatalf("first send: %+v", f)
	}

	// Fill the disk.
	filler := filepath.Join(dir, "filler")
	fill, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := fill.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	fill.Close()

	big := strings.Repeat("字", 4000) // 12 KB: the file must grow
	var failed proto.Frame
	for i := 0; failed.Type == ""; i++ {
		if i == 100 {
			t.Fatal("100 sends stored on a full disk")
		}
		f := send("full"+strconv.Itoa(i), big)
		if f.Type == proto.TypeError {
			failed = f
		}
		time.Sleep(60 * time.Millisecond) // within the send rate
	}
	t.Logf("on a full disk: %d sends acked, then %q (ref %s)", len(acked), failed.Code, failed.Ref)
	if failed.Code != proto.CodeUnavailable {
		t.Fatalf("error %+v, want %q", failed, proto.CodeUnavailable)
	}
	if code := healthz(); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz = %d while commits fail, want 503", code)
	}
	// The socket stays open: a second failing send gets its own error.
	if f := send("again", big); f.Type != proto.TypeError || f.Code != proto.CodeUnavailable {
		t.Fatalf("second send on a full disk: %+v", f)
	}
	// Reads and sign-ins go on.
	api := client.NewAPI(hs.URL, nil)
	ctx := context.Background()
	page, err := api.Messages(ctx, tb.AccessToken, "general", client.PageQuery{})
	if err != nil || len(page.Messages) != len(acked) {
		t.Fatalf("history on a full disk: %d messages, %v; want %d", len(page.Messages), err, len(acked))
	}
	if _, err := api.Login(ctx, "alice", "password-alice"); err != nil {
		t.Errorf("sign-in on a full disk: %v", err)
	}
	waitMetricAtLeast(t, hs.URL, "kaiwa_commit_failures_total", 2)
	// The log says so once per 10 s, not once per failed commit.
	if n := strings.Count(logs.String(), "msg=commit_failed"); n != 1 {
		t.Errorf("%d commit_failed log lines for two failed commits within 10 s, want 1:\n%s", n, logs.String())
	}

	// Free space: the failed send goes through on retry, and /healthz recovers.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if f := send(failed.Ref, big); f.Type != proto.TypeAck {
		t.Fatalf("send after space was freed: %+v", f)
	}
	if code := healthz(); code != http.StatusOK {
		t.Errorf("/healthz = %d after a successful commit, want 200", code)
	}
	if !strings.Contains(logs.String(), "msg=commit_recovered") {
		t.Errorf("no commit_recovered log line:\n%s", logs.String())
	}

	// Restart: every acked message is there.
	stop()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	stClosed = true
	st2, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if err := st2.Check(); err != nil {
		t.Fatal(err)
	}
	msgs, _, err := st2.Page("general", nil, new(uint64), proto.PageMax)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, m := range msgs {
		stored[m.ID] = true
	}
	for _, id := range acked {
		if !stored[id] {
			t.Errorf("acked message %s lost after the restart", id)
		}
	}
	if len(msgs) != len(acked) {
		t.Errorf("%d messages stored, %d acked", len(msgs), len(acked))
	}
}
