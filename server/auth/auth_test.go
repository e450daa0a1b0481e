package auth_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"kaiwa/server/auth"
	"kaiwa/server/auth/authtest"
	"kaiwa/server/store"
	"kaiwa/server/store/storetest"
)

// newClock returns a test clock at a fixed date.
func newClock() *authtest.Clock {
	return authtest.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
}

// fixture is an Auth over a fresh database, on a controllable clock, that records revocations.
type fixture struct {
	st    *store.Store
	auth  *auth.Auth
	clock *authtest.Clock
	// observed hears what the store tells its Observer; revoked keeps the sessions it revoked.
	observed storetest.Recorder
	mu       sync.Mutex
	revoked  []string
}

func newFixture(t *testing.T, cfg auth.Config) *fixture {
	t.Helper()
	st := storetest.Open(t)
	f := &fixture{st: st, clock: newClock()}
	cfg.Now = f.clock.Now
	var err error
	f.auth, err = auth.New(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	st.SetObserver(&f.observed)
	return f
}

// revokedIDs returns the sessions the store told its Observer were revoked, so far.
func (f *fixture) revokedIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, line := range f.observed.Take() {
		if ids, ok := strings.CutPrefix(line, "revoked "); ok {
			f.revoked = append(f.revoked, strings.Fields(ids)...)
		}
	}
	return slices.Clone(f.revoked)
}

// login signs a new session in for the user (created on first use), paying one argon2id hash.
func (f *fixture) login(t *testing.T, name string) auth.Grant {
	t.Helper()
	g, err := f.auth.Login(context.Background(), name, "correct horse")
	if errors.Is(err, auth.ErrInvalidCredentials) {
		g, err = f.auth.Register(context.Background(), name, "correct horse")
	}
	if err != nil {
		t.Fatalf("sign in %s: %v", name, err)
	}
	return g
}

func (f *fixture) refresh(t *testing.T, token string) auth.Grant {
	t.Helper()
	g, err := f.auth.Refresh(context.Background(), token)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	return g
}

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, auth.Config{})
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T, g0 auth.Grant)
	}{
		{"rotation hands out a new token of the same session", func(t *testing.T, g0 auth.Grant) {
			g1 := f.refresh(t, g0.Refresh)
			if g1.Refresh == g0.Refresh || g1.SessionID != g0.SessionID || g1.Access == g0.Access {
				t.Errorf("refresh gave %+v from %+v: want new tokens of the same session", g1, g0)
			}
			f.refresh(t, g1.Refresh)
		}},
		{"replay within the grace yields a sibling and the successor stays valid", func(t *testing.T, g0 auth.Grant) {
			g1 := f.refresh(t, g0.Refresh)
			f.clock.Advance(5 * time.Second)
			g2 := f.refresh(t, g0.Refresh)
			if g2.SessionID != g0.SessionID || g2.Refresh == g1.Refresh {
				t.Errorf("sibling %+v: want a new token of session %s", g2, g0.SessionID)
			}
			f.refresh(t, g1.Refresh)
			f.refresh(t, g2.Refresh)
		}},
		{"replay at exactly the grace is still a sibling", func(t *testing.T, g0 auth.Grant) {
			f.refresh(t, g0.Refresh)
			f.clock.Advance(auth.RefreshGrace)
			f.refresh(t, g0.Refresh)
		}},
		{"replay after the grace revokes the whole session", func(t *testing.T, g0 auth.Grant) {
			g1 := f.refresh(t, g0.Refresh)
			g2 := f.refresh(t, g1.Refresh)
			f.clock.Advance(auth.RefreshGrace + time.Second)
			if _, err := f.auth.Refresh(ctx, g0.Refresh); !errors.Is(err, auth.ErrRefreshReused) {
				t.Fatalf("replay after the grace: %v, want ErrRefreshReused", err)
			}
			if !slices.Contains(f.revokedIDs(), g0.SessionID) {
				t.Errorf("the store told of revoking %v, want session %s among them", f.revokedIDs(), g0.SessionID)
			}
			if _, err := f.auth.Refresh(ctx, g2.Refresh); !errors.Is(err, auth.ErrUnauthorized) {
				t.Errorf("newest token after the reuse: %v, want ErrUnauthorized", err)
			}
			if _, err := f.auth.Verify(g2.Access); !errors.Is(err, auth.ErrUnauthorized) {
				t.Errorf("access token of the revoked session: %v, want ErrUnauthorized", err)
			}
			if _, err := f.auth.Refresh(ctx, g0.Refresh); !errors.Is(err, auth.ErrUnauthorized) {
				t.Errorf("the reused token again: %v, want ErrUnauthorized", err)
			}
		}},
		{"a forged secret does not revoke the session", func(t *testing.T, g0 auth.Grant) {
			if _, err := f.auth.Refresh(ctx, g0.SessionID+".forged"); !errors.Is(err, auth.ErrUnauthorized) {
				t.Errorf("forged secret: %v, want ErrUnauthorized", err)
			}
			f.refresh(t, g0.Refresh)
		}},
		{"an expired session is refused", func(t *testing.T, g0 auth.Grant) {
			f.clock.Advance(f.auth.RefreshTTL() + time.Second)
			if _, err := f.auth.Refresh(ctx, g0.Refresh); !errors.Is(err, auth.ErrUnauthorized) {
				t.Errorf("refresh after the session's lifetime: %v, want ErrUnauthorized", err)
			}
		}},
		{"each refresh slides the session's lifetime", func(t *testing.T, g0 auth.Grant) {
			g := g0
			for range 3 {
				f.clock.Advance(f.auth.RefreshTTL() * 2 / 3)
				g = f.refresh(t, g.Refresh)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, f.login(t, "alice"))
		})
	}
}

