//go:build !js

package client

import (
	"net/http"
	"net/http/cookiejar"
)

// newHTTPClient returns a client with its own cookie jar, which keeps the refresh cookie.
func newHTTPClient() *http.Client {
	jar, _ := cookiejar.New(nil) // never fails without options
	return &http.Client{Jar: jar}
}
