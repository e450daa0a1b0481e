package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"kaiwa/server/setup"
	"kaiwa/server/store/storetest"
	"kaiwa/server/tlsca"
	"kaiwa/shared/proto"
)

// pinnedClient returns an HTTP client that trusts only the certificates in roots.
func pinnedClient(roots ...*x509.Certificate) *http.Client {
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		Timeout:   30 * time.Second,
		// Redirects are looked at, not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// fetch GETs url with hc and returns the status, the body and the TLS state.
func fetch(t *testing.T, hc *http.Client, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// logLine returns the first line of the process's JSON log with message msg.
func logLine(t *testing.T, p *kaiwaProcess, msg string) map[string]any {
	t.Helper()
	for line := range strings.Lines(p.stderr.String()) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			return m
		}
	}
	t.Fatalf("no %q in the log: %s", msg, p.stderr)
	return nil
}

// chatSocket is a signed-in WebSocket joined to general.
type chatSocket struct {
	ws     *websocket.Conn
	frames chan proto.Frame
}

// openChat registers name over hc at base (https), opens a wss socket with hc, and joins
// general.
func openChat(t *testing.T, hc *http.Client, base, name string) *chatSocket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := fmt.Sprintf(`{"username":%q,"password":"correct horse battery"}`, name)
	resp, err := hc.Post(base+"/api/auth/register", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tb proto.TokenBody
	if err := json.NewDecoder(resp.Body).Decode(&tb); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("register %s: %d %v", name, resp.StatusCode, err)
	}
	secure := false
	for _, c := range resp.Cookies() {
		secure = secure || c.Name == proto.RefreshCookie && c.Secure
	}
	if !secure {
		t.Errorf("refresh cookie not Secure over HTTPS: %q", resp.Header.Values("Set-Cookie"))
	}
	ws, _, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(base, "https")+"/ws", &websocket.DialOptions{
		HTTPClient:   hc,
		Subprotocols: []string{proto.Subprotocol, proto.BearerProtocol + tb.AccessToken},
	})
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	c := &chatSocket{ws: ws, frames: make(chan proto.Frame, 100)}
	go func() {
		defer close(c.frames)
		for {
			_, data, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			for line := range bytes.SplitSeq(data, []byte("\n")) {
				var f proto.Frame
				if json.Unmarshal(line, &f) == nil {
					c.frames <- f
				}
			}
		}
	}()
	c.write(t, proto.Join{Type: proto.TypeJoin, Room: "general"})
	c.await(t, proto.TypeJoined, "")
	return c
}

func (c *chatSocket) write(t *testing.T, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// await reads frames until one of type typ (with client id id, when given) arrives.
func (c *chatSocket) await(t *testing.T, typ, id string) proto.Frame {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				t.Fatalf("socket closed while waiting for %s %s", typ, id)
			}
			if f.Type == typ && (id == "" || f.ID == id) {
				return f
			}
		case <-timeout:
			t.Fatalf("no %s %s within 30 s", typ, id)
		}
	}
}

// sendAcked sends text and waits for its ack.
func (c *chatSocket) sendAcked(t *testing.T, id string) {
	t.Helper()
	c.write(t, proto.Send{Type: proto.TypeSend, Room: "general", ID: id, Text: "hello " + id})
	if f := c.await(t, proto.TypeAck, id); f.Seq == 0 {
		t.Fatalf("ack of %s without a seq", id)
	}
}

