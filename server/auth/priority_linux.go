package auth

import (
	"syscall"
	"unsafe"
)

// schedIdle is Linux's SCHED_IDLE policy: the thread runs only on a core nothing else wants.
const schedIdle = 5

// lowerThreadPriority moves the calling OS thread to SCHED_IDLE, or if that is refused gives
// it the highest niceness. Linux keeps both per thread; lowering a thread's priority needs no
// privilege, raising it back would.
func lowerThreadPriority() {
	tid := syscall.Gettid()
	var param struct{ priority int32 }
	if _, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_SETSCHEDULER, uintptr(tid), schedIdle, uintptr(unsafe.Pointer(&param))); errno != 0 {
		syscall.Setpriority(syscall.PRIO_PROCESS, tid, 19)
	}
}
