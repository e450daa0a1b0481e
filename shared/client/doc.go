// Package client is Kaiwa's client session, shared by the browser app (compiled to WebAssembly)
// and native Go programs (tests, the benchmark driver, tools). It never imports go-app or the
// server.
package client
