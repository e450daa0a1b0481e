package auth

import (
	"container/list"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter is a table of token buckets, one per key (a client address, a user id), each refilled
// at the same rate up to the same burst. The table is bounded: a key whose bucket is full again
// is the same as a key never seen and is dropped when met, and past the capacity the least
// recently used key is forgotten. Forgetting only ever forgives, so the bound costs no one
// access. It is safe for concurrent use.
type Limiter struct {
	limit    rate.Limit
	burst    int
	capacity int
	now      func() time.Time

	mu   sync.Mutex
	keys map[string]*list.Element // key → its element in lru
	lru  list.List                // of *limiterEntry, most recently used at the front
}

type limiterEntry struct {
	key string
	lim *rate.Limiter
}

// DefaultLimiterCapacity is the number of keys a Limiter remembers unless told otherwise:
// a few megabytes at most.
const DefaultLimiterCapacity = 20_000

// NewLimiter returns a Limiter refilling r tokens per second up to burst for each key,
// remembering at most capacity keys (0 means DefaultLimiterCapacity). A nil now means time.Now.
func NewLimiter(r rate.Limit, burst, capacity int, now func() time.Time) *Limiter {
	if capacity <= 0 {
		capacity = DefaultLimiterCapacity
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{limit: r, burst: burst, capacity: capacity, now: now, keys: map[string]*list.Element{}}
}

// Allow takes a token for key and returns 0, or, when none is left, takes nothing and returns
// how long until one is.
func (l *Limiter) Allow(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	lim := l.get(key, now)
	if lim.AllowN(now, 1) {
		return 0
	}
	return wait(lim, now)
}

// Wait returns how long until key has a whole token, without taking one or remembering key.
func (l *Limiter) Wait(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.keys[key]
	if !ok {
		return 0
	}
	return wait(e.Value.(*limiterEntry).lim, l.now())
}

// Forget drops what the table knows of key.
func (l *Limiter) Forget(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.keys[key]; ok {
		l.lru.Remove(e)
		delete(l.keys, key)
	}
}

// Len returns the number of keys remembered.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// get returns key's bucket, creating it, and marks it used. Before creating one it drops the
// least recently used keys that are full again, and the least recently used one at capacity.
func (l *Limiter) get(key string, now time.Time) *rate.Limiter {
	if e, ok := l.keys[key]; ok {
		l.lru.MoveToFront(e)
		return e.Value.(*limiterEntry).lim
	}
	for range 2 { // a couple each time keeps the table to its live keys without long pauses
		back := l.lru.Back()
		if back == nil {
			break
		}
		if old := back.Value.(*limiterEntry); old.lim.TokensAt(now) >= float64(l.burst) || len(l.keys) >= l.capacity {
			l.lru.Remove(back)
			delete(l.keys, old.key)
		}
	}
	lim := rate.NewLimiter(l.limit, l.burst)
	l.keys[key] = l.lru.PushFront(&limiterEntry{key: key, lim: lim})
	return lim
}

// wait is how long until lim has a whole token again.
func wait(lim *rate.Limiter, now time.Time) time.Duration {
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	secs := (1 - tokens) / float64(lim.Limit())
	return time.Duration(math.Ceil(secs * float64(time.Second)))
}
