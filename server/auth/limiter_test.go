package auth_test

import (
	"strconv"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"kaiwa/server/auth"
	"kaiwa/server/auth/authtest"
)

func TestLimiter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T, c *authtest.Clock, l *auth.Limiter)
	}{
		{"the burst, then one per interval", func(t *testing.T, c *authtest.Clock, l *auth.Limiter) {
			for i := range 3 {
				if w := l.Allow("k"); w != 0 {
					t.Fatalf("take %d of the burst of 3: wait %v", i+1, w)
				}
			}
			if w := l.Allow("k"); w <= 9*time.Second || w > 10*time.Second {
				t.Fatalf("past the burst: wait %v, want 10 s", w)
			}
			c.Advance(10 * time.Second)
			if w := l.Allow("k"); w != 0 {
				t.Fatalf("after 10 s: wait %v, want 0", w)
			}
			if w := l.Allow("other"); w != 0 {
				t.Fatalf("another key: wait %v, want 0", w)
			}
		}},
		{"keys refilled are dropped", func(t *testing.T, c *authtest.Clock, l *auth.Limiter) {
			for i := range 100 {
				l.Allow(strconv.Itoa(i))
				c.Advance(10 * time.Second) // each key refilled before the next is met
			}
			if n := l.Len(); n > 3 {
				t.Errorf("%d keys remembered, want only the live ones", n)
			}
		}},
		{"the capacity bounds the table", func(t *testing.T, c *authtest.Clock, l *auth.Limiter) {
			for i := range 1000 {
				for range 3 {
					l.Allow(strconv.Itoa(i)) // every key spent: none refilled
				}
			}
			if n := l.Len(); n > 10 {
				t.Errorf("%d keys remembered, want at most the capacity 10", n)
			}
			if w := l.Allow("999"); w == 0 {
				t.Error("the most recent key was forgotten")
			}
		}},
		{"wait neither takes nor remembers", func(t *testing.T, c *authtest.Clock, l *auth.Limiter) {
			for range 10 {
				if w := l.Wait("k"); w != 0 {
					t.Fatalf("wait %v on a new key", w)
				}
			}
			if n := l.Len(); n != 0 {
				t.Errorf("%d keys remembered after Wait alone", n)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			tc.run(t, c, auth.NewLimiter(rate.Every(10*time.Second), 3, 10, c.Now))
		})
	}
}

func TestThrottleForgetsNamesThatCannotExist(t *testing.T) {
	t.Parallel()
	th := auth.NewThrottle(auth.ThrottleConfig{}, newClock().Now)
	for i := range 20 {
		th.Fail(strconv.Itoa(i)+string(make([]byte, 65_000)), "ip1")
	}
	if n := th.Len(); n != 1 {
		t.Errorf("the throttle remembers %d keys after failures with impossible names, want 1 (the address)", n)
	}
}
