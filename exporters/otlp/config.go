package otlp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Protocol is the OTLP transport. Its values are those of the
// OTEL_EXPORTER_OTLP_PROTOCOL environment variable.
type Protocol string

const (
	// ProtocolGRPC is OTLP over gRPC, by default to localhost:4317.
	ProtocolGRPC Protocol = "grpc"
	// ProtocolHTTP is OTLP over HTTP with protobuf bodies, by default to
	// localhost:4318/v1/metrics.
	ProtocolHTTP Protocol = "http/protobuf"
)

// Temporality is how counters and histograms report their sums.
type Temporality int

const (
	// Cumulative reports the total since the exporter started in every
	// export, so an export lost during an outage is made good by the next
	// one that arrives. It is the default.
	Cumulative Temporality = iota + 1
	// Delta reports only what changed since the previous export, for
	// backends that require it. What an export carried is lost for good
	// when the export fails. Up-down counters (active sessions) stay
	// cumulative, as the OTLP "delta" temporality preference specifies.
	Delta
)

// DefaultInterval is the time between two exports when neither WithInterval
// nor OTEL_METRIC_EXPORT_INTERVAL is set.
const DefaultInterval = 10 * time.Second

// defaultLogEvery is how often at most one line is logged per failure kind.
const defaultLogEvery = time.Minute

// Environment variables read by this package itself; every other
// OTEL_EXPORTER_OTLP_* variable is read by the OTel exporters.
const (
	envProtocol        = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envMetricsProtocol = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"
	envInterval        = "OTEL_METRIC_EXPORT_INTERVAL"
)

type config struct {
	protocol      Protocol
	endpoint      string
	endpointURL   string
	insecure      bool
	caFile        string
	certFile      string
	keyFile       string
	tlsConfig     *tls.Config
	headers       map[string]string
	gzip          bool
	timeout       time.Duration
	retry         *bool
	temporality   Temporality
	interval      time.Duration
	exportTimeout time.Duration
	logger        *slog.Logger

	logEvery time.Duration
	now      func() time.Time

	errs []error
}

// Option configures an Exporter.
type Option interface {
	apply(config) config
}

type optionFunc func(config) config

func (f optionFunc) apply(c config) config { return f(c) }

