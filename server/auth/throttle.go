package auth

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ThrottleConfig sets how many failed logins are tolerated. Zero values mean the defaults.
type ThrottleConfig struct {
	PerUser      rate.Limit // failures per second refilled per (username, client IP); default 1/30
	PerUserBurst int        // default 5
	PerIP        rate.Limit // failures per second refilled per client IP; default 1/2
	PerIPBurst   int        // default 30
}

// Throttle counts failed logins per (username, client IP) and per client IP. It only ever slows
// down the address that fails, so nobody can lock a user out from elsewhere. Safe for concurrent
// use.
type Throttle struct {
	cfg    ThrottleConfig
	now    func() time.Time
	mu     sync.Mutex
	byUser map[string]*rate.Limiter // key: username + "\x00" + ip
	byIP   map[string]*rate.Limiter
}

// maxThrottleKeys bounds the maps: past it, limiters that have fully refilled are dropped.
const maxThrottleKeys = 100_000

// NewThrottle returns a Throttle. A nil now means time.Now.
func NewThrottle(cfg ThrottleConfig, now func() time.Time) *Throttle {
	if cfg.PerUser == 0 {
		cfg.PerUser = rate.Every(30 * time.Second)
	}
	if cfg.PerUserBurst == 0 {
		cfg.PerUserBurst = 5
	}
	if cfg.PerIP == 0 {
		cfg.PerIP = rate.Every(2 * time.Second)
	}
	if cfg.PerIPBurst == 0 {
		cfg.PerIPBurst = 30
	}
	if now == nil {
		now = time.Now
	}
	return &Throttle{cfg: cfg, now: now, byUser: map[string]*rate.Limiter{}, byIP: map[string]*rate.Limiter{}}
}

// Check returns 0 if a login for username from ip may be tried now, or how long to wait.
func (t *Throttle) Check(username, ip string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	return max(wait(t.byUser[username+"\x00"+ip], now), wait(t.byIP[ip], now))
}

// Fail records a failed login.
func (t *Throttle) Fail(username, ip string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.take(t.byUser, username+"\x00"+ip, t.cfg.PerUser, t.cfg.PerUserBurst, now)
	t.take(t.byIP, ip, t.cfg.PerIP, t.cfg.PerIPBurst, now)
}

// Succeed forgets the failures of username from ip (not those of ip as a whole).
func (t *Throttle) Succeed(username, ip string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.byUser, username+"\x00"+ip)
}

func (t *Throttle) take(m map[string]*rate.Limiter, key string, r rate.Limit, burst int, now time.Time) {
	lim := m[key]
	if lim == nil {
		if len(m) >= maxThrottleKeys {
			prune(m, now)
		}
		lim = rate.NewLimiter(r, burst)
		m[key] = lim
	}
	lim.AllowN(now, 1)
}

// wait is how long until lim has a whole token again.
func wait(lim *rate.Limiter, now time.Time) time.Duration {
	if lim == nil {
		return 0
	}
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	secs := (1 - tokens) / float64(lim.Limit())
	return time.Duration(math.Ceil(secs * float64(time.Second)))
}

func prune(m map[string]*rate.Limiter, now time.Time) {
	for k, lim := range m {
		if lim.TokensAt(now) >= float64(lim.Burst()) {
			delete(m, k)
		}
	}
}
