package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters: OWASP's minimum (19 MiB, two passes, one lane).
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

var errBadHash = errors.New("auth: malformed password hash")

// hasher runs argon2id with at most cap(slots) hashes at once, so a burst of logins queues
// instead of taking every core and all the memory from the chat. While hashes queue, a slot
// rests as long as it worked before it passes on: a burst gets at most half of the slots'
// cores, and the chat keeps the rest. A lone login never waits. Each hash runs on a thread at
// low priority (inBackground), so that the kernel gives a core to chat work first.
type hasher struct {
	slots  chan struct{}
	queued atomic.Int64 // hashes waiting for a slot
}

func newHasher(concurrency int) *hasher {
	return &hasher{slots: make(chan struct{}, max(1, concurrency))}
}

func (h *hasher) acquire(ctx context.Context) error {
	h.queued.Add(1)
	defer h.queued.Add(-1)
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("auth: waiting to hash: %w", ctx.Err())
	}
}

// release frees a slot that hashed for worked.
func (h *hasher) release(worked time.Duration) {
	if h.queued.Load() > 0 {
		time.Sleep(worked)
	}
	<-h.slots
}

// hash returns the encoded argon2id hash of password with a new random salt.
func (h *hasher) hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	start := time.Now()
	var key []byte
	inBackground(func() { key = argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen) })
	h.release(time.Since(start))
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// verify reports whether password matches the encoded hash, in time independent of where they
// differ.
func (h *hasher) verify(ctx context.Context, encoded, password string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var version int
	var memory, passes uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &memory, &passes, &threads); err != nil || threads == 0 || passes == 0 {
		return false, errBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, errBadHash
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	start := time.Now()
	var got []byte
	inBackground(func() { got = argon2.IDKey([]byte(password), salt, passes, memory, threads, uint32(len(want))) })
	h.release(time.Since(start))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// inBackground runs f on an OS thread of its own at lower priority (lowerThreadPriority) and
// returns when it is done. The goroutine ends still locked to the thread, so the thread ends
// with it and its lowered priority is never handed to other work.
func inBackground(f func()) {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		lowerThreadPriority()
		f()
		close(done)
	}()
	<-done
}
