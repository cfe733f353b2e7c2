package prometheus

import (
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
)

// DefaultAddress is where WithServer listens when given an empty address:
// loopback only, on the port OTel's Prometheus exporter conventionally uses.
const DefaultAddress = "127.0.0.1:9464"

// DefaultPath is the path the built-in server serves metrics on.
const DefaultPath = "/metrics"

type config struct {
	registerer promclient.Registerer
	serve      bool
	addr       string
	path       string
	pathSet    bool
	scopeInfo  bool
	targetInfo bool
	logger     *slog.Logger

	readHeaderTimeout time.Duration
	readTimeout       time.Duration
	writeTimeout      time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int

	// auth is the credential every request must carry; nil means none.
	auth authenticator
	// certFile and keyFile, if set, make the built-in server speak TLS.
	certFile, keyFile string

	errs []error
}

// Option configures an Exporter.
type Option interface {
	apply(config) config
}

type optionFunc func(config) config

func (f optionFunc) apply(c config) config { return f(c) }

func newConfig(opts []Option) config {
	c := config{
		addr:              DefaultAddress,
		path:              DefaultPath,
		readHeaderTimeout: 5 * time.Second,
		readTimeout:       10 * time.Second,
		writeTimeout:      30 * time.Second,
		idleTimeout:       60 * time.Second,
		maxHeaderBytes:    16 << 10,
	}
	for _, o := range opts {
		if o != nil {
			c = o.apply(c)
		}
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// WithRegisterer makes the exporter register its collector on reg, for
// example to serve the orchestrator metrics on the same endpoint as the
// application's client_golang metrics. The default is a new private
// registry: never client_golang's global DefaultRegisterer, whose go_* and
// process_* series would appear in every scrape. nil keeps the default.
//
// When reg is a *prometheus.Registry, Handler serves all of it; any other
// Registerer (prometheus.WrapRegistererWith, for instance) is registered on
// as well, and Handler then serves only the exporter's own series from a
// private registry.
//
// The collector describes the names of the library's own series
// (orchestrator_*), so a registry rejects a second collector with any of
// those names: New fails with ErrRegistryConflict when reg already holds
// one, and the application's later Register of, say, an
// orchestrator_tokens_used_total of its own returns an error instead of
// silently hiding one of the two. To serve two Collectors on one registry,
// give each a Registerer that adds a distinguishing constant label:
//
//	prometheus.WithRegisterer(promclient.WrapRegistererWith(promclient.Labels{"collector": "a"}, reg))
//
// Shutdown unregisters the collector, so a new exporter can take its place.
func WithRegisterer(reg promclient.Registerer) Option {
	return optionFunc(func(c config) config {
		if reg != nil {
			c.registerer = reg
		}
		return c
	})
}

// WithRegistry is WithRegisterer for a *prometheus.Registry, which Handler
// then serves in full. nil keeps the default private registry.
func WithRegistry(reg *promclient.Registry) Option {
	return optionFunc(func(c config) config {
		if reg != nil {
			c.registerer = reg
		}
		return c
	})
}

// WithServer makes New start an HTTP server of its own on addr serving the
// metrics on DefaultPath. An empty addr means DefaultAddress (loopback);
// listening on any other interface is the caller's explicit choice. Without
// this option no server is started: mount Handler in your own mux.
//
// The server bounds what a client can hold: 5 s to send the request
// headers, 10 s for the whole request, 30 s to write the response, 60 s
// idle between requests, and 16 KiB of headers. It serves only GET and
// HEAD on its path; see Handler, WithBearerToken, WithBasicAuth and WithTLS.
func WithServer(addr string) Option {
	return optionFunc(func(c config) config {
		c.serve = true
		if addr != "" {
			c.addr = addr
		}
		return c
	})
}

// WithPath sets the path the built-in server (WithServer) serves on. The
// default is DefaultPath. The path must be clean and absolute ("/metrics",
// "/a/b"; not "/a/", "/a//b" or "/a/../b") and made only of the characters
// a URL path carries unescaped: letters, digits and -._~!$&'()*+,;=:@/.
// Anything else (spaces, "{" wildcards, "%", "?", a method prefix), or
// WithPath without WithServer, makes New fail with ErrInvalidOption before
// it listens.
func WithPath(path string) Option {
	return optionFunc(func(c config) config {
		c.pathSet = true
		if err := checkPath(path); err != nil {
			c.errs = append(c.errs, err)
			return c
		}
		c.path = path
		return c
	})
}

// checkPath rejects what http.ServeMux would panic on or read as a pattern
// (a method or host prefix, wildcards, "{$}"), and paths a request can
// never carry as given (not clean, escaped, with a query or fragment).
func checkPath(p string) error {
	if p == "" || p[0] != '/' {
		return fmt.Errorf("%w: path %q must start with /", ErrInvalidOption, p)
	}
	for i := 0; i < len(p); i++ {
		if !pathByte(p[i]) {
			return fmt.Errorf("%w: path %q: byte %q at offset %d is not allowed unescaped in a path", ErrInvalidOption, p, p[i], i)
		}
	}
	if path.Clean(p) != p {
		return fmt.Errorf("%w: path %q is not clean (want %q)", ErrInvalidOption, p, path.Clean(p))
	}
	return nil
}

// pathByte reports whether b may appear unescaped in a URL path segment
// (RFC 3986 pchar without pct-encoded) or is the separator "/".
func pathByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@/", b) >= 0
}

// WithScopeInfo adds the otel_scope_* labels to every series. It is off by
// default because extra labels change the legacy series that dashboards and
// alerts match on.
func WithScopeInfo() Option {
	return optionFunc(func(c config) config {
		c.scopeInfo = true
		return c
	})
}

// WithTargetInfo adds the target_info series carrying the resource
// attributes. It is off by default so that a scrape shows only the
// orchestrator series; it adds no label to them when on.
func WithTargetInfo() Option {
	return optionFunc(func(c config) config {
		c.targetInfo = true
		return c
	})
}

// WithLogger sets the logger for errors of the built-in server and of
// scrapes. By default nothing is logged; nil keeps that default.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c config) config {
		c.logger = l
		return c
	})
}

