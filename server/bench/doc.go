// Package bench is Kaiwa's load generator: `kaiwa bench` runs the scenarios of SPEC §6 against
// a Kaiwa server started as a separate process, speaking the real protocol through
// shared/proto, and reports one table.
//
// The driver is lean on purpose: it shares the machine with the server, so receivers scan
// frames for the few fields they need instead of decoding whole objects, and latencies go
// into a lock-free histogram.
package bench
