package fleet

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// The exact increase of a set of counters over (Start, End] is computed
// without increase() or rate(), whose extrapolation differs between
// engines and is never an exact count. Only last_over_time, min_over_time,
// resets, count_over_time and raw range selections are used, which
// Prometheus and VictoriaMetrics evaluate alike on the raw samples inside a
// range:
//
//  1. concurrently: the baseline, last_over_time(x[B]) at Start,
//     B = max(step, 1h): the value each series had when the window opened
//     (none: it counts from zero); and the window's raw samples per family
//     and instance, sum by (instance) (count_over_time(x[w])) at End. A
//     family without samples in the window is not read further;
//  2. at most wholeBudget (250,000) samples: they are read raw, in queries
//     of at most chunkBudget (100,000) samples (instances grouped up to it,
//     an instance with more in consecutive time slices), where a sample
//     below the previous one counts from zero;
//  3. more: a grid of at most gridIntervals (16) intervals over the window,
//     aligned to multiples of the step: for each interval, last_over_time,
//     min_over_time and resets of every series, one range query per
//     family. Interval by interval, per series: an interval with no reset
//     (resets is 0 and its minimum is not below the previous value) adds
//     last − previous (or last, for a series first seen in it); any other
//     interval is walked again, for the restarted daemons (instances) only,
//     recursively, with a grid of its own (which counts its samples with
//     count_over_time), and once it is no longer than rawMax or holds at
//     most rawBudget samples (estimated from step 1's counts), from its raw
//     samples: one query for the families that differ only in their metric
//     name ({__name__=~"..."}). The engines differ at the edges of a range
//     (Prometheus 2 includes its start; VictoriaMetrics' min_over_time can
//     see the sample before it), and the raw samples settle every such case.
//
// The engine reads the raw samples; the client holds at most one grid
// (families × series × gridIntervals points) or a bounded number of raw
// samples at a time, so memory does not grow with the window.
const (
	tagFamily     = "fleet_m"
	tagFunc       = "fleet_fn"
	gridIntervals = 16
	rawMax        = 10 * time.Minute
	// rawBudget is the most raw samples a zoom reads at once.
	rawBudget   = 20000
	minBaseline = time.Hour
)

// family is one set of counter series, all summed the same way.
type family struct {
	metric   string
	matchers []string
}

type series struct {
	labels  model.Metric
	prev    float64
	hasPrev bool
	delta   float64
}

// counters holds the state of every family of one call.
type counters struct {
	c    *Client
	fams []family
	sels []string
	st   []map[string]*series
	// rate is, per family and instance, the raw samples per millisecond of
	// the window (from count); nil: unknown, and the grid counts them.
	rate []map[string]float64
	// atStart and atEnd are instant expressions that the sample count's
	// query (at End) and, at Start, the baseline's query or, when the
	// optimistic read replaces the baseline, one query of their own also
	// evaluate, each tagged with its fleet_m and joined by or:
	// AggregatedStats' other instant reads at those times (the sessions
	// gauge, the native histogram). run evaluates them whenever End is
	// after Start and the whole budget is above 0; read says a rider's
	// query was evaluated.
	atStart, atEnd []*rider
}

// rider is an instant expression evaluated in another query at the same
// time, and the samples it gave (without their tag).
type rider struct {
	tag, expr string
	// name, when set, identifies the rider's samples by their metric name
	// instead of a tag (an instant selector, which keeps it).
	name string
	vec  model.Vector
	read bool
}

// ride adds the riders' tagged expressions to parts.
func ride(parts []string, rs []*rider) []string {
	for _, r := range rs {
		if r.name != "" {
			parts = append(parts, r.expr)
			continue
		}
		parts = append(parts, fmt.Sprintf(`label_replace(%s, %q, %q, "", "")`, r.expr, tagFamily, r.tag))
	}
	return parts
}

// takeRiders moves vec's samples of the riders rs to them, marks them read
// and returns the other samples.
func takeRiders(vec model.Vector, rs []*rider) model.Vector {
	if len(rs) == 0 {
		return vec
	}
	for _, r := range rs {
		r.read = true
	}
	rest := vec[:0]
	for _, s := range vec {
		var to *rider
		for _, r := range rs {
			if r.name != "" && string(s.Metric[model.MetricNameLabel]) == r.name && s.Metric[tagFamily] == "" {
				to = r
			} else if r.name == "" && string(s.Metric[tagFamily]) == r.tag {
				to = r
			}
		}
		if to == nil {
			rest = append(rest, s)
			continue
		}
		delete(s.Metric, tagFamily)
		to.vec = append(to.vec, s)
	}
	return rest
}

