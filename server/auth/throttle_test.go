package auth_test

import (
	"testing"
	"time"

	"golang.org/x/time/rate"

	"kaiwa/server/auth"
	"kaiwa/server/auth/authtest"
)

func TestThrottle(t *testing.T) {
	t.Parallel()
	cfg := auth.ThrottleConfig{
		PerUser: rate.Every(30 * time.Second), PerUserBurst: 3,
		PerIP: rate.Every(2 * time.Second), PerIPBurst: 6,
	}
	fail := func(th *auth.Throttle, user, ip string, n int) {
		for range n {
			th.Fail(user, ip)
		}
	}
	tests := []struct {
		name string
		run  func(t *testing.T, th *auth.Throttle, c *authtest.Clock)
	}{
		{"failures up to the burst are allowed", func(t *testing.T, th *auth.Throttle, c *authtest.Clock) {
			fail(th, "alice", "ip1", cfg.PerUserBurst-1)
			if w := th.Check("alice", "ip1"); w != 0 {
				t.Errorf("after %d failures: wait %v, want 0", cfg.PerUserBurst-1, w)
			}
			fail(th, "alice", "ip1", 1)
			if w := th.Check("alice", "ip1"); w <= 0 || w > 30*time.Second {
				t.Errorf("after the burst: wait %v, want (0, 30s]", w)
			}
		}},
		{"the wait refills one attempt", func(t *testing.T, th *auth.Throttle, c *authtest.Clock) {
			fail(th, "alice", "ip1", cfg.PerUserBurst)
			w := th.Check("alice", "ip1")
			c.Advance(w - time.Second)
			if th.Check("alice", "ip1") == 0 {
				t.Fatal("allowed a second before the wait is over")
			}
			c.Advance(time.Second)
			if got := th.Check("alice", "ip1"); got != 0 {
				t.Fatalf("after waiting %v: wait %v, want 0", w, got)
			}
			fail(th, "alice", "ip1", 1)
			if th.Check("alice", "ip1") == 0 {
				t.Error("the one refilled attempt was not used up by a failure")
			}
		}},
		{"another address is not slowed down", func(t *testing.T, th *auth.Throttle, c *authtest.Clock) {
			fail(th, "alice", "ip1", 10)
			if w := th.Check("alice", "ip2"); w != 0 {
				t.Errorf("alice from ip2: wait %v, want 0 (no lock-out from elsewhere)", w)
			}
		}},
		{"other names from the address until the per-IP limit", func(t *testing.T, th *auth.Throttle, c *authtest.Clock) {
			fail(th, "alice", "ip1", cfg.PerUserBurst)
			if w := th.Check("bob", "ip1"); w != 0 {
				t.Fatalf("bob from ip1 with alice throttled: wait %v, want 0", w)
			}
			fail(th, "bob", "ip1", cfg.PerIPBurst-cfg.PerUserBurst)
			if w := th.Check("carol", "ip1"); w <= 0 || w > 2*time.Second {
				t.Errorf("carol from ip1 past the per-IP limit: wait %v, want (0, 2s]", w)
			}
			if w := th.Check("carol", "ip2"); w != 0 {
				t.Errorf("carol from ip2: wait %v, want 0", w)
			}
		}},
		{"success forgets only that name from that address", func(t *testing.T, th *auth.Throttle, c *authtest.Clock) {
			fail(th, "alice", "ip1", cfg.PerUserBurst)
			fail(th, "alice", "ip2", cfg.PerUserBurst)
			th.Succeed("alice", "ip1")
			if w := th.Check("alice", "ip1"); w != 0 {
				t.Errorf("alice from ip1 after a success: wait %v, want 0", w)
			}
			if w := th.Check("alice", "ip2"); w == 0 {
				t.Error("a success from ip1 forgave alice's failures from ip2")
			}
			fail(th, "bob", "ip1", cfg.PerIPBurst-cfg.PerUserBurst)
			th.Succeed("bob", "ip1")
			if w := th.Check("bob", "ip1"); w == 0 {
				t.Error("a success reset the per-IP count of its address")
			}
		}},
		{"defaults", func(t *testing.T, _ *auth.Throttle, c *authtest.Clock) {
			th := auth.NewThrottle(auth.ThrottleConfig{}, c.Now)
			fail(th, "alice", "ip1", 5)
			if w := th.Check("alice", "ip1"); w <= 0 {
				t.Errorf("after 5 failures with the defaults: wait %v, want > 0", w)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			tc.run(t, auth.NewThrottle(cfg, c.Now), c)
		})
	}
}
