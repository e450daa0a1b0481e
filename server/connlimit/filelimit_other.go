//go:build !unix

package connlimit

// FileLimit returns 0: this platform has no per-process limit on open files to stay below.
func FileLimit() int { return 0 }
