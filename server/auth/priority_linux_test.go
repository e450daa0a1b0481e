package auth

import (
	"syscall"
	"testing"
)

// niceness returns the calling thread's nice value. The system call answers 20 - nice.
func niceness(t *testing.T) int {
	t.Helper()
	prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	if err != nil {
		t.Fatalf("getpriority: %v", err)
	}
	return 20 - prio
}

func TestHashingThreadsRunAtLowPriority(t *testing.T) {
	var got int
	inBackground(func() { got = niceness(t) })
	if got != hashNice {
		t.Fatalf("hashing thread nice = %d, want %d", got, hashNice)
	}
	// The thread that hashed ended with its goroutine: no other work inherits its priority.
	if own := niceness(t); own == hashNice {
		t.Fatalf("the test's own thread has nice %d", own)
	}
}
