package auth

import (
	"context"
	"testing"

	"kaiwa/server/store"
	"kaiwa/server/store/storetest"
)

// TestRefreshRotatesOnlyWhenItCanAnswer: a refresh that cannot build its answer (here the
// session's user is missing) leaves the token current. Rotating first would leave the client
// with a token rotated away, which revokes the session when presented after the grace.
func TestRefreshRotatesOnlyWhenItCanAnswer(t *testing.T) {
	st := storetest.Open(t)
	a, err := New(st, Config{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := a.startSession(store.User{ID: "404", Name: "ghost"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Refresh(context.Background(), g.Refresh); err == nil {
		t.Fatal("refresh for a user that is not stored succeeded")
	}
	sess, err := st.Session(g.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if len(sess.Rotated) != 0 || len(sess.Current) != 1 || sess.Revoked {
		t.Fatalf("after a failed refresh the session has %d current, %d rotated, revoked %t; want the token still current",
			len(sess.Current), len(sess.Rotated), sess.Revoked)
	}
}
