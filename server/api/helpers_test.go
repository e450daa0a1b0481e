package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"kaiwa/server"
	"kaiwa/server/hub"
	"kaiwa/server/store"
	"kaiwa/server/store/storetest"
	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// testServer is a real Kaiwa server over a real database file.
type testServer struct {
	*httptest.Server
	st  *store.Store
	hub *hub.Hub // nil when server.New built it
}

// openStore opens a new database in t.TempDir and checks its consistency when the test ends.
func openStore(t *testing.T) *store.Store {
	t.Helper()
	return storetest.Open(t)
}

// newServer starts server.New(cfg) over a new database. Every server costs one argon2id hash
// (the dummy for unknown users), so tests share one where they can.
func newServer(t *testing.T, cfg server.Config) *testServer {
	t.Helper()
	st := openStore(t)
	srv, err := server.New(cfg, st, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
	})
	return &testServer{Server: ts, st: st}
}

// register creates a user through the API and returns a client holding its refresh cookie and
// the token body.
func register(t *testing.T, baseURL, name string) (*client.API, proto.TokenBody) {
	t.Helper()
	c := client.NewAPI(baseURL, nil)
	tb, err := c.Register(context.Background(), name, "correct horse")
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return c, tb
}

// response is a finished HTTP exchange with its body read.
type response struct {
	*http.Response
	body []byte
}

// request is a raw request to build and send with do.
type request struct {
	method, path string
	body         string
	header       map[string]string
	token        string // Authorization: Bearer, when set
	cookie       string // kaiwa_refresh, when set
}

func do(t *testing.T, baseURL string, r request) response {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, baseURL+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.cookie != "" {
		req.AddCookie(&http.Cookie{Name: proto.RefreshCookie, Value: r.cookie})
	}
	return send(t, req)
}

func send(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	return response{Response: resp, body: b}
}

// wantError fails unless resp is the API's error body with that status and code, with the
// headers every API error carries.
func wantError(t *testing.T, resp response, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d (body %s)", resp.StatusCode, status, resp.body)
	}
	var eb proto.ErrorBody
	dec := json.NewDecoder(bytes.NewReader(resp.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil {
		t.Fatalf("error body %q: %v", resp.body, err)
	}
	if eb.Error.Code != code || eb.Error.Message == "" {
		t.Errorf("error %+v, want code %q and a message", eb.Error, code)
	}
	wantAPIHeaders(t, resp)
}

// wantAPIHeaders fails unless resp is JSON and not cacheable.
func wantAPIHeaders(t *testing.T, resp response) {
	t.Helper()
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", got)
	}
	if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "application/json") {
		t.Errorf("Content-Type %q, want application/json", got)
	}
}

// decodeBody decodes a successful JSON body into v.
func decodeBody(t *testing.T, resp response, status int, v any) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, status, resp.body)
	}
	wantAPIHeaders(t, resp)
	if err := json.Unmarshal(resp.body, v); err != nil {
		t.Fatalf("body %q: %v", resp.body, err)
	}
}

// refreshCookie returns the kaiwa_refresh cookie that resp sets, failing if there is none.
func refreshCookie(t *testing.T, resp response) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == proto.RefreshCookie {
			return c
		}
	}
	t.Fatalf("%s %s set no %s cookie (Set-Cookie %q)", resp.Request.Method, resp.Request.URL.Path, proto.RefreshCookie, resp.Header.Values("Set-Cookie"))
	return nil
}

// signup registers name with raw requests and returns the token body and refresh cookie value.
func signup(t *testing.T, baseURL, name string) (proto.TokenBody, string) {
	t.Helper()
	resp := do(t, baseURL, request{method: "POST", path: "/api/auth/register", body: `{"username":"` + name + `","password":"correct horse"}`})
	var tb proto.TokenBody
	decodeBody(t, resp, http.StatusCreated, &tb)
	return tb, refreshCookie(t, resp).Value
}
