package fleet

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// Orchestrators returns, sorted, the IDs of the orchestrators with a record
// in the window r: a token, latency, tool or error counter of theirs, or a
// delegation from or to them, that went up inside the window (or was first
// seen inside it with a value above zero). It sends one query.
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
	// Per selector, one expression: a series changed inside the window, or
	// its last value in the window differs from its value at Start (0 for a
	// series first seen in the window, so that it counts if above zero).
	var parts []string
	add := func(sel, relabel string) {
		d, bd := promDuration(w), promDuration(b)
		last := "last_over_time(" + sel + "[" + d + "])"
		e := fmt.Sprintf("count by (orchestrator_id) ((changes(%s[%s]) > 0) or (%s != (last_over_time(%s[%s] offset %s) or %s * 0)))",
			sel, d, last, sel, bd, d, last)
		if relabel != "" {
			e = fmt.Sprintf(`count by (orchestrator_id) (label_replace((changes(%s[%s]) > 0) or (%s != (last_over_time(%s[%s] offset %s) or %s * 0)), "orchestrator_id", "$1", %q, "(.+)"))`,
				sel, d, last, sel, bd, d, last, relabel)
		}
		parts = append(parts, e)
	}
	for _, m := range []string{mTokens, mLatency + "_count", mTools, mErrors} {
		add(selector(m, []string{`orchestrator_id!=""`}, c.selector), "")
	}
	add(selector(mDelegations, []string{`from_orchestrator!=""`}, c.selector), "from_orchestrator")
	add(selector(mDelegations, []string{`to_orchestrator!=""`}, c.selector), "to_orchestrator")
	var q strings.Builder
	q.WriteString("count by (orchestrator_id) (")
	q.WriteString(strings.Join(parts, " or "))
	q.WriteString(")")
	vec, err := c.instant(ctx, q.String(), end)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(vec))
	seen := map[string]bool{}
	for _, s := range vec {
		id := string(s.Metric["orchestrator_id"])
		if id == "" || !finite(s.Value) || s.Value < 1 {
			return nil, c.engineErr(q.String(), fmt.Errorf("series %v = %v: want an orchestrator_id and a count", s.Metric, s.Value))
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out, nil
}