func (c *Client) newCounters(fams []family) *counters {
	cs := &counters{c: c, fams: fams}
	for _, f := range fams {
		cs.sels = append(cs.sels, selector(f.metric, f.matchers, c.selector))
		cs.st = append(cs.st, map[string]*series{})
	}
	return cs
}

// chooseStep returns the grid step for a window of w: w/n rounded up to
// a multiple of 125 ms. Times and steps travel as float seconds, and
// Prometheus truncates them to the millisecond after a float product, so
// that 1.001 s arrives as 1000 ms; multiples of 1/8 s are exact binary
// fractions and arrive intact, so the engine's grid is the client's.
func chooseStep(w time.Duration, n int64) time.Duration {
	ms := (w.Milliseconds() + n - 1) / n
	ms = max(1, (ms+stepUnitMs-1)/stepUnitMs) * stepUnitMs
	return time.Duration(ms) * time.Millisecond
}

const stepUnitMs = 125

// engineTime returns the millisecond nearest t that both engines parse
// back exactly from the float seconds client_golang sends (t itself in
// most cases, else one or two milliseconds away).
func engineTime(t time.Time) time.Time {
	ms := t.UnixMilli()
	for d := int64(0); d < 50; d++ {
		if survives(ms - d) {
			return time.UnixMilli(ms - d)
		}
		if survives(ms + d) {
			return time.UnixMilli(ms + d)
		}
	}
	return time.UnixMilli(ms)
}

// engineTimeFrom returns the first millisecond at or after t that both
// engines parse back exactly.
func engineTimeFrom(t time.Time) time.Time {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	for d := int64(0); d < 100; d++ {
		if survives(ms + d) {
			return time.UnixMilli(ms + d)
		}
	}
	return time.UnixMilli(ms)
}

// survives reports whether ms, formatted as client_golang does, parses back
// to ms the way Prometheus 2 (math.Modf, rounding to ms, then truncating
// the nanoseconds) and VictoriaMetrics (seconds × 1e3, truncated) read it.
func survives(ms int64) bool {
	t := time.UnixMilli(ms)
	f, err := strconv.ParseFloat(strconv.FormatFloat(float64(t.Unix())+float64(t.Nanosecond())/1e9, 'f', -1, 64), 64)
	if err != nil {
		return false
	}
	sec, frac := math.Modf(f)
	frac = math.Round(frac*1000) / 1000
	pt := time.Unix(int64(sec), int64(frac*float64(time.Second)))
	return pt.UnixMilli() == ms && int64(f*1e3) == ms
}

// tagged joins fn(sel[r]) of the given families into one expression whose
// series carry the family index and the function name.
func (cs *counters) tagged(fis []int, fns []string, r time.Duration, only restrict) string {
	var parts []string
	for _, i := range fis {
		for _, fn := range fns {
			parts = append(parts, fmt.Sprintf(`label_replace(label_replace(%s(%s[%s]), %q, %q, "", ""), %q, %q, "", "")`,
				fn, cs.sel(i, only), promDuration(r), tagFamily, strconv.Itoa(i), tagFunc, fn))
		}
	}
	return strings.Join(parts, " or ")
}

