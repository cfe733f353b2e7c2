package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// DefaultQueryTimeout bounds each query when WithQueryTimeout is not given.
const DefaultQueryTimeout = 30 * time.Second

// Client answers AggregatedStats and Orchestrators from a Prometheus-
// compatible query API. Its methods are safe for concurrent use.
type Client struct {
	addr     string
	api      v1.API
	hc       *http.Client // the API's, for the engine's /metrics page
	ret      retentionCache
	selector string // extra matchers, without braces; "" for none
	timeout  time.Duration
	warn     func(Warning)
	now      func() time.Time
	parallel int
	rawMax   time.Duration // the longest interval read from raw samples
	grid     int64         // intervals per grid
	budget   float64       // the most raw samples a zoom reads at once
	whole    float64       // the most raw samples a window is read raw with
	chunk    float64       // the most raw samples one query of that reads
	// optimistic is the most bytes of answer the optimistic read of a
	// window's raw samples takes (0: none).
	optimistic int64
}

var _ otelcollector.StatsSource = (*Client)(nil)

// Warning is a warning or an informational message an engine returned
// alongside a successful answer (Prometheus' "warnings" and "infos"): the
// answer was used, but may be partial (for example a store of Thanos or
// Mimir that did not answer).
type Warning struct {
	// Engine is the engine's address, Query the PromQL expression.
	Engine, Query string
	// Info is true for an informational message, false for a warning.
	Info    bool
	Message string
}

func (w Warning) String() string {
	kind := "warning"
	if w.Info {
		kind = "info"
	}
	return fmt.Sprintf("fleet: engine %s: query %q: %s: %s", w.Engine, w.Query, kind, w.Message)
}

// Option configures New.
type Option interface{ apply(config) config }

type optionFunc func(config) config

func (f optionFunc) apply(c config) config { return f(c) }

type config struct {
	selector   string
	client     *http.Client
	rt         http.RoundTripper
	headers    http.Header
	token      string
	timeout    time.Duration
	warn       func(Warning)
	logger     *slog.Logger
	errs       []error
	now        func() time.Time
	concurrent int
	rawMax     time.Duration
	grid       int64
	budget     float64
	whole      float64
	chunk      float64
	optimistic int64
}

// WithSelector adds label matchers to every query, for example
// `job="orchestrator-daemon"` or `env="prod", region=~"eu-.*"`: a
// comma-separated list of name op "value" with op one of = != =~ !~, as
// inside PromQL braces. An invalid list makes New fail. Default: none.
func WithSelector(matchers string) Option {
	return optionFunc(func(c config) config {
		m := strings.TrimSpace(matchers)
		if m != "" && !matchersRE.MatchString(m) {
			c.errs = append(c.errs, fmt.Errorf("WithSelector(%q): want name op \"value\" matchers separated by commas", matchers))
			return c
		}
		c.selector = m
		return c
	})
}

// matchersRE accepts a comma-separated list of PromQL label matchers.
var matchersRE = regexp.MustCompile(`^\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*(,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*)*,?\s*$`)

// WithHTTPClient sends the queries through hc (its Transport, Timeout,
// cookie jar). It takes precedence over WithRoundTripper. Default: an
// http.Client on client_golang's api.DefaultRoundTripper. Nil is ignored.
func WithHTTPClient(hc *http.Client) Option {
	return optionFunc(func(c config) config {
		if hc != nil {
			c.client = hc
		}
		return c
	})
}

// WithRoundTripper sends the queries through rt (TLS, authentication).
// Default: client_golang's api.DefaultRoundTripper. Nil is ignored.
func WithRoundTripper(rt http.RoundTripper) Option {
	return optionFunc(func(c config) config {
		if rt != nil {
			c.rt = rt
		}
		return c
	})
}

// WithHeader adds a header to every request, for example the tenant header
// X-Scope-OrgID of Mimir and Cortex. Later calls for the same name add
// values. An empty or invalid name makes New fail.
func WithHeader(name, value string) Option {
	return optionFunc(func(c config) config {
		if !validHeaderName(name) || strings.ContainsAny(value, "\r\n") {
			c.errs = append(c.errs, fmt.Errorf("WithHeader(%q): invalid header", name))
			return c
		}
		if c.headers == nil {
			c.headers = http.Header{}
		}
		c.headers = c.headers.Clone()
		c.headers.Add(name, value)
		return c
	})
}

// WithBearerToken sends "Authorization: Bearer token" with every request.
// An empty token, or one with a line break, makes New fail.
func WithBearerToken(token string) Option {
	return optionFunc(func(c config) config {
		if token == "" || strings.ContainsAny(token, "\r\n") {
			c.errs = append(c.errs, errors.New("WithBearerToken: empty or invalid token"))
			return c
		}
		c.token = token
		return c
	})
}

// WithQueryTimeout bounds each query the client sends (it is also passed to
// the engine as its timeout parameter); the ctx of a call bounds the call as
// a whole. Default DefaultQueryTimeout; zero or negative makes New fail.
func WithQueryTimeout(d time.Duration) Option {
	return optionFunc(func(c config) config {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("WithQueryTimeout(%v): must be positive", d))
			return c
		}
		c.timeout = d
		return c
	})
}

