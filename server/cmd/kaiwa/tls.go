package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/crypto/acme/autocert"

	"kaiwa/server"
	"kaiwa/server/setup"
	"kaiwa/server/store"
	"kaiwa/server/tlsca"
)

// httpsAddr is -addr's default when serve speaks HTTPS.
const httpsAddr = ":8443"

// tlsFlags are serve's HTTPS flags. At most one certificate source may be given.
type tlsFlags struct {
	cert, key, self, acme, acmeURL, redirect *string
}

func addTLSFlags(fs *flag.FlagSet) *tlsFlags {
	return &tlsFlags{
		cert:     fs.String("tls-cert", "", "serve HTTPS with this certificate chain (PEM file), read again on SIGHUP; needs -tls-key"),
		key:      fs.String("tls-key", "", "the private key of -tls-cert (PEM file)"),
		self:     fs.String("tls-self", "", "serve HTTPS with a certificate from Kaiwa's own authority (kept in the database) for these host names and IP addresses, comma separated; /setup tells devices how to trust it"),
		acme:     fs.String("acme", "", "serve HTTPS with certificates from an ACME authority for these domains, comma separated, cached in the database"),
		acmeURL:  fs.String("acme-url", tlsca.LetsEncryptURL, "the ACME authority's directory URL"),
		redirect: fs.String("redirect-http", "", "host:port where plain HTTP is answered with a redirect to HTTPS (and, with -tls-self, /setup and /ca.crt are served)"),
	}
}

// on reports whether serve speaks HTTPS.
func (f *tlsFlags) on() bool {
	return *f.cert != "" || *f.key != "" || *f.self != "" || *f.acme != ""
}

// check refuses flags that do not go together.
func (f *tlsFlags) check() error {
	sources := 0
	for _, given := range []bool{*f.cert != "" || *f.key != "", *f.self != "", *f.acme != ""} {
		if given {
			sources++
		}
	}
	switch {
	case sources > 1:
		return fmt.Errorf("%w: give one of -tls-cert with -tls-key, -tls-self or -acme", errUsage)
	case (*f.cert == "") != (*f.key == ""):
		return fmt.Errorf("%w: -tls-cert and -tls-key go together", errUsage)
	case *f.redirect != "" && sources == 0:
		return fmt.Errorf("%w: -redirect-http needs -tls-cert, -tls-self or -acme", errUsage)
	}
	if *f.self != "" {
		if _, err := tlsca.CheckNames(splitList(*f.self)); err != nil {
			return fmt.Errorf("%w: -tls-self: %v", errUsage, err)
		}
	}
	return nil
}

// applyDefaults sets what HTTPS changes: -addr defaults to :8443 unless given (by flag or
// environment), and the refresh cookie is always Secure.
func (f *tlsFlags) applyDefaults(fs *flag.FlagSet, addr, secureCookies *string) {
	if !f.on() {
		return
	}
	given := false
	fs.Visit(func(fl *flag.Flag) { given = given || fl.Name == "addr" })
	if !given {
		*addr = httpsAddr
	}
	*secureCookies = "always"
}

// tlsServing is the HTTPS side of serve. Its zero value serves plain HTTP.
type tlsServing struct {
	flags  *tlsFlags
	config *tls.Config
	setup  setup.Config
	files  *tlsca.Files      // -tls-cert: reloaded on SIGHUP
	acme   *autocert.Manager // -acme: answers http-01 challenges on the plain listener
}

// start prepares the certificate source for a listener at ln. For -tls-self it opens (or
// creates) the authority in st and logs its fingerprint.
func (f *tlsFlags) start(st *store.Store, ln net.Addr, log *slog.Logger) (*tlsServing, error) {
	ts := &tlsServing{flags: f}
	_, port, _ := net.SplitHostPort(ln.String())
	switch {
	case *f.cert != "":
		files, err := tlsca.LoadFiles(*f.cert, *f.key)
		if err != nil {
			return nil, err
		}
		ts.files, ts.config = files, tlsca.Config(files.GetCertificate)
	case *f.self != "":
		a, err := tlsca.Open(st, splitList(*f.self), nil)
		if err != nil {
			return nil, err
		}
		ts.config = tlsca.Config(a.GetCertificate)
		ts.setup = setup.Config{CACert: a.CACert(), Fingerprint: a.Fingerprint(), Addresses: addresses(a.Names(), port)}
		// The operator compares this fingerprint with the one a phone shows before trusting it.
		log.Info("tls_self", slog.String("ca_sha256", a.Fingerprint()), slog.Any("names", a.Names()),
			slog.Time("not_after", a.Leaf().NotAfter), slog.String("setup_url", ts.setup.Addresses[0]+"setup"))
	case *f.acme != "":
		ts.acme = tlsca.NewACME(st, splitList(*f.acme), *f.acmeURL)
		ts.config = ts.acme.TLSConfig()
		ts.config.MinVersion = tls.VersionTLS12
	}
	return ts, nil
}