// run computes the increase of every family over (start, end].
func (cs *counters) run(ctx context.Context, start, end time.Time) error {
	if !end.After(start) {
		return nil
	}
	all := make([]int, len(cs.fams))
	for i := range all {
		all[i] = i
	}
	b := max(chooseStep(end.Sub(start), cs.c.grid), minBaseline)
	whole := cs.c.whole
	if whole <= 0 {
		if err := cs.baseline(ctx, all, start, b, cs.atStart); err != nil {
			return err
		}
		return cs.walk(ctx, all, start, end, nil)
	}
	// First, concurrently: the number of raw samples in the window (few
	// enough, and they are read at once instead of through the grid) and
	// either the baseline or, by default, the optimistic read: the raw
	// samples of the baseline's range and the window together, used when
	// the window turns out to fit one query of stream (most windows of a
	// day or less), which leaves one query and one round trip instead of
	// three queries in two. Its answer is limited to cs.c.optimistic
	// bytes, and it is abandoned as soon as the count says the window
	// holds more; the baseline is then read after the count, and the
	// window as if the read had not been tried.
	var samples []map[string]float64 // per family and instance
	var opt []*rawRead
	fits := min(whole, cs.c.chunk)
	// At most c.parallel queries in flight: the count, the riders at
	// Start, and the optimistic read's queries share them.
	g, gctx := newGroup(ctx, min(3, cs.c.parallel))
	abandon := func() {}
	// The optimistic read needs the count beside it from the start (its
	// guard): three queries in flight.
	optimistic := cs.c.optimistic > 0 && cs.c.parallel >= 3
	if optimistic {
		octx, cancel := context.WithCancel(gctx)
		abandon = cancel
		g.Go(func() error {
			defer cancel()
			reads, err := cs.readRaw(withAnswerLimit(octx, cs.c.optimistic), all, start.Add(-b), end, nil, max(1, cs.c.parallel-2))
			switch {
			case err == nil:
				if float64(sampleCount(reads)) <= fits {
					opt = reads
				}
			case gctx.Err() != nil:
				return err
			default:
				// Too large, abandoned, or refused (an engine's limit on
				// the samples one query may load, which the count does not
				// reach, or the query timeout): read as counted below,
				// where an engine that is down fails the call.
			}
			return nil
		})
		if len(cs.atStart) > 0 {
			g.Go(func() error { return cs.riders(gctx, cs.atStart, start) })
		}
	} else {
		g.Go(func() error { return cs.baseline(gctx, all, start, b, cs.atStart) })
	}
	g.Go(func() (err error) {
		samples, err = cs.count(gctx, all, start, end)
		if err == nil && total(samples) > fits {
			abandon()
		}
		return err
	})
	if err := g.Wait(); err != nil {
		return err
	}
	if opt != nil {
		return cs.applyRaw(opt, start, nil, true)
	}
	// Only the families with samples in the window are read.
	var fis []int
	for fi, byInst := range samples {
		if len(byInst) > 0 {
			fis = append(fis, fi)
		}
	}
	if len(fis) == 0 {
		return nil
	}
	if optimistic {
		if err := cs.baseline(ctx, all, start, b, nil); err != nil {
			return err
		}
	}
	if total(samples) <= whole {
		return cs.stream(ctx, samples, start, end)
	}
	ms := float64(end.Sub(start).Milliseconds())
	cs.rate = make([]map[string]float64, len(samples))
	for fi, byInst := range samples {
		cs.rate[fi] = map[string]float64{}
		for inst, n := range byInst {
			cs.rate[fi][inst] = n / ms
		}
	}
	return cs.walk(ctx, fis, start, end, nil)
}

// baseline sets each series' previous value to its last in the b before
// start (last_over_time at start; none: it counts from zero), by one query
// that the riders rs ride in.
func (cs *counters) baseline(ctx context.Context, fis []int, start time.Time, b time.Duration, rs []*rider) error {
	q := cs.tagged(fis, []string{"last_over_time"}, b, nil)
	if len(rs) > 0 {
		q = strings.Join(ride([]string{q}, rs), " or ")
	}
	vec, err := cs.c.instant(ctx, q, start)
	if err != nil {
		return err
	}
	for _, s := range takeRiders(vec, rs) {
		fi, _, err := cs.tags(q, s.Metric)
		if err != nil {
			return err
		}
		if !finite(s.Value) {
			return cs.c.engineErr(q, fmt.Errorf("counter value %v", s.Value))
		}
		ser := cs.get(fi, s.Metric)
		ser.prev, ser.hasPrev = float64(s.Value), true
	}
	return nil
}

// riders evaluates the riders rs alone, at t.
func (cs *counters) riders(ctx context.Context, rs []*rider, t time.Time) error {
	q := strings.Join(ride(nil, rs), " or ")
	vec, err := cs.c.instant(ctx, q, t)
	if err != nil {
		return err
	}
	if rest := takeRiders(vec, rs); len(rest) > 0 {
		return cs.c.engineErr(q, fmt.Errorf("series %v of no rider", rest[0].Metric))
	}
	return nil
}

// total returns the number of samples of count's answer.
func total(samples []map[string]float64) float64 {
	n := 0.0
	for _, byInst := range samples {
		for _, v := range byInst {
			n += v
		}
	}
	return n
}

