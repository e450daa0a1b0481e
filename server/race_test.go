//go:build race

package server_test

// raceEnabled: the test binary runs under the race detector, whose instrumented frames make
// goroutine stacks deeper than in the build Kaiwa ships.
const raceEnabled = true