// WithBearerToken makes every request carry the header
// "Authorization: Bearer <token>"; others get 401 Unauthorized with a
// WWW-Authenticate header. It applies to Handler and to the built-in server.
// The token is compared in constant time. By default no credential is
// required. An empty token, or giving both WithBearerToken and
// WithBasicAuth, makes New fail.
func WithBearerToken(token string) Option {
	return optionFunc(func(c config) config {
		if token == "" {
			c.errs = append(c.errs, fmt.Errorf("%w: WithBearerToken: empty token", ErrInvalidOption))
			return c
		}
		c = setAuth(c, newBearerAuth(token))
		return c
	})
}

// WithBasicAuth makes every request carry HTTP basic authentication with
// user and password; others get 401 Unauthorized with a WWW-Authenticate
// header. It applies to Handler and to the built-in server. Both are
// compared in constant time. Basic authentication sends the password in
// clear text: combine it with WithTLS on any interface but loopback. By
// default no credential is required. An empty user or password, or giving
// both WithBasicAuth and WithBearerToken, makes New fail.
func WithBasicAuth(user, password string) Option {
	return optionFunc(func(c config) config {
		if user == "" || password == "" {
			c.errs = append(c.errs, fmt.Errorf("%w: WithBasicAuth: empty user or password", ErrInvalidOption))
			return c
		}
		c = setAuth(c, newBasicAuth(user, password))
		return c
	})
}

func setAuth(c config, a authenticator) config {
	if c.auth != nil {
		c.errs = append(c.errs, fmt.Errorf("%w: give at most one of WithBearerToken and WithBasicAuth", ErrInvalidOption))
		return c
	}
	c.auth = a
	return c
}

// WithTLS makes the built-in server (WithServer) speak HTTPS with the
// certificate and private key in the given PEM files, TLS 1.2 or later. New
// reads them once and fails if they cannot be loaded; restart the exporter
// to rotate them. Without WithServer it makes New fail with
// ErrInvalidOption, as WithPath does. By default the server speaks plain
// HTTP.
func WithTLS(certFile, keyFile string) Option {
	return optionFunc(func(c config) config {
		if certFile == "" || keyFile == "" {
			c.errs = append(c.errs, fmt.Errorf("%w: WithTLS: empty certificate or key file name", ErrInvalidOption))
			return c
		}
		c.certFile, c.keyFile = certFile, keyFile
		return c
	})
}