// optimisticLimit is the most bytes of answer (decoded) the optimistic read
// of a window's raw samples takes: about chunkBudget samples of the JSON
// Prometheus writes (20–30 bytes a sample, and each series' labels once).
const optimisticLimit = 4 << 20

// wholeBudget is the most raw samples a window may hold to be read raw
// (in queries of at most chunkBudget samples each) instead of through the
// grid. Reading a raw sample costs the engine about what one grid function
// costs it (the grid evaluates three per sample), plus its transfer and
// decoding by the client (about 4 µs a sample here, both sides together);
// past this the grid, which transfers only its points and the raw samples
// of the restarted daemons around their restarts, is used.
const wholeBudget = 250_000

// chunkBudget is the most raw samples one query of stream reads (about 5
// MiB of client heap while it is decoded).
const chunkBudget = 100_000

// count returns, per family and instance, the number of raw samples in the
// window (a, b] (and at a, on Prometheus), by one instant query of
// sum by (instance) (count_over_time) per family, joined by or.
func (cs *counters) count(ctx context.Context, fis []int, a, b time.Time) ([]map[string]float64, error) {
	var parts []string
	for _, i := range fis {
		parts = append(parts, fmt.Sprintf(`label_replace(sum by (instance) (count_over_time(%s[%s])), %q, %q, "", "")`,
			cs.sels[i], promDuration(b.Sub(a)), tagFamily, strconv.Itoa(i)))
	}
	q := strings.Join(ride(parts, cs.atEnd), " or ")
	vec, err := cs.c.instant(ctx, q, b)
	if err != nil {
		return nil, err
	}
	vec = takeRiders(vec, cs.atEnd)
	n := make([]map[string]float64, len(cs.fams))
	for i := range n {
		n[i] = map[string]float64{}
	}
	for _, s := range vec {
		fi, _, err := cs.tags(q, s.Metric)
		if err != nil {
			return nil, err
		}
		if !finite(s.Value) {
			return nil, cs.c.engineErr(q, fmt.Errorf("sample count %v", s.Value))
		}
		if s.Value > 0 {
			n[fi][string(s.Metric["instance"])] += float64(s.Value)
		}
	}
	return n, nil
}

