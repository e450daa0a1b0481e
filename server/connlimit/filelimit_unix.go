//go:build unix

package connlimit

import (
	"math"
	"syscall"
)

// FileLimit returns the process's soft limit on open files, or 0 when it cannot be read. The Go
// runtime has already raised the soft limit to the hard one at start (see syscall's init), so
// this is as high as the process can go without privileges.
func FileLimit() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return int(min(lim.Cur, math.MaxInt32))
}
