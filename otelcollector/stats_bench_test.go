package otelcollector

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The benchmark workload: 1,000 orchestrators x 5 models x 10 tools, every
// series changing at every step (the worst case for the history): per
// orchestrator and step, tokens on each model, a call of each tool (and a
// failed one), 10 latencies (log-uniform 10 ms .. 10 s), an error, a session
// start and end, and a delegation.
const (
	benchOrchs = 1000
	benchSteps = 360 // the default retention over the default resolution
)

var (
	benchModels = []string{"claude-sonnet", "claude-haiku", "claude-opus", "gpt-4o", "gemini"}
	benchTools  = []string{"bash", "read_file", "write_file", "edit", "grep", "glob", "web_search", "web_fetch", "task", "todo"}
)

func benchOrchIDs() []string {
	ids := make([]string, benchOrchs)
	for i := range ids {
		ids[i] = fmt.Sprintf("orch-%04d", i)
	}
	return ids
}

func benchStep(tb testing.TB, c *Collector, ids []string, rng *rand.Rand, step int) {
	ctx := context.Background()
	// Every error fails the benchmark, not only the last one.
	check := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	for i, id := range ids {
		for _, m := range benchModels {
			check(c.RecordTokenUsage(ctx, id, m, int64(100+rng.IntN(2000))))
		}
		for _, tool := range benchTools {
			check(c.RecordToolInvocation(ctx, id, tool, ToolSuccess))
		}
		check(c.RecordToolInvocation(ctx, id, benchTools[step%len(benchTools)], ToolError))
		for range 10 {
			d := time.Duration(math.Exp(math.Log(1e4)+rng.Float64()*math.Log(1e3))) * time.Microsecond
			check(c.RecordMessageLatency(ctx, id, d))
		}
		check(c.RecordError(ctx, id, []string{"rate_limit", "timeout", "tool_error"}[step%3]))
		if step > 0 {
			check(c.RecordSessionEnd(ctx, id, "claude-code"))
		}
		check(c.RecordSessionStart(ctx, id, "claude-code"))
		check(c.RecordDelegation(ctx, id, ids[(i+1)%len(ids)], DelegationSuccess))
	}
}

func newBenchCollector(tb testing.TB, clk *fakeClock) *Collector {
	return newStatsCollector(tb, clk, WithCardinalityLimit(100_000))
}

func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// statsFixture is a Collector with a full retention of history for the
// benchmark workload, built once per process (it takes a few seconds).
type statsFixture struct {
	c                  *Collector
	clk                *fakeClock
	ids                []string
	heapBase, heapFull uint64
	frames, frameBytes int
	framesBase         int
	build              time.Duration
	// The live state the statistics read besides the history: the cells'
	// structs and the latency histograms (struct and buckets).
	cells, cellBytes, liveHistBytes int
}

var (
	fixtureOnce sync.Once
	fixture     *statsFixture
)

func getStatsFixture(b *testing.B) *statsFixture {
	fixtureOnce.Do(func() {
		start := time.Now()
		f := &statsFixture{clk: &fakeClock{t: statsT0}, ids: benchOrchIDs()}
		// Never closed: shared by the benchmarks of the process. Its
		// sampler goroutine is stopped at once (the fixture samples by
		// itself), so that no goroutine outlives the benchmarks.
		c, err := New(context.Background(), withStatsClock(f.clk.now, make(chan time.Time)), WithCardinalityLimit(100_000))
		if err != nil {
			b.Fatal(err)
		}
		close(c.stats.stop)
		<-c.stats.done
		f.c = c
		rng := rand.New(rand.NewPCG(1, 1))
		at := func(i int) time.Time { return statsT0.Add(time.Duration(i) * DefaultStatsResolution) }
		// The first steps create every series and widen each latency
		// histogram to its final range; the base is measured after them.
		const warm = 10
		steps := benchSteps
		if testing.Short() {
			steps = benchSteps / 10 // a smoke run: a tenth of the retention
		}
		for i := range steps + 5 {
			if i == warm {
				f.heapBase = heapAfterGC()
				f.framesBase, _ = c.stats.store.Size()
			}
			benchStep(b, c, f.ids, rng, i)
			sampleAt(b, c, f.clk, at(i+1))
		}
		f.heapFull = heapAfterGC()
		f.frames, f.frameBytes = c.stats.store.Size()
		f.cells, f.cellBytes = c.stats.store.Cells()
		c.latencySeries.cache.Range(func(_ orchKey, e *latencyEntry) bool {
			f.liveHistBytes += e.live.Size()
			return true
		})
		f.build = time.Since(start)
		fixture = f
	})
	if fixture == nil {
		b.Fatal("fixture failed")
	}
	return fixture
}

