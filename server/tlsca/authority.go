package tlsca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"kaiwa/server/store"
)

// Lifetimes of what an Authority issues.
const (
	// CALifetime is the validity of the authority's own certificate. A device trusts it once,
	// so it outlives the machine that serves Kaiwa.
	CALifetime = 20 * 365 * 24 * time.Hour
	// LeafLifetime is the validity of a server certificate: browsers refuse ones valid for
	// more than 397 days, also from an authority the user installed.
	LeafLifetime = 397 * 24 * time.Hour
	// RenewBefore is how long before its end a server certificate is replaced.
	RenewBefore = 30 * 24 * time.Hour
	// backdate starts every certificate an hour early, for devices whose clock runs behind.
	backdate = time.Hour
)

// Keys of the certs bucket that an Authority uses.
const (
	keyCA   = "self/ca"
	keyLeaf = "self/leaf"
)

// Authority is Kaiwa's own certificate authority and the server certificate it issued for a
// list of names. Both live in the database: the authority is created once and kept, the server
// certificate is kept across restarts and replaced when the names change and before it expires.
// Its methods are safe for concurrent use.
type Authority struct {
	st    *store.Store
	names []string
	now   func() time.Time

	ca    *x509.Certificate
	caKey crypto.Signer

	mu   sync.Mutex // held while a server certificate is issued
	leaf atomic.Pointer[tls.Certificate]
}

// Open loads the authority and its server certificate for names (host names and IP
// addresses) from st, creating the authority on first use and issuing a server certificate
// when none is kept, the kept one names other hosts, or it ends within RenewBefore. now is
// the clock (nil: time.Now).
func Open(st *store.Store, names []string, now func() time.Time) (*Authority, error) {
	if now == nil {
		now = time.Now
	}
	names, err := CheckNames(names)
	if err != nil {
		return nil, err
	}
	a := &Authority{st: st, names: names, now: now}
	if err := a.loadCA(); err != nil {
		return nil, err
	}
	if leaf, err := a.loadLeaf(); err == nil && !a.stale(leaf.Leaf) {
		a.leaf.Store(leaf)
		return a, nil
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if _, err := a.issue(); err != nil {
		return nil, err
	}
	return a, nil
}

// CheckNames validates a list of host names and IP addresses for a server certificate and
// returns it without duplicates, names lowercased.
func CheckNames(names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		if n == "" {
			continue
		}
		if _, err := netip.ParseAddr(n); err != nil && !validHost(n) {
			return nil, fmt.Errorf("tlsca: %q is neither a host name nor an IP address", n)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("tlsca: no host name or IP address to issue a certificate for")
	}
	return out, nil
}

// validHost reports whether s is a DNS host name: dot-separated labels of letters, digits and
// hyphens, none empty or longer than 63 bytes, not starting or ending with a hyphen.
func validHost(s string) bool {
	if len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Names returns the host names and addresses the server certificate is issued for.
func (a *Authority) Names() []string { return slices.Clone(a.names) }

// CACert returns the authority's certificate, DER encoded. It is public: devices install it to
// trust the server.
func (a *Authority) CACert() []byte { return slices.Clone(a.ca.Raw) }

// Fingerprint returns the SHA-256 fingerprint of the authority's certificate as devices show
// it: upper-case hex bytes separated by colons.
func (a *Authority) Fingerprint() string { return Fingerprint(a.ca.Raw) }

// Fingerprint returns the SHA-256 digest of der as upper-case hex bytes separated by colons.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// Leaf returns the server certificate in use.
func (a *Authority) Leaf() *x509.Certificate { return a.leaf.Load().Leaf }

// GetCertificate returns the server certificate, for tls.Config.GetCertificate. A certificate
// within RenewBefore of its end is replaced first; if that fails, the old one is served while
// it is valid.
func (a *Authority) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := a.leaf.Load()
	if !a.stale(c.Leaf) {
		return c, nil
	}
	fresh, err := a.renew()
	if err != nil {
		if a.now().Before(c.Leaf.NotAfter) {
			return c, nil
		}
		return nil, err
	}
	return fresh, nil
}

// renew issues a new server certificate unless another caller just did.
func (a *Authority) renew() (*tls.Certificate, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.leaf.Load(); !a.stale(c.Leaf) {
		return c, nil
	}
	return a.issueLocked()
}

// stale reports whether leaf must be replaced: issued for other names or by another
// authority, or ending within RenewBefore.
func (a *Authority) stale(leaf *x509.Certificate) bool {
	if !a.now().Before(leaf.NotAfter.Add(-RenewBefore)) {
		return true
	}
	if leaf.CheckSignatureFrom(a.ca) != nil {
		return true
	}
	var have []string
	have = append(have, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		if addr, ok := netip.AddrFromSlice(ip); ok {
			have = append(have, addr.Unmap().String())
		}
	}
	want := make([]string, 0, len(a.names))
	for _, n := range a.names {
		if addr, err := netip.ParseAddr(n); err == nil {
			n = addr.Unmap().String()
		}
		want = append(want, n)
	}
	slices.Sort(have)
	slices.Sort(want)
	return !slices.Equal(have, want)
}

// loadCA reads the authority from the store, creating it when there is none or when the one
// kept would end before a server certificate issued now.
func (a *Authority) loadCA() error {
	pemBytes, err := a.st.Cert(keyCA)
	if err == nil {
		c, err := parsePair(pemBytes)
		if err != nil {
			return fmt.Errorf("tlsca: authority in the database: %w", err)
		}
		if a.now().Add(LeafLifetime).Before(c.Leaf.NotAfter) {
			a.ca, a.caKey = c.Leaf, c.PrivateKey.(crypto.Signer)
			return nil
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("tlsca: %w", err)
	}
	return a.createCA()
}

func (a *Authority) createCA() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("tlsca: authority key: %w", err)
	}
	host, _ := os.Hostname()
	if host == "" {
		host = a.names[0]
	}
	now := a.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject: pkix.Name{
			Organization: []string{"Kaiwa"},
			CommonName:   fmt.Sprintf("Kaiwa local authority (%s, %s)", host, now.UTC().Format(time.DateOnly)),
		},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(-backdate + CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("tlsca: authority certificate: %w", err)
	}
	pemBytes, err := encodePair(der, key)
	if err != nil {
		return err
	}
	if err := a.st.PutCert(keyCA, pemBytes); err != nil {
		return fmt.Errorf("tlsca: %w", err)
	}
	a.ca, _ = x509.ParseCertificate(der)
	a.caKey = key
	return nil
}

