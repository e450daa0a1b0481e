package auth

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kaiwa/server/store"
)

// FuzzRefreshCookie feeds arbitrary refresh cookie values to the parser and to Refresh and
// Logout over a real database with one live session. In an input, SID and SECRET stand for that
// session's real id and secret, so the seeds under testdata/fuzz/FuzzRefreshCookie can aim near
// a valid token. Nothing may panic; only a token the session issued may refresh; and no value
// that is not one of its tokens may sign the session out.
func FuzzRefreshCookie(f *testing.F) {
	st, err := store.Open(filepath.Join(f.TempDir(), "kaiwa.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	a, err := New(st, Config{Now: func() time.Time { return fuzzNow }, HashConcurrency: 1})
	if err != nil {
		f.Fatal(err)
	}
	u, err := st.CreateUser("alice", "unused", false)
	if err != nil {
		f.Fatal(err)
	}
	g, err := a.startSession(u)
	if err != nil {
		f.Fatal(err)
	}
	sid, secret, _ := strings.Cut(g.Refresh, ".")
	// With the clock frozen, every token the session hands out stays usable (rotated ones are
	// within their grace), until it falls out of what the session remembers.
	issued := map[string]bool{g.Refresh: true}

	f.Fuzz(func(t *testing.T, value string) {
		value = strings.ReplaceAll(strings.ReplaceAll(value, "SID", sid), "SECRET", secret)
		if s, sec, ok := splitRefresh(value); ok {
			if s == "" || sec == "" || strings.Contains(s, ".") || s+"."+sec != value || len(value) > 256 {
				t.Fatalf("splitRefresh(%q) = %q, %q, true", value, s, sec)
			}
		}
		got, err := a.Refresh(context.Background(), value)
		switch {
		case err == nil:
			if !issued[value] {
				t.Fatalf("Refresh(%q) succeeded with a token the session never issued", value)
			}
			issued[got.Refresh] = true
		case !errors.Is(err, ErrUnauthorized):
			t.Fatalf("Refresh(%q): %v, want ErrUnauthorized", value, err)
		}
		if !issued[value] {
			if revoked, err := a.Logout(value); revoked != "" || err != nil {
				t.Fatalf("Logout(%q) = %q, %v; a value that is no token revoked a session", value, revoked, err)
			}
		}
		if !a.SessionLive(sid) {
			t.Fatalf("the session was revoked after %q", value)
		}
	})
}
