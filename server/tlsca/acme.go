package tlsca

import (
	"context"
	"errors"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"kaiwa/server/store"
)

// LetsEncryptURL is the ACME directory used when none is given.
const LetsEncryptURL = autocert.DefaultACMEDirectory

// keyACME prefixes the ACME cache's keys in the certs bucket.
const keyACME = "acme/"

// ACMECache is autocert's cache in Kaiwa's database: the ACME account key and the certificates
// obtained live in the certs bucket, beside everything else the server keeps.
type ACMECache struct{ st *store.Store }

// NewACMECache returns the cache over st.
func NewACMECache(st *store.Store) ACMECache { return ACMECache{st: st} }

// Get returns the data kept under key, or autocert.ErrCacheMiss.
func (c ACMECache) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := c.st.Cert(keyACME + key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, autocert.ErrCacheMiss
	}
	return data, err
}

// Put keeps data under key.
func (c ACMECache) Put(ctx context.Context, key string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.st.PutCert(keyACME+key, data)
}

// Delete removes key; a missing key is not an error.
func (c ACMECache) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.st.DeleteCert(keyACME + key)
}

// NewACME returns the autocert manager that obtains certificates for domains, and only them,
// from the ACME directory at directoryURL (empty: Let's Encrypt), accepting its terms of
// service, with its cache in st. Its TLSConfig answers tls-alpn-01 challenges; its HTTPHandler
// answers http-01 challenges on port 80.
func NewACME(st *store.Store, domains []string, directoryURL string) *autocert.Manager {
	if directoryURL == "" {
		directoryURL = LetsEncryptURL
	}
	return &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      NewACMECache(st),
		HostPolicy: autocert.HostWhitelist(domains...),
		Client:     &acme.Client{DirectoryURL: directoryURL},
	}
}