// stream reads the raw samples of (a, b] of every family with samples,
// in queries of at most c.chunk samples: the families that differ only in
// their metric name together, their instances grouped up to that many
// samples, and an instance with more read in that many consecutive time
// slices, one after the other. The groups run concurrently
// (WithMaxConcurrentQueries), each on a copy of its families' previous
// values; their deltas are added at the end.
func (cs *counters) stream(ctx context.Context, samples []map[string]float64, a, b time.Time) error {
	type job struct {
		fis    []int
		only   restrict
		slices int
	}
	// The families that differ only in their metric name go together (one
	// query reads them all), their samples added per instance.
	var groups [][]int
	for fi, byInst := range samples {
		if len(byInst) == 0 {
			continue
		}
		placed := false
		for k, gr := range groups {
			if slices.Equal(cs.fams[gr[0]].matchers, cs.fams[fi].matchers) {
				groups[k] = append(gr, fi)
				placed = true
				break
			}
		}
		if !placed {
			groups = append(groups, []int{fi})
		}
	}
	var jobs []job
	chunk := cs.c.chunk
	for _, fis := range groups {
		byInst := map[string]float64{}
		for _, fi := range fis {
			for in, n := range samples[fi] {
				byInst[in] += n
			}
		}
		insts := make([]string, 0, len(byInst))
		for in := range byInst {
			insts = append(insts, in)
		}
		sort.Strings(insts)
		limit := func(set map[string]bool) restrict {
			r := restrict{}
			for _, fi := range fis {
				r[fi] = set
			}
			return r
		}
		set, sum := map[string]bool{}, 0.0
		flush := func() {
			if len(set) > 0 {
				jobs = append(jobs, job{fis: fis, only: limit(set), slices: 1})
				set, sum = map[string]bool{}, 0
			}
		}
		for _, in := range insts {
			n := byInst[in]
			if n > chunk {
				jobs = append(jobs, job{fis: fis, only: limit(map[string]bool{in: true}), slices: int(math.Ceil(n / chunk))})
				continue
			}
			if sum+n > chunk {
				flush()
			}
			set[in] = true
			sum += n
		}
		flush()
	}
	children := make([]*counters, len(jobs))
	g, gctx := newGroup(ctx, cs.c.parallel)
	for k, j := range jobs {
		child := cs.fork(j.fis)
		children[k] = child
		g.Go(func() error {
			w := b.Sub(a)
			lo := a
			for i := 1; i <= j.slices; i++ {
				hi := b
				if i < j.slices {
					hi = engineTime(a.Add(time.Duration(float64(w) * float64(i) / float64(j.slices))))
				}
				if !hi.After(lo) {
					continue
				}
				if err := child.raw(gctx, j.fis, lo, hi, j.only); err != nil {
					return err
				}
				lo = hi
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Every series, also those with nothing to add: a bucket series first
	// seen in the window at 0 still tells the classic percentiles its
	// bound, as on the other paths.
	for k, j := range jobs {
		for _, fi := range j.fis {
			for _, s := range children[k].st[fi] {
				cs.get(fi, s.labels).delta += s.delta
			}
		}
	}
	return nil
}

func (cs *counters) tags(q string, m model.Metric) (int, string, error) {
	fi, err := strconv.Atoi(string(m[tagFamily]))
	if err != nil || fi < 0 || fi >= len(cs.fams) {
		return 0, "", cs.c.engineErr(q, fmt.Errorf("series %v without a valid %s label", m, tagFamily))
	}
	return fi, string(m[tagFunc]), nil
}

func (cs *counters) get(fi int, m model.Metric) *series {
	k := seriesKey(m)
	s := cs.st[fi][k]
	if s == nil {
		lm := model.Metric{}
		for n, v := range m {
			if n != tagFamily && n != tagFunc && n != model.MetricNameLabel {
				lm[n] = v
			}
		}
		s = &series{labels: lm}
		cs.st[fi][k] = s
	}
	return s
}

// agg is what the grid says of one series in one interval.
type agg struct {
	last, min, resets, count float64
	has                      uint8 // bits: 1 last, 2 min, 4 resets, 8 count
}

type interval struct {
	lo, hi time.Time
	full   bool // both ends on the grid: answered by the range query
}

// restrict limits a walk, per family, to the series of some instances (the
// daemons whose counters reset); a family absent from it is walked whole.
type restrict map[int]map[string]bool

// sel is family fi's selector, limited to the instances of only.
func (cs *counters) sel(fi int, only restrict) string {
	set := only[fi]
	if len(set) == 0 {
		return cs.sels[fi]
	}
	vals := make([]string, 0, len(set))
	for v := range set {
		vals = append(vals, regexp.QuoteMeta(v))
	}
	sort.Strings(vals)
	return strings.TrimSuffix(cs.sels[fi], "}") + ", instance=~" + quote(strings.Join(vals, "|")) + "}"
}

func (cs *counters) walk(ctx context.Context, fis []int, a, b time.Time, only restrict) error {
	if b.Sub(a) <= cs.c.rawMax {
		return cs.raw(ctx, fis, a, b, only)
	}
	step := chooseStep(b.Sub(a), cs.c.grid)
	ivs := grid(a, b, step)
	// aggs[k][fi][key]
	aggs := make([]map[int]map[string]*agg, len(ivs))
	for k := range aggs {
		aggs[k] = map[int]map[string]*agg{}
	}
	fns := []string{"last_over_time", "min_over_time", "resets", "count_over_time"}
	if cs.rate != nil {
		// The zooms are sized from the window's sample counts: a function
		// (a pass over every sample) less.
		fns = fns[:3]
	}
	// One query per family and grid part (the range query of the full
	// intervals, one per function, and an instant query per partial
	// interval at an edge): the engine evaluates the parts of one query in
	// turn, and the cost of or grows with the series on its left.
	type part struct {
		q     string
		m     model.Matrix
		fixed int // the interval of an instant query; -1 for the range query
	}
	var parts []*part
	g, gctx := newGroup(ctx, cs.c.parallel)
	var full []int
	for k, iv := range ivs {
		if iv.full {
			full = append(full, k)
		}
	}
	for _, fi := range fis {
		for k, iv := range ivs {
			if iv.full {
				continue
			}
			p := &part{q: cs.tagged([]int{fi}, fns, iv.hi.Sub(iv.lo), only), fixed: k}
			parts = append(parts, p)
			g.Go(func() error {
				vec, err := cs.c.instant(gctx, p.q, iv.hi)
				if err != nil {
					return err
				}
				p.m = make(model.Matrix, 0, len(vec))
				for _, s := range vec {
					p.m = append(p.m, &model.SampleStream{Metric: s.Metric, Values: []model.SamplePair{{Timestamp: s.Timestamp, Value: s.Value}}})
				}
				return nil
			})
		}
		if len(full) > 0 {
			// The range query, a pass over every sample per function, one
			// query per function: they run on more than one core.
			r := v1.Range{Start: ivs[full[0]].hi, End: ivs[full[len(full)-1]].hi, Step: step}
			for _, fn := range fns {
				p := &part{q: cs.tagged([]int{fi}, []string{fn}, step, only), fixed: -1}
				parts = append(parts, p)
				g.Go(func() (err error) {
					p.m, err = cs.c.rangeQuery(gctx, p.q, r)
					return err
				})
			}
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Index the grid points by their time.
	byTime := map[int64]int{}
	for _, k := range full {
		byTime[ivs[k].hi.UnixMilli()] = k
	}
	put := func(q string, m model.Matrix, fixed int) error {
		for _, ss := range m {
			fi, fn, err := cs.tags(q, ss.Metric)
			if err != nil {
				return err
			}
			key := seriesKey(ss.Metric)
			for _, p := range ss.Values {
				k := fixed
				if k < 0 {
					var ok bool
					if k, ok = byTime[int64(p.Timestamp)]; !ok {
						return cs.c.engineErr(q, fmt.Errorf("point at %v is not on the grid", p.Timestamp.Time()))
					}
				}
				if !finite(p.Value) {
					return cs.c.engineErr(q, fmt.Errorf("counter value %v", p.Value))
				}
				byKey := aggs[k][fi]
				if byKey == nil {
					byKey = map[string]*agg{}
					aggs[k][fi] = byKey
				}
				ag := byKey[key]
				if ag == nil {
					ag = &agg{}
					byKey[key] = ag
					cs.get(fi, ss.Metric)
				}
				v := float64(p.Value)
				switch fn {
				case "last_over_time":
					ag.last, ag.has = v, ag.has|1
				case "min_over_time":
					ag.min, ag.has = v, ag.has|2
				case "resets":
					ag.resets, ag.has = v, ag.has|4
				case "count_over_time":
					ag.count, ag.has = v, ag.has|8
				default:
					return cs.c.engineErr(q, fmt.Errorf("series %v without a valid %s label", ss.Metric, tagFunc))
				}
			}
		}
		return nil
	}
	for _, p := range parts {
		if err := put(p.q, p.m, p.fixed); err != nil {
			return err
		}
		p.m = nil
	}

	var jobs []zoomJob
	for k, iv := range ivs {
		var zoom []int
		sub := restrict{}
		whole := map[int]bool{}
		for _, fi := range fis {
			for key, ag := range aggs[k][fi] {
				if ag.has&1 == 0 {
					continue // no sample in the interval
				}
				s := cs.st[fi][key]
				// Only an interval with no reset at all is taken from the
				// grid: none inside (resets) and none at its start (its
				// minimum is not below the previous value). Anything else
				// is walked again, for the daemons (instances) concerned:
				// the engines differ at the edges of a range (Prometheus 2
				// includes its start; VictoriaMetrics' min_over_time can
				// see the sample before it), and only the raw samples
				// settle it.
				if ag.resets > 0 || ag.has&6 != 6 || (s.hasPrev && ag.min < s.prev) {
					if !contains(zoom, fi) {
						zoom = append(zoom, fi)
					}
					inst, ok := s.labels["instance"]
					if !ok {
						whole[fi] = true
						continue
					}
					if sub[fi] == nil {
						sub[fi] = map[string]bool{}
					}
					sub[fi][string(inst)] = true
				}
			}
		}
		for fi := range whole {
			delete(sub, fi)
		}
		for _, fi := range fis {
			if whole[fi] {
				continue
			}
			for key, ag := range aggs[k][fi] {
				if ag.has&1 == 0 {
					continue
				}
				s := cs.st[fi][key]
				if sub[fi][string(s.labels["instance"])] {
					continue // walked again below
				}
				if s.hasPrev {
					s.delta += ag.last - s.prev
				} else {
					s.delta += ag.last // first seen: counts from zero
				}
				s.prev, s.hasPrev = ag.last, true
			}
		}
		if len(zoom) > 0 {
			// A family walked whole under a parent's limit keeps it.
			for _, fi := range zoom {
				if whole[fi] && len(only[fi]) > 0 {
					sub[fi] = only[fi]
				}
			}
			// Few enough raw samples (count_over_time says how many): read
			// them at once; otherwise a finer grid.
			var samples float64
			for _, fi := range zoom {
				if cs.rate != nil {
					ms := float64(iv.hi.Sub(iv.lo).Milliseconds())
					for inst, r := range cs.rate[fi] {
						if whole[fi] || sub[fi][inst] {
							samples += r * ms
						}
					}
					continue
				}
				for key, ag := range aggs[k][fi] {
					if whole[fi] || sub[fi][string(cs.st[fi][key].labels["instance"])] {
						samples += ag.count
					}
				}
			}
			// The zoom starts from the previous values at the interval's
			// start (a copy), and the grid already gives every series'
			// value at its end: the zooms are independent and run
			// concurrently once the grid is done.
			child := cs.fork(zoom)
			for _, fi := range zoom {
				for key, ag := range aggs[k][fi] {
					s := cs.st[fi][key]
					if ag.has&1 != 0 && (whole[fi] || sub[fi][string(s.labels["instance"])]) {
						s.prev, s.hasPrev = ag.last, true
					}
				}
			}
			jobs = append(jobs, zoomJob{child: child, fis: zoom, lo: iv.lo, hi: iv.hi, only: sub, raw: samples <= cs.c.budget})
		}
		aggs[k] = nil
	}
	if len(jobs) == 0 {
		return nil
	}
	jg, jctx := newGroup(ctx, cs.c.parallel)
	for _, j := range jobs {
		jg.Go(func() error {
			if j.raw {
				return j.child.raw(jctx, j.fis, j.lo, j.hi, j.only)
			}
			return j.child.walk(jctx, j.fis, j.lo, j.hi, j.only)
		})
	}
	if err := jg.Wait(); err != nil {
		return err
	}
	for _, j := range jobs {
		for _, fi := range j.fis {
			for _, s := range j.child.st[fi] {
				if s.delta != 0 {
					cs.get(fi, s.labels).delta += s.delta
				}
			}
		}
	}
	return nil
}

// zoomJob walks one interval again for some families and daemons.
type zoomJob struct {
	child  *counters
	fis    []int
	lo, hi time.Time
	only   restrict
	raw    bool
}

// fork returns counters sharing the client and selectors, with a copy of
// the given families' series: their previous values, and no delta yet.
func (cs *counters) fork(fis []int) *counters {
	ch := &counters{c: cs.c, fams: cs.fams, sels: cs.sels, st: make([]map[string]*series, len(cs.st)), rate: cs.rate}
	for i := range ch.st {
		ch.st[i] = map[string]*series{}
	}
	for _, fi := range fis {
		for k, s := range cs.st[fi] {
			ch.st[fi][k] = &series{labels: s.labels, prev: s.prev, hasPrev: s.hasPrev}
		}
	}
	return ch
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// grid splits (a, b] at the multiples of step strictly inside it.
func grid(a, b time.Time, step time.Duration) []interval {
	sm := step.Milliseconds()
	am, bm := a.UnixMilli(), b.UnixMilli()
	first := (am/sm + 1) * sm
	var ivs []interval
	lo := a
	for m := first; m < bm; m += sm {
		hi := time.UnixMilli(m)
		ivs = append(ivs, interval{lo: lo, hi: hi, full: lo.UnixMilli()%sm == 0 && lo.UnixMilli() != am})
		lo = hi
	}
	ivs = append(ivs, interval{lo: lo, hi: b})
	return ivs
}

// raw applies the raw samples of (a, b] of the given families. Families
// that differ only in their metric name (the orchestrator_id ones) are read
// by one query, {__name__=~"a|b|...", ...}, limited to the union of their
// instances; a series outside its own family's limit is skipped.
func (cs *counters) raw(ctx context.Context, fis []int, a, b time.Time, only restrict) error {
	gs, err := cs.readRaw(ctx, fis, a, b, only, cs.c.parallel)
	if err != nil {
		return err
	}
	return cs.applyRaw(gs, a, only, false)
}

// rawRead is the raw samples of one query of readRaw: of the families fis,
// which differ only in their metric name.
type rawRead struct {
	fis []int
	q   string
	m   model.Matrix
}

// sampleCount returns the number of raw samples in the reads.
func sampleCount(rs []*rawRead) int {
	n := 0
	for _, r := range rs {
		for _, ss := range r.m {
			n += len(ss.Values)
		}
	}
	return n
}

// readRaw reads the raw samples of (a, b] (and at a, on Prometheus) of the
// families fis, limited to the instances of only: one query for the
// families that differ only in their metric name, at most parallel at once.
func (cs *counters) readRaw(ctx context.Context, fis []int, a, b time.Time, only restrict, parallel int) ([]*rawRead, error) {
	var reads []*rawRead
	for _, fi := range fis {
		var into *rawRead
		for _, r := range reads {
			if slices.Equal(cs.fams[r.fis[0]].matchers, cs.fams[fi].matchers) {
				into = r
				break
			}
		}
		if into == nil {
			into = &rawRead{}
			reads = append(reads, into)
		}
		into.fis = append(into.fis, fi)
	}
	g, gctx := newGroup(ctx, parallel)
	for _, r := range reads {
		r.q = cs.groupSel(r.fis, only) + "[" + promDuration(b.Sub(a)) + "]"
		g.Go(func() (err error) {
			r.m, err = cs.c.instantMatrix(gctx, r.q, b)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return reads, nil
}

// applyRaw adds the increase of the raw samples after a to the series,
// from their previous values: a sample below the previous one counts from
// zero. With base, the samples at or before a set the previous values (the
// last one wins: reads that also hold the baseline's range).
func (cs *counters) applyRaw(reads []*rawRead, a time.Time, only restrict, base bool) error {
	am := a.UnixMilli()
	for _, gr := range reads {
		for _, ss := range gr.m {
			fi := gr.fis[0]
			if len(gr.fis) > 1 {
				fi = -1
				for _, f := range gr.fis {
					if cs.fams[f].metric == string(ss.Metric[model.MetricNameLabel]) {
						fi = f
					}
				}
				if fi < 0 {
					return cs.c.engineErr(gr.q, fmt.Errorf("series %v of no family asked for", ss.Metric))
				}
				if set := only[fi]; len(set) > 0 && !set[string(ss.Metric["instance"])] {
					continue // another family's instance
				}
			}
			vals := ss.Values
			sort.Slice(vals, func(i, j int) bool { return vals[i].Timestamp < vals[j].Timestamp })
			s := cs.get(fi, ss.Metric)
			for _, p := range vals {
				if int64(p.Timestamp) <= am && !base {
					continue // Prometheus 2 ranges include their start
				}
				if math.IsNaN(float64(p.Value)) {
					continue // a staleness marker (VictoriaMetrics returns them)
				}
				if !finite(p.Value) {
					return cs.c.engineErr(gr.q, fmt.Errorf("counter value %v", p.Value))
				}
				v := float64(p.Value)
				if int64(p.Timestamp) <= am {
					s.prev, s.hasPrev = v, true
					continue
				}
				switch {
				case !s.hasPrev || v < s.prev:
					s.delta += v
				default:
					s.delta += v - s.prev
				}
				s.prev, s.hasPrev = v, true
			}
		}
	}
	return nil
}

// groupSel is the selector of families that differ only in their metric
// name, limited to the union of their instances (none if one of them is
// not limited).
func (cs *counters) groupSel(fis []int, only restrict) string {
	if len(fis) == 1 {
		return cs.sel(fis[0], only)
	}
	names := make([]string, 0, len(fis))
	union := map[string]bool{}
	limited := true
	for _, fi := range fis {
		names = append(names, regexp.QuoteMeta(cs.fams[fi].metric))
		if len(only[fi]) == 0 {
			limited = false
		}
		for in := range only[fi] {
			union[in] = true
		}
	}
	ms := append([]string{model.MetricNameLabel + "=~" + quote(strings.Join(names, "|"))}, cs.fams[fis[0]].matchers...)
	if limited {
		vals := make([]string, 0, len(union))
		for v := range union {
			vals = append(vals, regexp.QuoteMeta(v))
		}
		sort.Strings(vals)
		ms = append(ms, "instance=~"+quote(strings.Join(vals, "|")))
	}
	return selector("", ms, cs.c.selector)
}
