package tlsca

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// Files is a certificate and key read from PEM files. Reload reads them again; handshakes after
// it get the new certificate, and connections already open are not touched. Its methods are safe
// for concurrent use.
type Files struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// LoadFiles reads the certificate chain in certFile and its key in keyFile.
func LoadFiles(certFile, keyFile string) (*Files, error) {
	f := &Files{certFile: certFile, keyFile: keyFile}
	if err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Reload reads the files again. On error the certificate in use stays.
func (f *Files) Reload() error {
	c, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		return fmt.Errorf("tlsca: %w", err)
	}
	f.cert.Store(&c)
	return nil
}

// GetCertificate returns the certificate last read, for tls.Config.GetCertificate.
func (f *Files) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f.cert.Load(), nil
}