// TestTLSSelf starts kaiwa with its own authority, fetches the authority once without
// verification, then chats over wss:// with a client that trusts that authority alone. The
// plain listener serves /ca.crt and redirects the rest; a restart keeps the authority and the
// server certificate.
func TestTLSSelf(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "kaiwa.db")
	p := startKaiwa(t, db, "-tls-self", "localhost,127.0.0.1", "-redirect-http", "127.0.0.1:0")
	if !strings.HasPrefix(p.base, "https://127.0.0.1:") {
		t.Fatalf("serving at %s, want https", p.base)
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(p.base, "https://"))

	// Trust on first use: the authority is fetched without verification, then pinned.
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, der := fetch(t, insecure, p.base+"/ca.crt")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-x509-ca-cert" {
		t.Fatalf("/ca.crt: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil || !ca.IsCA {
		t.Fatalf("/ca.crt is not a CA certificate: %v", err)
	}
	if got := logLine(t, p, "tls_self")["ca_sha256"]; got != tlsca.Fingerprint(der) {
		t.Errorf("logged fingerprint %v, /ca.crt's is %s", got, tlsca.Fingerprint(der))
	}
	if _, err := http.Get(p.base + "/healthz"); err == nil {
		t.Fatal("a client with the system's roots trusted the server")
	}
	pinned := pinnedClient(ca)
	var leaf []byte
	for _, host := range []string{"127.0.0.1", "localhost"} {
		resp, body := fetch(t, pinned, "https://"+net.JoinHostPort(host, port)+"/healthz")
		if resp.StatusCode != http.StatusOK || string(body) != "ok" {
			t.Errorf("%s /healthz: %d %q", host, resp.StatusCode, body)
		}
		leaf = resp.TLS.PeerCertificates[0].Raw
	}
	resp, page := fetch(t, pinned, p.base+"/setup")
	if resp.StatusCode != http.StatusOK || !bytes.Contains(page, []byte(tlsca.Fingerprint(der))) {
		t.Errorf("/setup: %d, fingerprint shown: %v", resp.StatusCode, bytes.Contains(page, []byte(tlsca.Fingerprint(der))))
	}

	alice := openChat(t, pinned, p.base, "alice")
	alice.sendAcked(t, "m1")

	// Plain HTTP: the authority as it is, everything else redirected to the HTTPS port.
	plain := strings.TrimPrefix(logLine(t, p, "redirecting_http")["addr"].(string), "http://")
	resp, plainDER := fetch(t, pinnedClient(), "http://"+plain+"/ca.crt")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(plainDER, der) {
		t.Errorf("plain /ca.crt: %d, same certificate %v", resp.StatusCode, bytes.Equal(plainDER, der))
	}
	resp, _ = fetch(t, pinnedClient(), "http://"+plain+"/rooms/general?x=1")
	if want := "https://127.0.0.1:" + port + "/rooms/general?x=1"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("plain HTTP: %d to %q, want 308 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}

	// A restart keeps the authority and, with the same names, the server certificate.
	p.kill()
	p2 := startKaiwa(t, db, "-tls-self", "127.0.0.1,localhost")
	resp, _ = fetch(t, pinned, p2.base+"/healthz")
	if !bytes.Equal(resp.TLS.PeerCertificates[0].Raw, leaf) {
		t.Error("server certificate replaced by a restart with the same names")
	}
	if _, again := fetch(t, pinned, p2.base+"/ca.crt"); !bytes.Equal(again, der) {
		t.Error("authority replaced by a restart")
	}
}

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and its key to the files,
// replacing them, and returns the certificate.
func writeSelfSigned(t *testing.T, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "kaiwa test " + serial.String()},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// The key first: a reload between the two writes fails and keeps the old pair.
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

// TestTLSCertReloadOnSIGHUP serves -tls-cert files, replaces them and sends SIGHUP: new
// connections get the new certificate, and a socket opened before goes on.
func TestTLSCertReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writeSelfSigned(t, certFile, keyFile)
	p := startKaiwa(t, filepath.Join(dir, "kaiwa.db"), "-tls-cert", certFile, "-tls-key", keyFile)

	alice := openChat(t, pinnedClient(first), p.base, "alice")
	alice.sendAcked(t, "before")

	second := writeSelfSigned(t, certFile, keyFile)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// New connections, each with a fresh client, until the new certificate is served.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := pinnedClient(second).Get(p.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new certificate not served 30 s after SIGHUP: %v\n%s", err, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp, err := pinnedClient(first).Get(p.base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("the old certificate is still served after the reload")
	}
	select {
	case <-p.exited:
		t.Fatalf("kaiwa ended on SIGHUP: %v", p.err)
	default:
	}
	// The socket opened with the old certificate is still open and served.
	alice.sendAcked(t, "after")
}

