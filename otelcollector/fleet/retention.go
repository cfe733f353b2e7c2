package fleet

import (
	"bufio"
	"context"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
)

// The retention an engine tells is read on the first call that needs it and
// kept for retentionRefresh (retentionRetry when the engine could not be
// reached), so a call asks for it at most once and New asks nothing.
const (
	retentionRefresh = 5 * time.Minute
	retentionRetry   = 30 * time.Second
	// metricsPageMax bounds how much of an engine's /metrics page is read.
	metricsPageMax = 8 << 20
)

// retention is what an engine tells of the data it keeps.
type retention struct {
	// keep is the time-based retention; 0 when unknown or none.
	keep time.Duration
	// size: a size-based retention is in effect (Prometheus).
	size bool
	// lowest is the oldest sample the engine holds; zero when unknown.
	lowest time.Time
}

// cut returns where the data of a window asked from start begins, and
// whether the engine's retention cuts the window (records after start may
// be missing):
//   - the oldest sample held is known (Prometheus' TSDB): the window is cut
//     when it starts before that sample and data may have been deleted
//     before it: the start is older than now − the time retention
//     (Prometheus deletes only blocks wholly older than its newest block's
//     end minus the retention), or a size retention is in effect. A start
//     older than the data but within the time retention is not cut:
//     nothing was recorded before (the engine is younger than the window);
//   - only the time retention is known (VictoriaMetrics): the window is
//     cut when it starts before now − retention, and begins there;
//   - nothing is known: never cut.
func (r retention) cut(start, now time.Time) (time.Time, bool) {
	beyond := r.keep > 0 && start.Before(now.Add(-r.keep))
	if !r.lowest.IsZero() {
		if r.lowest.After(start) && (beyond || r.size) {
			return engineTimeFrom(r.lowest), true
		}
		return start, false
	}
	if beyond {
		return engineTime(now.Add(-r.keep)), true
	}
	return start, false
}

// retentionCache holds the last retention read and when to read it again.
type retentionCache struct {
	mu   sync.Mutex
	r    retention
	next time.Time
}

// retention returns the engine's retention, reading it if the cached one
// is due. It never fails: what the engine does not tell stays unknown.
func (c *Client) retention(ctx context.Context) retention {
	rc := &c.ret
	rc.mu.Lock()
	defer rc.mu.Unlock()
	now := time.Now()
	if now.Before(rc.next) {
		return rc.r
	}
	r, reached := c.readRetention(ctx)
	rc.r = r
	if reached {
		rc.next = now.Add(retentionRefresh)
	} else {
		rc.next = now.Add(retentionRetry)
	}
	return r
}

// readRetention asks the engine, concurrently:
//   - /api/v1/status/runtimeinfo (storageRetention, the retention in effect:
//     "15d", "10GiB", "15d or 10GiB"), or /api/v1/status/flags when that
//     fails (storage.tsdb.retention.time and .size): Prometheus;
//   - its own /metrics page: Prometheus' prometheus_tsdb_lowest_timestamp
//     (the oldest sample its TSDB holds, in milliseconds), or
//     VictoriaMetrics' flag{name="retentionPeriod"} (its -retentionPeriod,
//     set or default; VictoriaMetrics has no runtimeinfo or flags API).
//
// reached is false when neither request got an HTTP answer.
func (c *Client) readRetention(ctx context.Context) (r retention, reached bool) {
	ctx, cancel := context.WithTimeout(ctx, min(c.timeout, 10*time.Second))
	defer cancel()
	var wg sync.WaitGroup
	var promKeep time.Duration
	var promSize, apiOK bool
	wg.Add(1)
	go func() {
		defer wg.Done()
		if ri, err := c.api.Runtimeinfo(ctx); err == nil && ri.StorageRetention != "" {
			promKeep, promSize = parsePromRetention(ri.StorageRetention)
			apiOK = true
			return
		}
		if fl, err := c.api.Flags(ctx); err == nil {
			promKeep, promSize = promRetentionFlags(fl)
			apiOK = true
		}
	}()
	page := c.metricsPage(ctx)
	wg.Wait()
	r.keep, r.size = promKeep, promSize
	if page.reached {
		if page.lowest > 0 {
			r.lowest = time.UnixMilli(page.lowest)
		}
		if r.keep == 0 && page.vmKeep > 0 {
			r.keep = page.vmKeep
		}
	}
	return r, page.reached || apiOK
}

// parsePromRetention reads Prometheus' runtimeinfo storageRetention.
func parsePromRetention(s string) (keep time.Duration, size bool) {
	for _, part := range strings.Split(s, " or ") {
		part = strings.TrimSpace(part)
		if d, err := model.ParseDuration(part); err == nil {
			keep = time.Duration(d)
		} else if strings.HasSuffix(part, "B") {
			size = true
		}
	}
	return keep, size
}

// promRetentionFlags reads Prometheus' flags: storage.tsdb.retention.time
// (or the older storage.tsdb.retention) and storage.tsdb.retention.size;
// with neither set, Prometheus keeps 15 days.
func promRetentionFlags(fl map[string]string) (keep time.Duration, size bool) {
	for _, k := range []string{"storage.tsdb.retention.time", "storage.tsdb.retention"} {
		if d, err := model.ParseDuration(fl[k]); err == nil && d > 0 {
			keep = time.Duration(d)
			break
		}
	}
	if s := fl["storage.tsdb.retention.size"]; s != "" && s != "0B" && s != "0" {
		size = true
	}
	if _, ok := fl["storage.tsdb.retention.time"]; ok && keep == 0 && !size {
		keep = 15 * 24 * time.Hour
	}
	return keep, size
}

// parseVMRetention reads VictoriaMetrics' -retentionPeriod: a number of
// months of 31 days without a suffix, else a number with h, d, w or y
// (365 days).
func parseVMRetention(s string) time.Duration {
	s = strings.ToLower(strings.TrimSpace(s))
	unit := 31 * 24 * time.Hour
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'h':
			unit, s = time.Hour, s[:n-1]
		case 'd':
			unit, s = 24*time.Hour, s[:n-1]
		case 'w':
			unit, s = 7*24*time.Hour, s[:n-1]
		case 'y':
			unit, s = 365*24*time.Hour, s[:n-1]
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f <= 0 || math.IsInf(f, 0) || f*float64(unit) > float64(math.MaxInt64) {
		return 0
	}
	return time.Duration(f * float64(unit))
}

type metricsPage struct {
	reached bool
	lowest  int64 // Prometheus: oldest sample held, ms; 0 unknown
	vmKeep  time.Duration
}

// metricsPage reads the lines it needs from the engine's /metrics page.
func (c *Client) metricsPage(ctx context.Context) (p metricsPage) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.addr, "/")+"/metrics", nil)
	if err != nil {
		return p
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return p
	}
	defer resp.Body.Close()
	p.reached = true
	if resp.StatusCode != http.StatusOK {
		return p
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, metricsPageMax))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	const (
		lowest = "prometheus_tsdb_lowest_timestamp "
		vmFlag = `flag{name="retentionPeriod", value="`
	)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, lowest):
			// No samples: MaxInt64, which stays unknown.
			f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, lowest)), 64)
			if err == nil && f > 0 && f < 1e15 {
				p.lowest = int64(f)
			}
		case strings.HasPrefix(line, vmFlag):
			v := strings.TrimPrefix(line, vmFlag)
			if i := strings.IndexByte(v, '"'); i >= 0 {
				p.vmKeep = parseVMRetention(v[:i])
			}
		}
	}
	return p
}