func TestRefreshMalformed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, auth.Config{})
	for _, token := range []string{"", "nodot", ".secret", "sid.", strings.Repeat("a", 200) + "." + strings.Repeat("b", 100), "unknown.secret"} {
		t.Run(token, func(t *testing.T) {
			if _, err := f.auth.Refresh(context.Background(), token); !errors.Is(err, auth.ErrUnauthorized) {
				t.Errorf("Refresh(%q): %v, want ErrUnauthorized", token, err)
			}
		})
	}
}

func TestConcurrentRefresh(t *testing.T) {
	t.Parallel()
	f := newFixture(t, auth.Config{})
	g0 := f.login(t, "alice")
	const tabs = 4
	grants := make([]auth.Grant, tabs)
	errs := make([]error, tabs)
	var wg sync.WaitGroup
	for i := range tabs {
		wg.Go(func() { grants[i], errs[i] = f.auth.Refresh(context.Background(), g0.Refresh) })
	}
	wg.Wait()
	for i := range tabs {
		t.Run(fmt.Sprint("tab ", i), func(t *testing.T) {
			if errs[i] != nil {
				t.Fatalf("refresh %d of the same token at once: %v", i, errs[i])
			}
			f.refresh(t, grants[i].Refresh)
		})
	}
}

func TestLogout(t *testing.T) {
	t.Parallel()
	f := newFixture(t, auth.Config{})
	ctx := context.Background()
	tests := []struct {
		name  string
		token func(g0, g1 auth.Grant) string
	}{
		{"with the current token", func(_, g1 auth.Grant) string { return g1.Refresh }},
		{"with a rotated token", func(g0, _ auth.Grant) string { return g0.Refresh }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g0 := f.login(t, "alice")
			g1 := f.refresh(t, g0.Refresh)
			sid, err := f.auth.Logout(tc.token(g0, g1))
			if err != nil || sid != g0.SessionID {
				t.Fatalf("Logout = %q, %v; want %q", sid, err, g0.SessionID)
			}
			if !slices.Contains(f.revokedIDs(), sid) {
				t.Errorf("the store did not tell of revoking %s", sid)
			}
			if _, err := f.auth.Refresh(ctx, g1.Refresh); !errors.Is(err, auth.ErrUnauthorized) {
				t.Errorf("refresh after logout: %v, want ErrUnauthorized", err)
			}
			if _, err := f.auth.Verify(g1.Access); !errors.Is(err, auth.ErrUnauthorized) {
				t.Errorf("access token after logout: %v, want ErrUnauthorized", err)
			}
		})
	}
	t.Run("with a token of no session", func(t *testing.T) {
		for _, token := range []string{"", "nodot", "unknown.secret"} {
			if sid, err := f.auth.Logout(token); sid != "" || err != nil {
				t.Errorf("Logout(%q) = %q, %v; want nothing", token, sid, err)
			}
		}
	})
	t.Run("with a forged secret of a live session", func(t *testing.T) {
		g := f.login(t, "bob")
		if sid, err := f.auth.Logout(g.SessionID + ".forged"); sid != "" || err != nil {
			t.Errorf("Logout with a forged secret = %q, %v; want nothing", sid, err)
		}
		f.refresh(t, g.Refresh)
	})
}

