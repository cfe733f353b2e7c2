package fleet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// ErrEngine is wrapped by every error that comes from the engine or the
// way to it: unreachable, too slow for the deadline, an error status, or an
// answer that is not what the query asks for. The message names the engine
// and the query.
var ErrEngine = errors.New("fleet: query engine failed")

// instant runs an instant query at ts and returns its vector.
func (c *Client) instant(ctx context.Context, q string, ts time.Time) (model.Vector, error) {
	v, err := c.do(ctx, q, func(ctx context.Context) (model.Value, v1.Warnings, v1.Infos, error) {
		return c.api.Query(ctx, q, ts, v1.WithTimeout(c.timeout))
	})
	if err != nil {
		return nil, err
	}
	switch vv := v.(type) {
	case model.Vector:
		return vv, nil
	case nil:
		return nil, c.engineErr(q, errors.New("empty answer"))
	default:
		return nil, c.engineErr(q, fmt.Errorf("answer of type %s, want vector", v.Type()))
	}
}

// instantMatrix runs an instant query of a range selector at ts and returns
// the raw samples.
func (c *Client) instantMatrix(ctx context.Context, q string, ts time.Time) (model.Matrix, error) {
	v, err := c.do(ctx, q, func(ctx context.Context) (model.Value, v1.Warnings, v1.Infos, error) {
		return c.api.Query(ctx, q, ts, v1.WithTimeout(c.timeout))
	})
	if err != nil {
		return nil, err
	}
	switch vv := v.(type) {
	case model.Matrix:
		return vv, nil
	case model.Vector:
		if len(vv) == 0 {
			return nil, nil // some engines answer an empty vector
		}
	}
	return nil, c.engineErr(q, fmt.Errorf("answer of type %v, want matrix", typeOf(v)))
}

// rangeQuery runs a range query and returns its matrix.
func (c *Client) rangeQuery(ctx context.Context, q string, r v1.Range) (model.Matrix, error) {
	v, err := c.do(ctx, q, func(ctx context.Context) (model.Value, v1.Warnings, v1.Infos, error) {
		return c.api.QueryRange(ctx, q, r, v1.WithTimeout(c.timeout))
	})
	if err != nil {
		return nil, err
	}
	if m, ok := v.(model.Matrix); ok {
		return m, nil
	}
	return nil, c.engineErr(q, fmt.Errorf("answer of type %v, want matrix", typeOf(v)))
}

func typeOf(v model.Value) string {
	if v == nil {
		return "none"
	}
	return v.Type().String()
}

func (c *Client) do(ctx context.Context, q string, f func(context.Context) (model.Value, v1.Warnings, v1.Infos, error)) (v model.Value, err error) {
	defer func() {
		// The engine's answer is untrusted input: a decoder panic on
		// garbage must become an error, not bring the daemon down.
		if r := recover(); r != nil {
			v, err = nil, c.engineErr(q, fmt.Errorf("panic decoding the answer: %v", r))
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	v, warns, infos, err := f(ctx)
	if err != nil {
		return nil, c.engineErr(q, err)
	}
	for _, w := range warns {
		c.warn(Warning{Engine: c.addr, Query: q, Message: w})
	}
	for _, w := range infos {
		c.warn(Warning{Engine: c.addr, Query: q, Info: true, Message: w})
	}
	return v, nil
}

func (c *Client) engineErr(q string, err error) error {
	return fmt.Errorf("%w: engine %s: query %q: %w", ErrEngine, c.addr, q, err)
}

// group runs functions with at most n at once and returns the first error.
type group struct {
	wg   sync.WaitGroup
	sem  chan struct{}
	mu   sync.Mutex
	err  error
	stop context.CancelFunc
}

func newGroup(ctx context.Context, n int) (*group, context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	return &group{sem: make(chan struct{}, n), stop: cancel}, ctx
}

func (g *group) Go(f func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.sem <- struct{}{}
		defer func() { <-g.sem }()
		if err := f(); err != nil {
			g.mu.Lock()
			if g.err == nil {
				g.err = err
				g.stop()
			}
			g.mu.Unlock()
		}
	}()
}

func (g *group) Wait() error {
	g.wg.Wait()
	g.stop()
	return g.err
}

// quote renders s as a PromQL string literal.
func quote(s string) string { return strconv.Quote(s) }

// selector builds name{matchers, extra}.
func selector(name string, matchers []string, extra string) string {
	ms := append([]string(nil), matchers...)
	if extra != "" {
		ms = append(ms, strings.TrimSuffix(strings.TrimSpace(extra), ","))
	}
	return name + "{" + strings.Join(ms, ", ") + "}"
}

// promDuration renders d as a PromQL duration in whole milliseconds (at
// least 1 ms).
func promDuration(d time.Duration) string {
	ms := d.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	return strconv.FormatInt(ms, 10) + "ms"
}

// seriesKey identifies a series by its labels other than the metric name
// and the client's own tag labels.
func seriesKey(m model.Metric) string {
	names := make([]string, 0, len(m))
	for k := range m {
		if k == model.MetricNameLabel || k == tagFamily || k == tagFunc {
			continue
		}
		names = append(names, string(k))
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(0)
		b.WriteString(string(m[model.LabelName(n)]))
		b.WriteByte(0)
	}
	return b.String()
}

// finite reports whether a sample value is usable as a counter value.
func finite(v model.SampleValue) bool {
	f := float64(v)
	return !math.IsNaN(f) && !math.IsInf(f, 0) && f >= 0
}
