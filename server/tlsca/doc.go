// Package tlsca gives Kaiwa's HTTPS listener its certificates, from one of three sources:
//
//   - Authority (-tls-self): a certificate authority of Kaiwa's own, created on first use and
//     kept in the database, and a server certificate for the configured names signed by it.
//     Devices that trust the authority's certificate (served at /ca.crt) trust the server. The
//     authority's private key is only ever read from and written to the database.
//   - Files (-tls-cert, -tls-key): a certificate and key read from files, read again on Reload
//     (SIGHUP) without disturbing open connections.
//   - ACME (-acme): golang.org/x/crypto/acme/autocert, with its cache in the database.
//
// Each source offers GetCertificate for a tls.Config; Config builds the config around it.
package tlsca

import "crypto/tls"

// Config returns the TLS configuration of Kaiwa's HTTPS listener: TLS 1.2 or newer, the
// certificate chosen per handshake by get.
func Config(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: get,
	}
}