func newConfig(opts []Option) (config, error) {
	c := config{
		logEvery: defaultLogEvery,
		now:      time.Now,
	}
	for _, o := range opts {
		if o != nil {
			c = o.apply(c)
		}
	}
	if c.protocol == "" {
		p, err := protocolFromEnv()
		if err != nil {
			c.errs = append(c.errs, err)
		}
		c.protocol = p
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.interval == 0 {
		c.interval = intervalFromEnv(c.logger)
	}
	if c.insecure && (c.caFile != "" || c.certFile != "" || c.tlsConfig != nil) {
		c.errs = append(c.errs, fmt.Errorf("%w: WithInsecure conflicts with a TLS option", ErrInvalidOption))
	}
	if c.tlsConfig != nil && (c.caFile != "" || c.certFile != "") {
		c.errs = append(c.errs, fmt.Errorf("%w: WithTLSConfig conflicts with WithCAFile and WithClientCertificate", ErrInvalidOption))
	}
	return c, errors.Join(c.errs...)
}

// intervalFromEnv reads OTEL_METRIC_EXPORT_INTERVAL (milliseconds) as the
// SDK's PeriodicReader does: a value that is not a positive integer is
// ignored, with a warning, in favour of DefaultInterval.
func intervalFromEnv(logger *slog.Logger) time.Duration {
	v, ok := os.LookupEnv(envInterval)
	if !ok || v == "" {
		return DefaultInterval
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 || ms > math.MaxInt64/int64(time.Millisecond) {
		logger.Warn("ignoring an invalid export interval", "variable", envInterval, "value", v, "using", DefaultInterval)
		return DefaultInterval
	}
	return time.Duration(ms) * time.Millisecond
}

// protocolFromEnv applies OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, then
// OTEL_EXPORTER_OTLP_PROTOCOL, then gRPC.
func protocolFromEnv() (Protocol, error) {
	for _, name := range []string{envMetricsProtocol, envProtocol} {
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			continue
		}
		switch p := Protocol(v); p {
		case ProtocolGRPC, ProtocolHTTP:
			return p, nil
		default:
			return ProtocolGRPC, fmt.Errorf("%w: %s=%q is not supported, want %q or %q", ErrInvalidOption, name, v, ProtocolGRPC, ProtocolHTTP)
		}
	}
	return ProtocolGRPC, nil
}

// WithProtocol chooses the transport: ProtocolGRPC or ProtocolHTTP. Without
// it OTEL_EXPORTER_OTLP_METRICS_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL
// decides, and gRPC when neither is set. Any other value makes New fail.
func WithProtocol(p Protocol) Option {
	return optionFunc(func(c config) config {
		if p != ProtocolGRPC && p != ProtocolHTTP {
			c.errs = append(c.errs, fmt.Errorf("%w: protocol %q is not supported, want %q or %q", ErrInvalidOption, p, ProtocolGRPC, ProtocolHTTP))
			return c
		}
		c.protocol = p
		return c
	})
}

// WithEndpoint sets the host and port the exporter sends to, such as
// "127.0.0.1:4317" or "[::1]:4318", with no scheme or path. Without it (and
// without WithEndpointURL) OTEL_EXPORTER_OTLP_METRICS_ENDPOINT or
// OTEL_EXPORTER_OTLP_ENDPOINT is used, else localhost:4317 for gRPC and
// localhost:4318 for HTTP. Anything but host:port with a port from 1 to
// 65535 makes New fail with ErrInvalidOption: a URL such as
// "http://host:4317" belongs in WithEndpointURL, and the error says so.
func WithEndpoint(hostPort string) Option {
	return optionFunc(func(c config) config {
		if err := checkEndpoint(hostPort); err != nil {
			c.errs = append(c.errs, err)
			return c
		}
		c.endpoint, c.endpointURL = hostPort, ""
		return c
	})
}

// WithEndpointURL sets the endpoint as a URL, such as
// "http://127.0.0.1:4318/v1/metrics". Its scheme decides transport security
// ("http" is insecure) and, for HTTP, its path is used as given. The last
// of WithEndpoint and WithEndpointURL wins. A URL that does not parse makes
// New fail.
func WithEndpointURL(u string) Option {
	return optionFunc(func(c config) config {
		if err := checkURL(u); err != nil {
			c.errs = append(c.errs, err)
			return c
		}
		c.endpointURL, c.endpoint = u, ""
		return c
	})
}

// WithInsecure sends without transport security (plaintext gRPC, http://).
// Without it the connection uses TLS unless the endpoint URL's scheme is
// "http" or OTEL_EXPORTER_OTLP_INSECURE is true. Combining it with a TLS
// option makes New fail.
func WithInsecure() Option {
	return optionFunc(func(c config) config {
		c.insecure = true
		return c
	})
}

// WithCAFile makes the exporter trust the PEM certificates in path, instead
// of the system roots, when it verifies the server. The file is read by New;
// a file that cannot be read or holds no certificate makes New fail.
// Without it OTEL_EXPORTER_OTLP_CERTIFICATE applies.
func WithCAFile(path string) Option {
	return optionFunc(func(c config) config {
		c.caFile = path
		return c
	})
}

// WithClientCertificate makes the exporter present the PEM certificate
// (chain) in certFile with the private key in keyFile (mutual TLS). The
// files are read by New; a pair that does not load makes New fail. Without
// it OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and _CLIENT_KEY apply.
func WithClientCertificate(certFile, keyFile string) Option {
	return optionFunc(func(c config) config {
		if certFile == "" || keyFile == "" {
			c.errs = append(c.errs, fmt.Errorf("%w: WithClientCertificate needs both a certificate and a key file", ErrInvalidOption))
			return c
		}
		c.certFile, c.keyFile = certFile, keyFile
		return c
	})
}

// WithTLSConfig sets the TLS configuration in full, for what the file
// options cannot express. The config is cloned by New. It cannot be
// combined with WithCAFile or WithClientCertificate. nil is ignored.
func WithTLSConfig(cfg *tls.Config) Option {
	return optionFunc(func(c config) config {
		if cfg != nil {
			c.tlsConfig = cfg.Clone()
		}
		return c
	})
}

// WithHeaders sends the given headers (gRPC metadata) with every export,
// typically an authorization token. The map is copied. Header values are
// never logged by this package. Without it OTEL_EXPORTER_OTLP_HEADERS
// applies. Given twice, the maps are merged, later keys winning.
func WithHeaders(headers map[string]string) Option {
	h := maps.Clone(headers)
	return optionFunc(func(c config) config {
		if len(h) == 0 {
			return c
		}
		if c.headers == nil {
			c.headers = make(map[string]string, len(h))
		}
		maps.Copy(c.headers, h)
		return c
	})
}

// WithGzip compresses every export with gzip. Without it
// OTEL_EXPORTER_OTLP_COMPRESSION applies, and by default nothing is
// compressed.
func WithGzip() Option {
	return optionFunc(func(c config) config {
		c.gzip = true
		return c
	})
}

// WithTimeout bounds each export, retries included; an export still running
// then is abandoned and counted as failed. Without it
// OTEL_EXPORTER_OTLP_TIMEOUT applies, else 10 s. A timeout <= 0 makes New
// fail.
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(c config) config {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("%w: timeout %v, want > 0", ErrInvalidOption, d))
			return c
		}
		c.timeout = d
		return c
	})
}

