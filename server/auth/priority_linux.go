package auth

import "syscall"

// hashNice is the niceness of a hashing thread: while chat work wants the core, a hash gets
// about 1.5 % of it; on an idle core it runs at full speed. (SCHED_IDLE measured the same for
// the chat and would all but stop logins on a saturated server.)
const hashNice = 19

// lowerThreadPriority gives the calling OS thread the niceness hashNice. Linux keeps a nice
// value per thread; raising it needs no privilege, lowering it back would.
func lowerThreadPriority() {
	syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), hashNice)
}