// TestTLSFlags checks how the HTTPS flags and their environment twins combine, without
// serving.
func TestTLSFlags(t *testing.T) {
	tests := []struct {
		name       string
		env        []string
		args       []string
		wantErr    bool
		wantAddr   string
		wantCookie string
	}{
		{name: "plain HTTP", wantAddr: "localhost:8080", wantCookie: "auto"},
		{name: "own authority", args: []string{"-tls-self", "kaiwa.test,10.0.0.2"}, wantAddr: ":8443", wantCookie: "always"},
		{name: "own authority by env", env: []string{"KAIWA_TLS_SELF=kaiwa.test"}, wantAddr: ":8443", wantCookie: "always"},
		{name: "explicit address kept", args: []string{"-tls-self", "kaiwa.test", "-addr", ":9443"}, wantAddr: ":9443", wantCookie: "always"},
		{name: "address by env kept", env: []string{"KAIWA_ADDR=:7443"}, args: []string{"-acme", "chat.example.org"}, wantAddr: ":7443", wantCookie: "always"},
		{name: "Secure cookies whatever was asked", args: []string{"-tls-cert", "c.pem", "-tls-key", "k.pem", "-secure-cookies", "never"}, wantAddr: ":8443", wantCookie: "always"},
		{name: "cert without key", args: []string{"-tls-cert", "c.pem"}, wantErr: true},
		{name: "key without cert", args: []string{"-tls-key", "k.pem"}, wantErr: true},
		{name: "two sources", args: []string{"-tls-self", "kaiwa.test", "-acme", "chat.example.org"}, wantErr: true},
		{name: "redirect without HTTPS", args: []string{"-redirect-http", ":8080"}, wantErr: true},
		{name: "bad name", args: []string{"-tls-self", "https://kaiwa.test"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, kv := range tc.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("kaiwa serve", flag.ContinueOnError)
			addr := fs.String("addr", "localhost:8080", "")
			cookies := fs.String("secure-cookies", "auto", "")
			tf := addTLSFlags(fs)
			if _, err := parseFlags(fs, tc.args, io.Discard); err != nil {
				t.Fatal(err)
			}
			err := tf.check()
			if (err != nil) != tc.wantErr {
				t.Fatalf("check: %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				if !errors.Is(err, errUsage) {
					t.Errorf("%v is not a usage error", err)
				}
				return
			}
			tf.applyDefaults(fs, addr, cookies)
			if *addr != tc.wantAddr || *cookies != tc.wantCookie {
				t.Errorf("addr %q, secure cookies %q; want %q, %q", *addr, *cookies, tc.wantAddr, tc.wantCookie)
			}
		})
	}
}

// TestACMEWiring checks what -acme builds: an autocert manager for exactly the domains, at the
// directory asked for, with its cache in the database, and a TLS config that answers the
// tls-alpn-01 challenge. Nothing reaches the internet.
func TestACMEWiring(t *testing.T) {
	t.Parallel()
	st := storetest.Open(t)
	fs := flag.NewFlagSet("kaiwa serve", flag.ContinueOnError)
	tf := addTLSFlags(fs)
	if _, err := parseFlags(fs, []string{"-acme", "chat.example.org, kaiwa.example.org", "-acme-url", "https://acme.internal/directory"}, io.Discard); err != nil {
		t.Fatal(err)
	}
	ln := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8443}
	ts, err := tf.start(st, ln, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	m := ts.acme
	if m == nil || ts.scheme() != "https" {
		t.Fatalf("acme manager %v, scheme %s", m, ts.scheme())
	}
	if m.Client.DirectoryURL != "https://acme.internal/directory" {
		t.Errorf("directory %q", m.Client.DirectoryURL)
	}
	if _, ok := m.Cache.(tlsca.ACMECache); !ok {
		t.Errorf("cache %T, want the database's", m.Cache)
	}
	for host, allowed := range map[string]bool{"chat.example.org": true, "kaiwa.example.org": true, "other.example.org": false} {
		if err := m.HostPolicy(context.Background(), host); (err == nil) != allowed {
			t.Errorf("HostPolicy(%s) = %v, allowed %v", host, err, allowed)
		}
	}
	if !slices.Contains(ts.config.NextProtos, "acme-tls/1") || ts.config.MinVersion != tls.VersionTLS12 {
		t.Errorf("TLS config: protocols %v, min version %x", ts.config.NextProtos, ts.config.MinVersion)
	}
	// The plain listener answers http-01 challenges through the manager and redirects the rest.
	rec := httptest.NewRecorder()
	m.HTTPHandler(redirectToHTTPS("8443", ts.setup)).ServeHTTP(rec, httptest.NewRequest("GET", "http://chat.example.org/rooms", nil))
	if rec.Code != http.StatusPermanentRedirect || rec.Header().Get("Location") != "https://chat.example.org:8443/rooms" {
		t.Errorf("plain request: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
}

func TestRedirectToHTTPS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host, port, path, want string
	}{
		{"kaiwa.test:8080", "8443", "/rooms/general?x=1", "https://kaiwa.test:8443/rooms/general?x=1"},
		{"kaiwa.test", "443", "/", "https://kaiwa.test/"},
		{"[fe80::1]:80", "8443", "/login", "https://[fe80::1]:8443/login"},
		{"[fe80::1]:80", "443", "/login", "https://[fe80::1]/login"},
	}
	for _, tc := range tests {
		t.Run(tc.host+" "+tc.port, func(t *testing.T) {
			r := httptest.NewRequest("POST", tc.path, nil)
			r.Host = tc.host
			rec := httptest.NewRecorder()
			redirectToHTTPS(tc.port, setup.Config{}).ServeHTTP(rec, r)
			if rec.Code != http.StatusPermanentRedirect || rec.Header().Get("Location") != tc.want {
				t.Errorf("%d to %q, want 308 to %q", rec.Code, rec.Header().Get("Location"), tc.want)
			}
		})
	}
}
