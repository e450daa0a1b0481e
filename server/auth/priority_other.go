//go:build !linux

package auth

// lowerThreadPriority does nothing where nice values are per process.
func lowerThreadPriority() {}
