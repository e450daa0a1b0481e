//go:build !unix

package bench

import "time"

// raiseFileLimit has nothing to raise where there is no open-file rlimit.
func raiseFileLimit() (uint64, error) { return 0, nil }

// selfCPU is not measured here: CPU figures read zero, as the server's do off Linux (/proc).
func selfCPU() time.Duration { return 0 }
