//go:build js

package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall/js"
)

// NewAPI returns an API for the server at base, such as "https://chat.example.org". In the
// browser hc is ignored: calls go through the page's fetch, which keeps and sends the
// same-origin refresh cookie itself. Using fetch directly rather than net/http's client keeps
// that client, and the TLS stack it brings, out of app.wasm.
func NewAPI(base string, hc *http.Client) *API {
	return &API{base: strings.TrimRight(base, "/"), transport: fetchTransport{}}
}

// fetchTransport sends API calls with the browser's fetch.
type fetchTransport struct{}

func (fetchTransport) roundTrip(ctx context.Context, r request) (*response, error) {
	headers := js.Global().Get("Headers").New()
	init := map[string]any{
		"method":      r.method,
		"credentials": "same-origin",
		"cache":       "no-store",
		"headers":     headers,
	}
	if r.body != nil {
		headers.Call("set", "Content-Type", "application/json")
		init["body"] = string(r.body)
	}
	if r.token != "" {
		headers.Call("set", "Authorization", "Bearer "+r.token)
	}
	abort := js.Global().Get("AbortController").New()
	init["signal"] = abort.Get("signal")

	resp, err := await(ctx, abort, js.Global().Call("fetch", r.url, init))
	if err != nil {
		return nil, err
	}
	buf, err := await(ctx, abort, resp.Call("arrayBuffer"))
	if err != nil {
		return nil, err
	}
	data := js.Global().Get("Uint8Array").New(buf)
	body := make([]byte, data.Length())
	js.CopyBytesToGo(body, data)
	retryAfter := resp.Get("headers").Call("get", "Retry-After")
	out := &response{status: resp.Get("status").Int(), body: io.NopCloser(bytes.NewReader(body))}
	if retryAfter.Type() == js.TypeString {
		out.retryAfter = retryAfter.String()
	}
	return out, nil
}

// await waits for a promise to settle, aborting the fetch when ctx ends first.
func await(ctx context.Context, abort, promise js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	done := make(chan result, 1)
	onOK := js.FuncOf(func(this js.Value, args []js.Value) any {
		done <- result{v: args[0]}
		return nil
	})
	onErr := js.FuncOf(func(this js.Value, args []js.Value) any {
		msg := "fetch failed"
		if len(args) > 0 && args[0].Truthy() {
			msg = args[0].Call("toString").String()
		}
		done <- result{err: errors.New(msg)}
		return nil
	})
	defer onOK.Release()
	defer onErr.Release()
	promise.Call("then", onOK, onErr)
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		abort.Call("abort")
		<-done // the promise rejects with an AbortError; the callbacks must not outlive it
		return js.Value{}, ctx.Err()
	}
}
