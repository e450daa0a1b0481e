//go:build !js

package client

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
)

// NewAPI returns an API for the server at base, such as "http://localhost:8080". A nil hc means a
// new client with its own cookie jar, which keeps the refresh cookie.
func NewAPI(base string, hc *http.Client) *API {
	if hc == nil {
		jar, _ := cookiejar.New(nil) // never fails without options
		hc = &http.Client{Jar: jar}
	}
	return &API{base: strings.TrimRight(base, "/"), transport: httpTransport{hc}}
}

// httpTransport sends API calls with net/http.
type httpTransport struct{ hc *http.Client }

func (t httpTransport) roundTrip(ctx context.Context, r request) (*response, error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if err != nil {
		return nil, err
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		return nil, err
	}
	return &response{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: resp.Body}, nil
}
