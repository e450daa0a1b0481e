//go:build js && wasm

// Command stopwasm stands in for app.wasm in the browser tests: a Go program that stops as it
// starts, as app.wasm does when it panics before its first render.
package main

func main() {
	panic("stopped as it started")
}