// BenchmarkStatsMemory reports the heap (after GC) of the benchmark
// workload's Collector with a full retention of history (full-B), the
// frames kept and their encoded bytes, and what each frame costs on the heap
// (B/frame): the heap growth from the 10th step to the end over the frames
// added meanwhile; and the live state the statistics read: the cells
// (cells, cell-B for their structs) and the latency histograms with their
// buckets (live-hist-B).
func BenchmarkStatsMemory(b *testing.B) {
	f := getStatsFixture(b)
	for b.Loop() {
	}
	b.ReportMetric(float64(f.heapFull), "full-B")
	b.ReportMetric(float64(f.frames), "frames")
	b.ReportMetric(float64(f.frameBytes), "frame-payload-B")
	b.ReportMetric(float64(int64(f.heapFull)-int64(f.heapBase))/float64(f.frames-f.framesBase), "B/frame")
	b.ReportMetric(float64(f.cells), "cells")
	b.ReportMetric(float64(f.cellBytes), "cell-B")
	b.ReportMetric(float64(f.liveHistBytes), "live-hist-B")
	b.Logf("fixture built in %v; heap after 10 steps %d B", f.build, f.heapBase)
}

// BenchmarkAggregatedStats asks for one orchestrator's stats over the full
// retention with 1,000 orchestrators live: ending now (with a collection at
// the call) and ending at the latest sample (samples only).
func BenchmarkAggregatedStats(b *testing.B) {
	f := getStatsFixture(b)
	ctx := context.Background()
	now := f.clk.now()
	for _, bc := range []struct {
		name string
		r    TimeRange
	}{
		{"orchestrators=1000/window=1h/end=now", Last(time.Hour)},
		{"orchestrators=1000/window=1h/end=past", TimeRange{Start: now.Add(-time.Hour), End: now.Add(-time.Nanosecond)}},
		{"orchestrators=1000/window=5m/end=past", TimeRange{Start: now.Add(-5 * time.Minute), End: now.Add(-time.Nanosecond)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				st, err := f.c.AggregatedStats(ctx, f.ids[i%benchOrchs], bc.r)
				if err != nil || st.Messages == 0 {
					b.Fatal(st, err)
				}
				i++
			}
		})
	}
}

// BenchmarkStatsSample measures one sampler step with 1,000 orchestrators
// live: every series changed since the previous step (activity=all), or
// none (activity=idle). The workload between steps is not timed.
// newSampledBenchCollector returns a bench Collector on a fake clock with
// one step of the workload recorded and sampled, and what the sampler
// benchmarks need to record further steps.
func newSampledBenchCollector(b *testing.B) (*Collector, *fakeClock, []string, *rand.Rand) {
	b.Helper()
	clk := &fakeClock{t: statsT0}
	c := newBenchCollector(b, clk)
	ids := benchOrchIDs()
	rng := rand.New(rand.NewPCG(2, 2))
	benchStep(b, c, ids, rng, 0)
	sampleAt(b, c, clk, statsT0.Add(time.Second))
	return c, clk, ids, rng
}

