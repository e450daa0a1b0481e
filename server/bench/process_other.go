//go:build !unix

package bench

import "time"

// raiseFileLimit has nothing to raise where there is no open-file rlimit.
func raiseFileLimit() (uint64, error) { return 0, nil }

// selfCPU is not measured here: the CPU figures say so.
func selfCPU() (time.Duration, bool) { return 0, false }