// loadLeaf reads the kept server certificate.
func (a *Authority) loadLeaf() (*tls.Certificate, error) {
	pemBytes, err := a.st.Cert(keyLeaf)
	if err != nil {
		return nil, fmt.Errorf("tlsca: %w", err)
	}
	c, err := parsePair(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("tlsca: server certificate in the database: %w", err)
	}
	return c, nil
}

func (a *Authority) issue() (*tls.Certificate, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.issueLocked()
}

// issueLocked issues a server certificate for a.names, keeps it and serves it from now on.
func (a *Authority) issueLocked() (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tlsca: server key: %w", err)
	}
	now := a.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"Kaiwa"}, CommonName: a.names[0]},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(-backdate + LeafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range a.names {
		if addr, err := netip.ParseAddr(n); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, addr.AsSlice())
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.ca, key.Public(), a.caKey)
	if err != nil {
		return nil, fmt.Errorf("tlsca: server certificate: %w", err)
	}
	pemBytes, err := encodePair(der, key)
	if err != nil {
		return nil, err
	}
	c, err := parsePair(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("tlsca: server certificate: %w", err)
	}
	if err := a.st.PutCert(keyLeaf, pemBytes); err != nil {
		return nil, fmt.Errorf("tlsca: %w", err)
	}
	a.leaf.Store(c)
	return c, nil
}

// encodePair encodes a certificate and its key as PEM: CERTIFICATE, then PRIVATE KEY (PKCS #8).
func encodePair(der []byte, key crypto.PrivateKey) ([]byte, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("tlsca: encode key: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...), nil
}

// parsePair decodes what encodePair encoded, with Leaf set.
func parsePair(pemBytes []byte) (*tls.Certificate, error) {
	c, err := tls.X509KeyPair(pemBytes, pemBytes)
	if err != nil {
		return nil, err
	}
	if _, ok := c.PrivateKey.(crypto.Signer); !ok || c.Leaf == nil {
		return nil, errors.New("unusable key pair")
	}
	return &c, nil
}

// serial returns a random 128-bit certificate serial number.
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(err) // crypto/rand does not fail on the systems Go supports
	}
	return n
}
