package fleet

import (
	"context"
	"math"
	"sort"
	"time"

	"github.com/prometheus/common/model"
)

// nativeResult holds the percentiles read from the native histogram.
type nativeResult struct {
	count         int64
	p50, p95, p99 time.Duration
	relErr        float64
}

type bucketKey struct{ lower, upper float64 }

// nativeQuantiles reads the opt-in native histogram of the message latency
// at Start and at End (instant selectors) and takes, per series, End − Start
// (or End alone when the series is new or its count went down). It returns
// nil, and the caller falls back to the classic buckets, when the engine
// holds no native histogram for the orchestrator: the daemons do not export
// it, or the engine ingests it without native-histogram support (Prometheus
// without --enable-feature=native-histograms keeps only its _count, _sum and
// +Inf bucket as floats, over which a quantile is NaN), or the buckets of a
// series changed scale inside the window. The caller also falls back when the
// native count differs from the exact classic count (a counter reset inside
// the window that the two instant reads cannot see).
//
// q is the native histogram's selector. (AggregatedStats evaluates the same
// instant selectors inside the baseline's and the sample count's queries
// when it sends both, and calls nativeFrom.)
func (c *Client) nativeQuantiles(ctx context.Context, q string, start, end time.Time) (*nativeResult, error) {
	atEnd, err := c.instant(ctx, q, end)
	if err != nil {
		return nil, err
	}
	hasHist := false
	for _, s := range atEnd {
		if s.Histogram != nil {
			hasHist = true
		}
	}
	if !hasHist {
		return nil, nil
	}
	atStart, err := c.instant(ctx, q, start)
	if err != nil {
		return nil, err
	}
	return nativeFrom(atStart, atEnd), nil
}

// nativeFrom computes the percentiles from the native histogram's samples
// at Start and End (nil: none, or not comparable; see nativeQuantiles).
func nativeFrom(atStart, atEnd model.Vector) *nativeResult {
	base := map[string]*model.SampleHistogram{}
	for _, s := range atStart {
		if s.Histogram != nil {
			base[seriesKey(s.Metric)] = s.Histogram
		}
	}
	sum := map[bucketKey]float64{}
	var total float64
	for _, s := range atEnd {
		h := s.Histogram
		if h == nil {
			continue
		}
		b := base[seriesKey(s.Metric)]
		if b != nil && float64(b.Count) > float64(h.Count) {
			b = nil // reset: count from zero
		}
		d := map[bucketKey]float64{}
		for _, bk := range h.Buckets {
			d[bucketKey{float64(bk.Lower), float64(bk.Upper)}] += float64(bk.Count)
		}
		if b != nil {
			for _, bk := range b.Buckets {
				k := bucketKey{float64(bk.Lower), float64(bk.Upper)}
				d[k] -= float64(bk.Count)
			}
		}
		for k, v := range d {
			if v < 0 || math.IsNaN(v) {
				return nil // the scale changed: not comparable
			}
			sum[k] += v
			total += v
		}
	}
	if total <= 0 {
		return nil
	}
	keys := make([]bucketKey, 0, len(sum))
	for k, v := range sum {
		if v > 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].upper != keys[j].upper {
			return keys[i].upper < keys[j].upper
		}
		return keys[i].lower < keys[j].lower
	})
	res := &nativeResult{count: int64(math.Round(total))}
	quant := func(q float64) (time.Duration, float64) {
		rank := math.Max(1, math.Min(total, math.Ceil(q*total)))
		seen := 0.0
		for _, k := range keys {
			n := sum[k]
			if seen+n < rank {
				seen += n
				continue
			}
			if k.lower <= 0 {
				return 0, 0 // the zero bucket
			}
			frac := (rank - seen - 0.5) / n
			return seconds(k.lower * math.Pow(k.upper/k.lower, frac)), (k.upper - k.lower) / k.lower
		}
		return 0, 0
	}
	var e1, e2, e3 float64
	res.p50, e1 = quant(0.50)
	res.p95, e2 = quant(0.95)
	res.p99, e3 = quant(0.99)
	res.relErr = max(e1, e2, e3)
	return res
}
