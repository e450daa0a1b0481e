package auth

import (
	"time"

	"golang.org/x/time/rate"

	"kaiwa/shared/proto"
)

// ThrottleConfig sets how many failed logins are tolerated. Zero values mean the defaults.
type ThrottleConfig struct {
	PerUser      rate.Limit // failures per second refilled per (username, client IP); default 1/30
	PerUserBurst int        // default 5
	PerIP        rate.Limit // failures per second refilled per client IP; default 1/2
	PerIPBurst   int        // default 30
}

// Throttle counts failed logins per (username, client IP) and per client IP. It only ever slows
// down the address that fails, so nobody can lock a user out from elsewhere. It remembers only
// names that can exist, and a bounded number of keys. Safe for concurrent use.
type Throttle struct {
	byUser *Limiter // key: username + "\x00" + ip
	byIP   *Limiter
}

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
	return &Throttle{
		byUser: NewLimiter(cfg.PerUser, cfg.PerUserBurst, 0, now),
		byIP:   NewLimiter(cfg.PerIP, cfg.PerIPBurst, 0, now),
	}
}

// Check returns 0 if a login for username from ip may be tried now, or how long to wait.
func (t *Throttle) Check(username, ip string) time.Duration {
	return max(t.byUser.Wait(userKey(username, ip)), t.byIP.Wait(ip))
}

// Fail records a failed login. A username that cannot exist is counted against ip alone.
func (t *Throttle) Fail(username, ip string) {
	if name, ok := proto.NormalizeUsername(username); ok {
		t.byUser.Allow(userKey(name, ip))
	}
	t.byIP.Allow(ip)
}

// Succeed forgets the failures of username from ip (not those of ip as a whole).
func (t *Throttle) Succeed(username, ip string) {
	t.byUser.Forget(userKey(username, ip))
}

// Len returns the number of keys the throttle remembers.
func (t *Throttle) Len() int { return t.byUser.Len() + t.byIP.Len() }

func userKey(username, ip string) string { return username + "\x00" + ip }
