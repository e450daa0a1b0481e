package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"kaiwa/server/auth"
	"kaiwa/server/store"
)

// TestKeyRotate: after `kaiwa key rotate` the access tokens signed before no longer verify, and
// the refresh sessions still work and hand out tokens signed with the new key.
func TestKeyRotate(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "kaiwa.db")
	if code, _, stderr := runKaiwa(t, "correct horse\n", "user", "add", "-db", db, "alice"); code != 0 {
		t.Fatalf("user add: %s", stderr)
	}
	ctx := context.Background()
	st, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	oldKey := bytes.Clone(st.SigningKey())
	a, err := auth.New(st, auth.Config{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := a.Login(ctx, "alice", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	code, stdout, stderr := runKaiwa(t, "", "key", "rotate", "-db", db)
	if code != 0 || !strings.Contains(stdout, "signing key rotated") {
		t.Fatalf("key rotate: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	st, err = store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if bytes.Equal(st.SigningKey(), oldKey) || len(st.SigningKey()) < 32 {
		t.Fatal("the signing key did not change")
	}
	a, err = auth.New(st, auth.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(g.Access); !errors.Is(err, auth.ErrUnauthorized) {
		t.Errorf("an access token from before the rotation: %v, want ErrUnauthorized", err)
	}
	fresh, err := a.Refresh(ctx, g.Refresh)
	if err != nil {
		t.Fatalf("the session did not survive the rotation: %v", err)
	}
	if _, err := a.Verify(fresh.Access); err != nil {
		t.Errorf("a token issued after the rotation: %v", err)
	}
}