// WithRetry turns retrying of retryable failures (server unavailable,
// throttled) on or off. By default it is on: the OTel exporter retries with
// exponential back-off, 5 s at first, within the WithTimeout bound. Off,
// a failed export is given up at once and the next interval's export
// carries the data (with Cumulative temporality).
func WithRetry(enabled bool) Option {
	return optionFunc(func(c config) config {
		c.retry = &enabled
		return c
	})
}

// WithTemporality sets the temporality: Cumulative or Delta. Without it
// OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE applies, else
// Cumulative. Any other value makes New fail.
func WithTemporality(t Temporality) Option {
	return optionFunc(func(c config) config {
		if t != Cumulative && t != Delta {
			c.errs = append(c.errs, fmt.Errorf("%w: unknown temporality %d", ErrInvalidOption, t))
			return c
		}
		c.temporality = t
		return c
	})
}

// WithInterval sets the time between two periodic exports. Without it
// OTEL_METRIC_EXPORT_INTERVAL (milliseconds) applies, else DefaultInterval
// (10 s). Records are aggregated in memory in between; an interval <= 0
// makes New fail.
func WithInterval(d time.Duration) Option {
	return optionFunc(func(c config) config {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("%w: interval %v, want > 0", ErrInvalidOption, d))
			return c
		}
		c.interval = d
		return c
	})
}

// WithExportTimeout bounds one collect-and-export cycle of the periodic
// reader, including those run by a flush or shutdown whose context has no
// deadline. Without it OTEL_METRIC_EXPORT_TIMEOUT applies, else 30 s. A
// timeout <= 0 makes New fail.
func WithExportTimeout(d time.Duration) Option {
	return optionFunc(func(c config) config {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("%w: export timeout %v, want > 0", ErrInvalidOption, d))
			return c
		}
		c.exportTimeout = d
		return c
	})
}

// WithLogger sets the logger for export failures: at most one Warn line per
// failure kind per minute, carrying the number of failures it stands for,
// and one Info line when exports succeed again. By default nothing is
// logged; nil keeps that default.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c config) config {
		c.logger = l
		return c
	})
}

// checkEndpoint accepts host:port only, so that a URL or a path given to
// WithEndpoint fails in New instead of in every export.
func checkEndpoint(hostPort string) error {
	if strings.Contains(hostPort, "://") {
		return fmt.Errorf("%w: WithEndpoint(%q): want host:port without a scheme; pass a URL to WithEndpointURL instead", ErrInvalidOption, hostPort)
	}
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return fmt.Errorf("%w: WithEndpoint(%q): want host:port: %w", ErrInvalidOption, hostPort, err)
	}
	if !validHost(host, strings.HasPrefix(hostPort, "[")) {
		return fmt.Errorf("%w: WithEndpoint(%q): want a host name or IP address before the port (an IPv6 address in brackets)", ErrInvalidOption, hostPort)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strings.Trim(port, "0123456789") != "" {
		return fmt.Errorf("%w: WithEndpoint(%q): port %q, want 1 to 65535", ErrInvalidOption, hostPort, port)
	}
	return nil
}

// validHost accepts an IP address without a zone or a DNS name of letters,
// digits, '-', '_' and '.'. A host that was written in brackets must be an
// IPv6 address, as in a URL ("[0]:1" or "[127.0.0.1]:1" are no URL hosts).
func validHost(host string, bracketed bool) bool {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Zone() == "" && a.Is6() == bracketed
	}
	if bracketed {
		return false
	}
	if host == "" || len(host) > 253 {
		return false
	}
	for i := 0; i < len(host); i++ {
		b := host[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-' || b == '_' || b == '.') {
			return false
		}
	}
	return true
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: endpoint URL: %w", ErrInvalidOption, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: endpoint URL %q: want http:// or https:// and a host", ErrInvalidOption, raw)
	}
	return nil
}

// buildTLS returns the TLS configuration the options ask for, or nil when
// none does (then the OTel exporter's own defaults and environment apply).
func (c config) buildTLS() (*tls.Config, error) {
	if c.tlsConfig != nil {
		return c.tlsConfig, nil
	}
	if c.caFile == "" && c.certFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, fmt.Errorf("%w: reading CA file: %w", ErrInvalidOption, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrInvalidOption, c.caFile)
		}
		tc.RootCAs = pool
	}
	if c.certFile != "" {
		cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: loading client certificate: %w", ErrInvalidOption, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
