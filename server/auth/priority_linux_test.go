package auth

import (
	"syscall"
	"testing"
)

func TestHashingThreadsRunAtIdlePriority(t *testing.T) {
	var policy uintptr
	var errno syscall.Errno
	inBackground(func() {
		policy, _, errno = syscall.RawSyscall(syscall.SYS_SCHED_GETSCHEDULER, 0, 0, 0)
	})
	if errno != 0 {
		t.Fatalf("sched_getscheduler: %v", errno)
	}
	if policy != schedIdle {
		t.Fatalf("hashing thread policy = %d, want SCHED_IDLE (%d)", policy, schedIdle)
	}
	// The thread that ran the hash is gone with its goroutine: this one keeps its policy.
	if p, _, _ := syscall.RawSyscall(syscall.SYS_SCHED_GETSCHEDULER, 0, 0, 0); p == schedIdle {
		t.Fatal("the test's own thread was moved to SCHED_IDLE")
	}
}