// WithWarningHandler calls f with each warning or info an engine returns
// alongside a successful answer; the answer is still used. f may be called
// from several goroutines at once. Default: each is logged at level Warn
// (infos at Info) on the logger of WithLogger. Nil restores the default.
func WithWarningHandler(f func(Warning)) Option {
	return optionFunc(func(c config) config {
		c.warn = f
		return c
	})
}

// WithLogger sets the logger of the default warning handler. Default
// slog.Default(); nil is ignored.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c config) config {
		if l != nil {
			c.logger = l
		}
		return c
	})
}

// WithMaxConcurrentQueries bounds how many queries one call has in flight
// at once, and the groups of daemons Orchestrators queries. Below 3,
// AggregatedStats does not read a window optimistically (see the package
// doc, Cost): the read needs the sample count beside it. Default 4; less
// than 1 makes New fail.
func WithMaxConcurrentQueries(n int) Option {
	return optionFunc(func(c config) config {
		if n < 1 {
			c.errs = append(c.errs, fmt.Errorf("WithMaxConcurrentQueries(%d): must be at least 1", n))
			return c
		}
		c.concurrent = n
		return c
	})
}

// withClock is a test hook: the clock Last and a zero End are read from.
func withClock(now func() time.Time) Option {
	return optionFunc(func(c config) config {
		c.now = now
		return c
	})
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// New returns a Client for the Prometheus-compatible HTTP API at addr, for
// example "http://127.0.0.1:9090" or "https://mimir.example/prometheus". It
// checks addr (an absolute http or https URL with a host) and the options,
// and contacts nothing: a daemon can start while its engine is down. A bad
// address or option gives an error wrapping otelcollector.ErrInvalidOption.
func New(addr string, opts ...Option) (*Client, error) {
	cfg := config{timeout: DefaultQueryTimeout, concurrent: 4, rawMax: rawMax, grid: gridIntervals, budget: rawBudget, whole: wholeBudget, chunk: chunkBudget, optimistic: optimisticLimit}
	for _, o := range opts {
		if o != nil {
			cfg = o.apply(cfg)
		}
	}
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		cfg.errs = append(cfg.errs, fmt.Errorf("address %q: want an http or https URL with a host and no query", addr))
	}
	if len(cfg.errs) > 0 {
		return nil, fmt.Errorf("%w: fleet.New: %w", otelcollector.ErrInvalidOption, errors.Join(cfg.errs...))
	}

	hc := cfg.client
	if hc == nil {
		rt := cfg.rt
		if rt == nil {
			rt = api.DefaultRoundTripper
		}
		hc = &http.Client{Transport: rt}
	}
	if len(cfg.headers) > 0 || cfg.token != "" {
		h := cfg.headers.Clone()
		if h == nil {
			h = http.Header{}
		}
		if cfg.token != "" {
			h.Set("Authorization", "Bearer "+cfg.token)
		}
		hc = wrapTransport(hc, func(base http.RoundTripper) http.RoundTripper { return headerRoundTripper{base: base, h: h} })
	}
	hc = wrapTransport(hc, func(base http.RoundTripper) http.RoundTripper { return limitRoundTripper{base: base} })
	ac, err := api.NewClient(api.Config{Address: strings.TrimRight(addr, "/"), Client: hc})
	if err != nil {
		return nil, fmt.Errorf("%w: fleet.New: %w", otelcollector.ErrInvalidOption, err)
	}
	c := &Client{
		addr:       addr,
		api:        v1.NewAPI(ac),
		hc:         hc,
		selector:   cfg.selector,
		timeout:    cfg.timeout,
		warn:       cfg.warn,
		now:        cfg.now,
		parallel:   cfg.concurrent,
		rawMax:     cfg.rawMax,
		grid:       cfg.grid,
		budget:     cfg.budget,
		whole:      cfg.whole,
		chunk:      cfg.chunk,
		optimistic: cfg.optimistic,
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.warn == nil {
		l := cfg.logger
		if l == nil {
			l = slog.Default()
		}
		c.warn = func(w Warning) {
			lvl := slog.LevelWarn
			if w.Info {
				lvl = slog.LevelInfo
			}
			l.Log(context.Background(), lvl, "fleet: engine answered with a message", "engine", w.Engine, "query", w.Query, "info", w.Info, "message", w.Message)
		}
	}
	return c, nil
}

// wrapTransport returns a copy of hc whose transport is wrap(hc's), the
// caller's client left as it is.
func wrapTransport(hc *http.Client, wrap func(http.RoundTripper) http.RoundTripper) *http.Client {
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c := *hc
	c.Transport = wrap(base)
	return &c
}

// headerRoundTripper adds fixed headers to every request.
type headerRoundTripper struct {
	base http.RoundTripper
	h    http.Header
}

func (t headerRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, vs := range t.h {
		r.Header[k] = append([]string(nil), vs...)
	}
	return t.base.RoundTrip(r)
}
