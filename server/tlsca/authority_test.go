package tlsca_test

import (
	"crypto/x509"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"kaiwa/server/store"
	"kaiwa/server/store/storetest"
	"kaiwa/server/tlsca"
)

// clock is a settable clock for an Authority.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

// verify checks that leaf chains to ca alone, at time at, for host (a DNS name or an IP).
func verify(leaf, ca *x509.Certificate, host string, at time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:       roots,
		DNSName:     host,
		CurrentTime: at,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

func caOf(t *testing.T, a *tlsca.Authority) *x509.Certificate {
	t.Helper()
	ca, err := x509.ParseCertificate(a.CACert())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestAuthorityChainVerifies(t *testing.T) {
	st := storetest.Open(t)
	clk := newClock()
	names := []string{"kaiwa.test", "localhost", "Laptop.Local", "127.0.0.1", "192.168.1.20", "::1"}
	a, err := tlsca.Open(st, names, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	ca, leaf := caOf(t, a), a.Leaf()
	if !ca.IsCA || !ca.BasicConstraintsValid || ca.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("authority: IsCA %v, basic constraints %v, key %v", ca.IsCA, ca.BasicConstraintsValid, ca.PublicKeyAlgorithm)
	}
	for _, host := range []string{"kaiwa.test", "localhost", "laptop.local", "127.0.0.1", "192.168.1.20", "::1"} {
		if err := verify(leaf, ca, host, clk.t); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	for _, host := range []string{"example.com", "10.0.0.1", "other.test"} {
		if err := verify(leaf, ca, host, clk.t); err == nil {
			t.Errorf("%s: verifies, but it is not one of the names", host)
		}
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got > 397*24*time.Hour {
		t.Errorf("server certificate valid for %v, browsers accept at most 397 days", got)
	}
	if leaf.NotBefore.After(clk.t) || !leaf.NotAfter.After(clk.t.Add(300*24*time.Hour)) {
		t.Errorf("server certificate valid %v to %v, issued at %v", leaf.NotBefore, leaf.NotAfter, clk.t)
	}
	hasIP := slices.ContainsFunc(leaf.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.ParseIP("192.168.1.20")) })
	if !hasIP || slices.Contains(leaf.DNSNames, "192.168.1.20") {
		t.Errorf("IP addresses must be IP SANs: DNS %v, IP %v", leaf.DNSNames, leaf.IPAddresses)
	}
	// The certificate served is the one Leaf reports, and it carries no authority key.
	served, err := a.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !served.Leaf.Equal(leaf) || len(served.Certificate) != 1 {
		t.Errorf("served chain of %d certificates, leaf equal %v", len(served.Certificate), served.Leaf.Equal(leaf))
	}
	if fp := a.Fingerprint(); len(fp) != 32*3-1 || fp != tlsca.Fingerprint(ca.Raw) {
		t.Errorf("fingerprint %q", fp)
	}
}

func TestAuthorityReissuesWhenNamesChange(t *testing.T) {
	st := storetest.Open(t)
	clk := newClock()
	a, err := tlsca.Open(st, []string{"kaiwa.test", "192.168.1.20"}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	// The same names in another order and case are the same names.
	same, err := tlsca.Open(st, []string{"192.168.1.20", "KAIWA.test"}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	if !same.Leaf().Equal(a.Leaf()) {
		t.Error("the same names in another order issued a new certificate")
	}
	b, err := tlsca.Open(st, []string{"kaiwa.test", "10.1.2.3"}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	if b.Leaf().Equal(a.Leaf()) {
		t.Fatal("names changed, server certificate kept")
	}
	if !slices.Equal(b.CACert(), a.CACert()) {
		t.Fatal("names changed, authority replaced: every device would have to trust it again")
	}
	ca := caOf(t, b)
	if err := verify(b.Leaf(), ca, "10.1.2.3", clk.t); err != nil {
		t.Errorf("new name: %v", err)
	}
	if err := verify(b.Leaf(), ca, "192.168.1.20", clk.t); err == nil {
		t.Error("the name dropped still verifies")
	}
}

func TestAuthorityKeptAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kaiwa.db")
	clk := newClock()
	names := []string{"kaiwa.test", "127.0.0.1"}
	open := func() (ca, leaf []byte) {
		t.Helper()
		st, err := store.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		a, err := tlsca.Open(st, names, clk.now)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Check(); err != nil {
			t.Fatal(err)
		}
		return a.CACert(), a.Leaf().Raw
	}
	ca1, leaf1 := open()
	clk.t = clk.t.Add(100 * 24 * time.Hour)
	ca2, leaf2 := open()
	if !slices.Equal(ca1, ca2) {
		t.Error("authority replaced across a restart")
	}
	if !slices.Equal(leaf1, leaf2) {
		t.Error("server certificate replaced across a restart, with the same names and far from its end")
	}
}

func TestAuthorityRenewsBeforeExpiry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kaiwa.db")
	st := storetest.OpenAt(t, path)
	clk := newClock()
	a, err := tlsca.Open(st, []string{"kaiwa.test"}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	first := a.Leaf()
	renewAt := first.NotAfter.Add(-tlsca.RenewBefore)

	clk.t = renewAt.Add(-time.Minute)
	c, err := a.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Leaf.Equal(first) {
		t.Fatal("renewed more than RenewBefore ahead of the end")
	}

	clk.t = renewAt.Add(time.Minute)
	c, err = a.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf.Equal(first) {
		t.Fatal("not renewed within RenewBefore of the end")
	}
	if err := verify(c.Leaf, caOf(t, a), "kaiwa.test", clk.t.Add(300*24*time.Hour)); err != nil {
		t.Errorf("renewed certificate, 300 days on: %v", err)
	}
	if !a.Leaf().Equal(c.Leaf) {
		t.Error("Leaf does not report the renewed certificate")
	}
	// The renewed certificate is the one kept.
	again, err := tlsca.Open(st, []string{"kaiwa.test"}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Leaf().Equal(c.Leaf) {
		t.Error("the renewed certificate was not kept")
	}

	// Started after the end, a new certificate is issued at once.
	clk.t = c.Leaf.NotAfter.Add(time.Hour)
	late, err := tlsca.Open(st, []string{"kaiwa.test"}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(late.Leaf(), caOf(t, late), "kaiwa.test", clk.t); err != nil {
		t.Errorf("started after the end: %v", err)
	}
}

func TestCheckNames(t *testing.T) {
	tests := []struct {
		name  string
		in    []string
		want  []string
		valid bool
	}{
		{"names and addresses", []string{" Kaiwa.Test ", "192.168.1.2", "fe80::1", "laptop"}, []string{"kaiwa.test", "192.168.1.2", "fe80::1", "laptop"}, true},
		{"duplicates dropped", []string{"a.test", "A.test", ""}, []string{"a.test"}, true},
		{"empty", []string{"", " "}, nil, false},
		{"url", []string{"https://kaiwa.test"}, nil, false},
		{"port", []string{"kaiwa.test:8443"}, nil, false},
		{"wildcard", []string{"*.kaiwa.test"}, nil, false},
		{"empty label", []string{"kaiwa..test"}, nil, false},
		{"hyphen at the end of a label", []string{"kaiwa-.test"}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tlsca.CheckNames(tc.in)
			if (err == nil) != tc.valid {
				t.Fatalf("CheckNames(%q) error %v, valid %v", tc.in, err, tc.valid)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("CheckNames(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
