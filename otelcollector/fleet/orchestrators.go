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
	var parts []string
	add := func(sel, relabel string) {
		x := func(e string) string {
			if relabel == "" {
				return e
			}
			return fmt.Sprintf(`label_replace(%s, "orchestrator_id", "$1", %q, "(.+)")`, e, relabel)
		}
		d, bd := promDuration(w), promDuration(b)
		parts = append(parts,
			x("changes("+sel+"["+d+"]) > 0"),
			x("(last_over_time("+sel+"["+d+"]) != last_over_time("+sel+"["+bd+"] offset "+d+"))"),
			x("(last_over_time("+sel+"["+d+"]) > 0 unless last_over_time("+sel+"["+bd+"] offset "+d+"))"),
		)
	}
	for _, m := range []string{mTokens, mLatency + "_count", mTools, mErrors} {
		add(selector(m, []string{`orchestrator_id!=""`}, c.selector), "")
	}
	add(selector(mDelegations, []string{`from_orchestrator!=""`}, c.selector), "from_orchestrator")
	add(selector(mDelegations, []string{`to_orchestrator!=""`}, c.selector), "to_orchestrator")
	var q strings.Builder
	q.WriteString("count by (orchestrator_id) (")
	for i, p := range parts {
		if i > 0 {
			q.WriteString(" or ")
		}
		fmt.Fprintf(&q, "count by (orchestrator_id) (%s)", p)
	}
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
