package fleet

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// Orchestrators returns, sorted, the IDs of the orchestrators with a record
// in the window r: a token, latency, tool, error or session counter of
// theirs, or a delegation from or to them, that went up inside the window
// (or was first seen inside it with a value above zero); or a sessions
// gauge of theirs that changed inside the window, differs from its value at
// Start, or was first seen inside the window (at any value: a daemon
// exports a gauge series only once a session of it started or ended).
//
// It asks the engine for the daemons (the values of the instance label)
// that hold samples around the window, once, and then sends one query per
// group of them, concurrently (at most WithMaxConcurrentQueries groups): an
// engine evaluates one query on one core.
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
	groups, err := c.instanceGroups(ctx, start.Add(-b), end)
	if err != nil {
		return nil, err
	}
	// One condition per series, over three range selections: the changes
	// over the baseline's range and the window together, less those over
	// the baseline's range alone, are the changes from the value at Start
	// to the window's last (a change inside the window, or a last value
	// that differs from the value at Start); a series without samples in
	// the baseline's range, but with some in the window, is first seen in
	// it, and counts when its last value is above zero (a counter: -1 for
	// it in place of the baseline's changes) or at any value (the sessions
	// gauge: its series appear with a record, and a start and an end
	// between two scrapes make it first seen at 0). No series selector
	// asks that the orchestrator label be set (orchestrator_id!="" makes
	// an engine merge the postings of every value of it); the series
	// without it give a group without labels, which is skipped.
	d, bd, wd := promDuration(w), promDuration(b), promDuration(w+b)
	cond := func(sel string, gauge bool) string {
		first := "-(last_over_time(" + sel + "[" + d + "]) > bool 0)"
		if gauge {
			first = "last_over_time(" + sel + "[" + d + "]) * 0 - 1"
		}
		return "changes(" + sel + "[" + wd + "]) - (changes(" + sel + "[" + bd + "] offset " + d + ") or " + first + ") > 0"
	}
	type sel struct {
		metric, relabel string
		gauge           bool
	}
	var sels []sel
	for _, m := range []string{mTokens, mLatency + "_count", mTools, mErrors, mStarted, mEnded} {
		sels = append(sels, sel{metric: m})
	}
	sels = append(sels,
		sel{metric: mSessions, gauge: true},
		sel{metric: mDelegations, relabel: "from_orchestrator"},
		sel{metric: mDelegations, relabel: "to_orchestrator"})
	qs := make([]string, len(groups))
	vecs := make([]model.Vector, len(groups))
	g, gctx := newGroup(ctx, c.parallel)
	for k, group := range groups {
		var parts []string
		for _, s := range sels {
			e := cond(selector(s.metric, group, c.selector), s.gauge)
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
			id, ok := s.Metric["orchestrator_id"]
			if !finite(s.Value) || s.Value < 1 || len(s.Metric) > 1 || (len(s.Metric) == 1 && (!ok || id == "")) {
				return nil, c.engineErr(qs[k], fmt.Errorf("series %v = %v: want an orchestrator_id, or no label, and a count", s.Metric, s.Value))
			}
			if id := string(id); id != "" && !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// maxGroupedInstances is the most instance values Orchestrators splits
// into groups; past it (a TSDB shared with many other jobs), it sends one
// query for all.
const maxGroupedInstances = 2000

// instanceGroups returns the matchers of the groups of daemons Orchestrators
// queries, from the values of the instance label in [from, to] (one group
// without matchers when there are fewer than two values, too many, or the
// engine does not list them).
func (c *Client) instanceGroups(ctx context.Context, from, to time.Time) ([][]string, error) {
	all := [][]string{nil}
	if c.parallel < 2 {
		return all, nil
	}
	lctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	vals, warns, infos, err := c.api.LabelValues(lctx, "instance", nil, from, to)
	if err != nil {
		if ctx.Err() != nil {
			return nil, c.engineErr("label values of instance", errors.Join(err, ctx.Err()))
		}
		// An engine that does not list label values (a gateway that
		// forwards only queries) is asked in one query.
		return all, nil
	}
	for _, w := range warns {
		c.warn(Warning{Engine: c.addr, Query: "label values of instance", Message: w})
	}
	for _, w := range infos {
		c.warn(Warning{Engine: c.addr, Query: "label values of instance", Info: true, Message: w})
	}
	if len(vals) < 2 || len(vals) > maxGroupedInstances {
		return all, nil
	}
	strs := make([]string, len(vals))
	for i, v := range vals {
		strs[i] = string(v)
	}
	return groupMatchers(strs, min(c.parallel, len(vals))), nil
}

// groupMatchers splits the instance values vals into n groups, each a
// matcher: groups 1 to n-1 match their values, and group 0 every other
// series (instance!~ the values of the others), so that a series is in
// exactly one group even when its daemon is missing from vals (a front end
// that answered label values from part of the range, a daemon seen after
// the request) or has no instance label.
func groupMatchers(vals []string, n int) [][]string {
	groups := make([][]string, n)
	for i, v := range vals {
		groups[i%n] = append(groups[i%n], regexp.QuoteMeta(v))
	}
	out := make([][]string, n)
	var others []string
	for k := 1; k < n; k++ {
		out[k] = []string{"instance=~" + quote(strings.Join(groups[k], "|"))}
		others = append(others, groups[k]...)
	}
	out[0] = []string{"instance!~" + quote(strings.Join(others, "|"))}
	return out
}
