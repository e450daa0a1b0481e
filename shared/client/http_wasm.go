//go:build js

package client

import "net/http"

// newHTTPClient returns the default client: in the browser, fetch sends and keeps the
// same-origin refresh cookie itself.
func newHTTPClient() *http.Client { return &http.Client{} }