// addresses returns the https URLs of the server at names and port, the ones other devices can
// reach first: loopback names come last.
func addresses(names []string, port string) []string {
	var near, far []string
	for _, n := range names {
		host := n
		if strings.Contains(n, ":") {
			host = "[" + n + "]"
		}
		if port != "443" {
			host += ":" + port
		}
		u := "https://" + host + "/"
		if addr, err := netip.ParseAddr(n); (err == nil && addr.IsLoopback()) || n == "localhost" || strings.HasSuffix(n, ".localhost") {
			near = append(near, u)
		} else {
			far = append(far, u)
		}
	}
	return append(far, near...)
}

// scheme is the scheme the main listener speaks.
func (ts *tlsServing) scheme() string {
	if ts.config == nil {
		return "http"
	}
	return "https"
}

// serve serves hs on ln, with TLS when it is on.
func (ts *tlsServing) serve(hs *http.Server, ln net.Listener) error {
	if ts.config == nil {
		return hs.Serve(ln)
	}
	hs.TLSConfig = ts.config
	return hs.ServeTLS(ln, "", "")
}

// startExtras starts what runs beside the HTTPS listener at ln: the plain HTTP redirect
// listener and, for -tls-cert, the SIGHUP reload. The returned function stops them. Errors of
// the redirect listener once it serves are sent to served.
func (ts *tlsServing) startExtras(ln net.Addr, log *slog.Logger, served chan<- error) (stop func(context.Context), err error) {
	var stops []func(context.Context)
	stop = func(ctx context.Context) {
		for _, s := range stops {
			s(ctx)
		}
	}
	if ts.files != nil {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		done := make(chan struct{})
		go func() {
			for {
				select {
				case <-hup:
					if err := ts.files.Reload(); err != nil {
						log.Error("tls_reload_failed", slog.Any("err", err))
					} else {
						log.Info("tls_reloaded", slog.String("cert", *ts.flags.cert))
					}
				case <-done:
					return
				}
			}
		}()
		stops = append(stops, func(context.Context) { signal.Stop(hup); close(done) })
	}
	if ts.config == nil || *ts.flags.redirect == "" {
		return stop, nil
	}
	_, port, _ := net.SplitHostPort(ln.String())
	plain, err := net.Listen("tcp", *ts.flags.redirect)
	if err != nil {
		stop(context.Background())
		return nil, fmt.Errorf("-redirect-http: %w", err)
	}
	var h http.Handler = redirectToHTTPS(port, ts.setup)
	if ts.acme != nil {
		h = ts.acme.HTTPHandler(h)
	}
	hs := server.HTTPServer(plain.Addr().String(), h, log)
	go func() {
		if err := hs.Serve(plain); !errors.Is(err, http.ErrServerClosed) {
			served <- fmt.Errorf("-redirect-http: %w", err)
		}
	}()
	log.Info("redirecting_http", slog.String("addr", "http://"+plain.Addr().String()))
	stops = append(stops, func(ctx context.Context) { hs.Shutdown(ctx) })
	return stop, nil
}

// redirectToHTTPS answers plain HTTP: with an authority of Kaiwa's own, /setup and /ca.crt as
// they are, so that a device can fetch the authority before it trusts the server; everything
// else with a permanent redirect to the same host and path on the HTTPS port.
func redirectToHTTPS(httpsPort string, sc setup.Config) http.Handler {
	mux := http.NewServeMux()
	if sc.CACert != nil {
		setup.New(sc).Register(mux)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		if host == "" {
			http.Error(w, "a Host header is needed", http.StatusBadRequest)
			return
		}
		if httpsPort != "443" {
			host = net.JoinHostPort(host, httpsPort)
		} else if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
	return mux
}