func TestVerifyExpiry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, auth.Config{AccessTTL: 90 * time.Second})
	g := f.login(t, "alice")
	// The clock stands on a whole second, so iat = now and exp - now = ttl exactly.
	if got := g.ExpiresAt.Sub(f.clock.Now()); got != 90*time.Second {
		t.Errorf("exp - now = %v, want the access TTL 90s", got)
	}
	if body := g.Body(); body.ExpiresIn != 90 || !body.ExpiresAt.Equal(g.ExpiresAt) {
		t.Errorf("token body expires_in %d, expires_at %v; want 90 and %v", body.ExpiresIn, body.ExpiresAt, g.ExpiresAt)
	}
	tests := []struct {
		name    string
		advance time.Duration
		wantErr error
	}{
		{"fresh", 0, nil},
		{"a second before exp", 89 * time.Second, nil},
		{"at exp", time.Second, auth.ErrTokenExpired},
		{"long after exp", time.Hour, auth.ErrTokenExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.clock.Advance(tc.advance)
			claims, err := f.auth.Verify(g.Access)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify: %v, want %v", err, tc.wantErr)
			}
			if claims == nil || claims.Subject != g.User.ID || claims.SID != g.SessionID || claims.Name != "alice" {
				t.Fatalf("claims = %+v, want those of alice's session %s", claims, g.SessionID)
			}
			if iat, exp := claims.IssuedAt.Time, claims.ExpiresAt.Time; !exp.Equal(g.ExpiresAt) || exp.Sub(iat) != 90*time.Second {
				t.Errorf("iat %v, exp %v; want exp = iat + 90s = %v", iat, exp, g.ExpiresAt)
			}
		})
	}
}

func TestLoginFailures(t *testing.T) {
	t.Parallel()
	f := newFixture(t, auth.Config{})
	f.login(t, "alice")
	tests := []struct {
		name, user, password string
	}{
		{"wrong password", "alice", "wrong horse"},
		{"unknown user", "mallory", "correct horse"},
		{"invalid username", "a", "correct horse"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.auth.Login(context.Background(), tc.user, tc.password); !errors.Is(err, auth.ErrInvalidCredentials) {
				t.Errorf("Login: %v, want ErrInvalidCredentials", err)
			}
		})
	}
}

func TestCreateUserValidation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, auth.Config{})
	// Only invalid input here: it is refused before any hashing, so the table costs nothing.
	tests := []struct {
		name, user, password string
		want                 error
	}{
		{"too short", "ab", "correct horse", auth.ErrInvalidUsername},
		{"too long", strings.Repeat("a", 33), "correct horse", auth.ErrInvalidUsername},
		{"space", "al ice", "correct horse", auth.ErrInvalidUsername},
		{"non-ASCII", "ålice", "correct horse", auth.ErrInvalidUsername},
		{"7-byte password", "alice", "1234567", auth.ErrInvalidPassword},
		{"1025-byte password", "alice", strings.Repeat("p", 1025), auth.ErrInvalidPassword},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.auth.CreateUser(context.Background(), tc.user, tc.password, false); !errors.Is(err, tc.want) {
				t.Errorf("CreateUser(%q): %v, want %v", tc.user, err, tc.want)
			}
		})
	}
	u, err := f.auth.CreateUser(context.Background(), "Root", "12345678", true)
	if err != nil || u.Name != "root" || !u.Admin {
		t.Fatalf("CreateUser(Root, admin) = %+v, %v; want admin root", u, err)
	}
	if _, err := f.auth.CreateUser(context.Background(), "ROOT", "12345678", false); !errors.Is(err, auth.ErrUsernameTaken) {
		t.Errorf("CreateUser(ROOT) after Root: %v, want ErrUsernameTaken", err)
	}
}

func TestSetPasswordRevokesSessions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, auth.Config{})
	ctx := context.Background()
	g := f.login(t, "alice")
	if err := f.auth.SetPassword(ctx, "Alice", "battery staple"); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(f.revokedIDs(), g.SessionID) {
		t.Errorf("the store told of revoking %v, want %s", f.revokedIDs(), g.SessionID)
	}
	if _, err := f.auth.Refresh(ctx, g.Refresh); !errors.Is(err, auth.ErrUnauthorized) {
		t.Errorf("refresh after a password change: %v, want ErrUnauthorized", err)
	}
	if _, err := f.auth.Verify(g.Access); !errors.Is(err, auth.ErrUnauthorized) {
		t.Errorf("access token after a password change: %v, want ErrUnauthorized", err)
	}
	if _, err := f.auth.Login(ctx, "alice", "correct horse"); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Errorf("login with the old password: %v, want ErrInvalidCredentials", err)
	}
	if _, err := f.auth.Login(ctx, "alice", "battery staple"); err != nil {
		t.Errorf("login with the new password: %v", err)
	}
	if err := f.auth.SetPassword(ctx, "nobody", "battery staple"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetPassword of an unknown user: %v, want ErrNotFound", err)
	}
}