func BenchmarkStatsSample(b *testing.B) {
	for _, activity := range []string{"all", "idle"} {
		b.Run("orchestrators=1000/activity="+activity, func(b *testing.B) {
			c, clk, ids, rng := newSampledBenchCollector(b)
			b.ReportAllocs()
			step := 1
			for b.Loop() {
				if activity == "all" {
					b.StopTimer()
					benchStep(b, c, ids, rng, step)
					b.StartTimer()
				}
				step++
				clk.set(statsT0.Add(time.Duration(step) * time.Second))
				if err := c.stats.store.Sample(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRecordWithSampler measures record calls with 1,000 orchestrators
// live, with the sampler idle between ticks (as it is 99.9% of the time at
// the default resolution) and with a goroutine sampling back to back, the
// worst case: a record then competes with collections for the SDK's locks.
func BenchmarkRecordWithSampler(b *testing.B) {
	for _, sampler := range []string{"idle", "busy"} {
		clk := &fakeClock{t: statsT0}
		c := newBenchCollector(b, clk)
		ids := benchOrchIDs()
		benchStep(b, c, ids, rand.New(rand.NewPCG(3, 3)), 0)
		var stop atomic.Bool
		var wg sync.WaitGroup
		if sampler == "busy" {
			wg.Go(func() {
				for !stop.Load() {
					_ = c.stats.store.Sample(context.Background())
				}
			})
		}
		ctx := context.Background()
		for _, op := range []struct {
			name string
			f    func(i int) error
		}{
			{"op=RecordMessageLatency", func(i int) error { return c.RecordMessageLatency(ctx, ids[i%benchOrchs], 150*time.Millisecond) }},
			{"op=RecordTokenUsage", func(i int) error { return c.RecordTokenUsage(ctx, ids[i%benchOrchs], "claude-sonnet", 100) }},
			{"op=RecordSessionStart+End", func(i int) error {
				if err := c.RecordSessionStart(ctx, ids[i%benchOrchs], "ruflo"); err != nil {
					return err
				}
				return c.RecordSessionEnd(ctx, ids[i%benchOrchs], "ruflo")
			}},
		} {
			b.Run("sampler="+sampler+"/"+op.name, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if err := op.f(i); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
		stop.Store(true)
		wg.Wait()
	}
}

// cpuTime is the CPU time the process has used, all threads.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStatsSampleCPU is one sampler step at 1,000 orchestrators (the
// workload's ~17k series), reporting the process's CPU time per step
// (cpu-ns/op) besides wall time: with nothing recorded since the previous
// step (changed=0), with 100 orchestrators' series changed (changed=100),
// and all of them (changed=1000). The records between steps are not timed
// and their CPU is not counted.
func BenchmarkStatsSampleCPU(b *testing.B) {
	for _, changed := range []int{0, 100, 1000} {
		b.Run(fmt.Sprintf("orchestrators=1000/changed=%d", changed), func(b *testing.B) {
			c, clk, ids, rng := newSampledBenchCollector(b)
			b.ReportAllocs()
			var cpu time.Duration
			step := 1
			for b.Loop() {
				b.StopTimer()
				if changed > 0 {
					benchStep(b, c, ids[:changed], rng, step)
				}
				step++
				clk.set(statsT0.Add(time.Duration(step) * time.Second))
				c0 := cpuTime()
				b.StartTimer()
				if err := c.stats.store.Sample(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				cpu += cpuTime() - c0
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkAggregatedStatsNow asks for one orchestrator's stats over a
// window ending now (Last(5m)) at 1,000 orchestrators (~17k series):
//   - recorders=2: two goroutines record throughout (tokens, latencies and
//     tool calls of random orchestrators); p50-ns and p99-ns are the
//     percentiles of the calls' wall time; B/op includes what the
//     recorders allocate meanwhile (nothing once their series exist);
//   - recorders=0/changes=N: N records of random series are made between
//     calls with the timer stopped, so B/op and allocs/op are the call's own;
//   - orchestrators=100/recorders=0/changes=0: the same query with a tenth
//     of the series in the process, to show that its cost does not grow
//     with the other orchestrators' series.
func BenchmarkAggregatedStatsNow(b *testing.B) {
	setup := func(b *testing.B, orchs ...int) (*Collector, []string) {
		clk := &fakeClock{t: statsT0}
		c := newBenchCollector(b, clk)
		ids := benchOrchIDs()
		if len(orchs) > 0 {
			ids = ids[:orchs[0]]
		}
		benchStep(b, c, ids, rand.New(rand.NewPCG(4, 4)), 0)
		sampleAt(b, c, clk, statsT0.Add(10*time.Second))
		clk.set(statsT0.Add(15 * time.Second))
		return c, ids
	}
	ctx := context.Background()
	recordOne := func(c *Collector, ids []string, rng *rand.Rand) {
		id := ids[rng.IntN(len(ids))]
		switch rng.IntN(3) {
		case 0:
			_ = c.RecordTokenUsage(ctx, id, benchModels[rng.IntN(len(benchModels))], 100)
		case 1:
			_ = c.RecordMessageLatency(ctx, id, time.Duration(10+rng.IntN(5000))*time.Millisecond)
		default:
			_ = c.RecordToolInvocation(ctx, id, benchTools[rng.IntN(len(benchTools))], ToolSuccess)
		}
	}
	b.Run("orchestrators=1000/recorders=2", func(b *testing.B) {
		c, ids := setup(b)
		var stop atomic.Bool
		var wg sync.WaitGroup
		for g := range 2 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 5))
				for i := 0; !stop.Load() && i < 1<<30; i++ {
					recordOne(c, ids, rng)
				}
			})
		}
		b.ReportAllocs()
		var lat []time.Duration
		i := 0
		for b.Loop() {
			t0 := time.Now()
			st, err := c.AggregatedStats(ctx, ids[i%len(ids)], Last(5*time.Minute))
			lat = append(lat, time.Since(t0))
			if err != nil || st.Messages == 0 {
				b.Fatal(st, err)
			}
			i++
		}
		stop.Store(true)
		wg.Wait()
		reportPercentiles(b, lat)
	})
	for _, bc := range []struct{ orchs, changes int }{{1000, 0}, {1000, 100}, {1000, 1000}, {100, 0}} {
		changes := bc.changes
		b.Run(fmt.Sprintf("orchestrators=%d/recorders=0/changes=%d", bc.orchs, changes), func(b *testing.B) {
			c, ids := setup(b, bc.orchs)
			rng := rand.New(rand.NewPCG(6, 6))
			b.ReportAllocs()
			var lat []time.Duration
			i := 0
			for b.Loop() {
				b.StopTimer()
				for range changes {
					recordOne(c, ids, rng)
				}
				b.StartTimer()
				t0 := time.Now()
				st, err := c.AggregatedStats(ctx, ids[i%len(ids)], Last(5*time.Minute))
				lat = append(lat, time.Since(t0))
				if err != nil || st.Messages == 0 {
					b.Fatal(st, err)
				}
				i++
			}
			reportPercentiles(b, lat)
		})
	}
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
