package tlsca_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/acme/autocert"

	"kaiwa/server/store/storetest"
	"kaiwa/server/tlsca"
)

func TestACMECache(t *testing.T) {
	st := storetest.Open(t)
	var c autocert.Cache = tlsca.NewACMECache(st)
	ctx := context.Background()
	if _, err := c.Get(ctx, "kaiwa.example"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("Get of a missing key: %v, want ErrCacheMiss", err)
	}
	if err := c.Put(ctx, "kaiwa.example", []byte("cert and key")); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "acme_account+key", []byte("account")); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, "kaiwa.example")
	if err != nil || string(got) != "cert and key" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	// The cache has its own keys: the -tls-self authority's cannot be read or overwritten.
	if _, err := c.Get(ctx, "self/ca"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Errorf("Get(self/ca): %v", err)
	}
	if err := c.Delete(ctx, "kaiwa.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "kaiwa.example"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Errorf("Get after Delete: %v, want ErrCacheMiss", err)
	}
	if err := c.Delete(ctx, "never.example"); err != nil {
		t.Errorf("Delete of a missing key: %v", err)
	}
	if got, err := c.Get(ctx, "acme_account+key"); err != nil || string(got) != "account" {
		t.Errorf("other key after Delete: %q, %v", got, err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Put(cancelled, "x", []byte("y")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: %v", err)
	}
}

func TestNewACME(t *testing.T) {
	st := storetest.Open(t)
	ctx := context.Background()
	tests := []struct {
		name, url, want string
	}{
		{"default directory", "", "https://acme-v02.api.letsencrypt.org/directory"},
		{"own directory", "https://acme.internal/dir", "https://acme.internal/dir"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tlsca.NewACME(st, []string{"chat.example.org", "kaiwa.example.org"}, tc.url)
			if m.Client.DirectoryURL != tc.want {
				t.Errorf("directory %q, want %q", m.Client.DirectoryURL, tc.want)
			}
			if _, ok := m.Cache.(tlsca.ACMECache); !ok {
				t.Errorf("cache %T, want the database's", m.Cache)
			}
			for host, allowed := range map[string]bool{"chat.example.org": true, "kaiwa.example.org": true, "example.org": false, "evil.example": false} {
				if err := m.HostPolicy(ctx, host); (err == nil) != allowed {
					t.Errorf("HostPolicy(%s) = %v, allowed %v", host, err, allowed)
				}
			}
			if m.Prompt("https://terms") != true {
				t.Error("terms of service not accepted")
			}
		})
	}
}

// writePair writes a self-signed certificate for name and its key as PEM files in dir.
func writePair(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestFilesReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writePair(t, dir, "one.test")
	f, err := tlsca.LoadFiles(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	name := func() string {
		t.Helper()
		c, err := f.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.Subject.CommonName
	}
	if got := name(); got != "one.test" {
		t.Fatalf("serving %q", got)
	}
	writePair(t, dir, "two.test")
	if got := name(); got != "one.test" {
		t.Fatalf("changed files served before Reload: %q", got)
	}
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := name(); got != "two.test" {
		t.Fatalf("after Reload serving %q, want two.test", got)
	}
	// A broken file is refused and the certificate in use stays.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); err == nil {
		t.Error("Reload accepted a broken key file")
	}
	if got := name(); got != "two.test" {
		t.Errorf("after a failed Reload serving %q, want two.test", got)
	}
	if _, err := tlsca.LoadFiles(filepath.Join(dir, "missing.pem"), keyFile); err == nil {
		t.Error("LoadFiles accepted a missing file")
	}
}
