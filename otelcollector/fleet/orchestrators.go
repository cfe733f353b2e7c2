package fleet

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// Orchestrators returns, sorted, the IDs of the orchestrators with a record
// in the window r: a token, latency, tool, error or session counter of
// theirs, or a delegation from or to them, that went up inside the window
// (or was first seen inside it with a value above zero); or a sessions
// gauge of theirs that changed inside the window, differs from its value at
// Start, or was first seen inside the window (at any value: a daemon
// exports a gauge series only once a session of it started or ended). It
// sends three queries, concurrently, one per condition.
//
// Session starts and ends count from the counters that daemons export with
// otelcollector.WithSessionCounters. For a daemon without them the gauge is
// all there is, and it shows only its value at each scrape: a start and an
// end of the same orchestrator and session type between two scrapes, on a
// series that existed before the window, leave it unchanged, and such an
// orchestrator is listed only if it has another record in the window.
//
// End before Start, or Last with a negative duration, wraps
// otelcollector.ErrInvalidTimeRange; an engine that fails gives an error
// wrapping ErrEngine.
func (c *Client) Orchestrators(ctx context.Context, r otelcollector.TimeRange) ([]string, error) {
	start, end, err := r.Resolve(c.now())
	if err != nil {
		return nil, err
	}
	start, end = engineTime(start), engineTime(end)
	if !end.After(start) {
		return nil, nil
	}
	w := end.Sub(start)
	b := max(w, minBaseline)
	// Three conditions, each a query over every selector, concurrently (an
	// engine evaluates one query on one core): a series changed inside the
	// window; its last value in the window differs from its value at Start;
	// it was first seen in the window, above zero (a counter), at any value
	// (the sessions gauge: its series appear with a record, and a start
	// and an end between two scrapes make it first seen at 0).
	d, bd := promDuration(w), promDuration(b)
	conds := []func(sel string, gauge bool) string{
		func(sel string, _ bool) string { return "changes(" + sel + "[" + d + "]) > 0" },
		func(sel string, _ bool) string {
			return "last_over_time(" + sel + "[" + d + "]) != last_over_time(" + sel + "[" + bd + "] offset " + d + ")"
		},
		func(sel string, gauge bool) string {
			above := " > 0"
			if gauge {
				above = ""
			}
			return "last_over_time(" + sel + "[" + d + "])" + above + " unless last_over_time(" + sel + "[" + bd + "] offset " + d + ")"
		},
	}
	type sel struct {
		s, relabel string
		gauge      bool
	}
	var sels []sel
	for _, m := range []string{mTokens, mLatency + "_count", mTools, mErrors, mStarted, mEnded} {
		sels = append(sels, sel{s: selector(m, []string{`orchestrator_id!=""`}, c.selector)})
	}
	sels = append(sels,
		sel{s: selector(mSessions, []string{`orchestrator_id!=""`}, c.selector), gauge: true},
		sel{s: selector(mDelegations, []string{`from_orchestrator!=""`}, c.selector), relabel: "from_orchestrator"},
		sel{s: selector(mDelegations, []string{`to_orchestrator!=""`}, c.selector), relabel: "to_orchestrator"})
	qs := make([]string, len(conds))
	vecs := make([]model.Vector, len(conds))
	g, gctx := newGroup(ctx, c.parallel)
	for k, cond := range conds {
		var parts []string
		for _, s := range sels {
			e := cond(s.s, s.gauge)
			if s.relabel != "" {
				e = fmt.Sprintf(`label_replace(%s, "orchestrator_id", "$1", %q, "(.+)")`, e, s.relabel)
			}
			parts = append(parts, "count by (orchestrator_id) ("+e+")")
		}
		qs[k] = "count by (orchestrator_id) (" + strings.Join(parts, " or ") + ")"
		g.Go(func() (err error) {
			vecs[k], err = c.instant(gctx, qs[k], end)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []string
	seen := map[string]bool{}
	for k, vec := range vecs {
		for _, s := range vec {
			id := string(s.Metric["orchestrator_id"])
			if id == "" || !finite(s.Value) || s.Value < 1 {
				return nil, c.engineErr(qs[k], fmt.Errorf("series %v = %v: want an orchestrator_id and a count", s.Metric, s.Value))
			}
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}
