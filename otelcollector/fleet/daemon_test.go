package fleet_test

// The fleet tests run each daemon as a separate OS process: the test binary
// itself, re-executed with FLEET_TEST_DAEMON set (see TestMain). A daemon is
// an otelcollector.Collector with the Prometheus exporter (and, when asked,
// the OTLP exporter), plus a small control API on the same loopback port:
//
//	POST /record  a JSON list of ops, applied in order; 200 when done
//	GET  /stats?orch=ID&start=MS&end=MS  the daemon's own AggregatedStats
//	POST /flush   Flush (pushes OTLP)
//
// The test keeps the ground truth of what it asked each daemon to record.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/exporters/otlp"
	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/internal/testpeer"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

const daemonEnv = "FLEET_TEST_DAEMON"

func TestMain(m *testing.M) {
	if os.Getenv(daemonEnv) != "" {
		if err := daemonMain(); err != nil {
			fmt.Fprintln(os.Stderr, "daemon:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// op is one record a daemon makes.
type op struct {
	Op     string `json:"op"` // tokens, latency, tool, error, delegation, session_start, session_end
	Orch   string `json:"orch,omitempty"`
	To     string `json:"to,omitempty"`
	Model  string `json:"model,omitempty"`
	Tool   string `json:"tool,omitempty"`
	Status string `json:"status,omitempty"`
	Type   string `json:"type,omitempty"`
	N      int64  `json:"n,omitempty"`
	Micros int64  `json:"us,omitempty"` // latency in microseconds
}

func daemonMain() error {
	addr := os.Getenv("FLEET_DAEMON_ADDR")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	pexp, err := prometheus.New()
	if err != nil {
		return err
	}
	opts := []otelcollector.Option{
		otelcollector.WithExporter(pexp),
		otelcollector.WithStatsResolution(50 * time.Millisecond),
		otelcollector.WithStatsRetention(30 * time.Minute),
	}
	if ep := os.Getenv("FLEET_DAEMON_OTLP"); ep != "" {
		oexp, err := otlp.New(ctx, otlp.WithEndpoint(ep), otlp.WithInsecure(), otlp.WithInterval(500*time.Millisecond))
		if err != nil {
			return err
		}
		opts = append(opts, otelcollector.WithExporter(oexp))
	}
	opts = append(opts, daemonExtraOptions()...)
	c, err := otelcollector.New(ctx, opts...)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", pexp.Handler())
	var mu sync.Mutex
	mux.HandleFunc("/record", func(w http.ResponseWriter, r *http.Request) {
		var ops []op
		if err := json.NewDecoder(r.Body).Decode(&ops); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, o := range ops {
			if err := apply(ctx, c, o); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
	})
	mux.HandleFunc("/flush", func(w http.ResponseWriter, r *http.Request) {
		if err := c.Flush(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		s, _ := strconv.ParseInt(q.Get("start"), 10, 64)
		e, _ := strconv.ParseInt(q.Get("end"), 10, 64)
		st, err := c.AggregatedStats(r.Context(), q.Get("orch"), otelcollector.TimeRange{Start: time.UnixMilli(s), End: time.UnixMilli(e)})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return c.Close(sctx)
}

func apply(ctx context.Context, c *otelcollector.Collector, o op) error {
	switch o.Op {
	case "tokens":
		return c.RecordTokenUsage(ctx, o.Orch, o.Model, o.N)
	case "latency":
		return c.RecordMessageLatency(ctx, o.Orch, time.Duration(o.Micros)*time.Microsecond)
	case "tool":
		return c.RecordToolInvocation(ctx, o.Orch, o.Tool, otelcollector.ToolStatus(o.Status))
	case "error":
		return c.RecordError(ctx, o.Orch, o.Type)
	case "delegation":
		return c.RecordDelegation(ctx, o.Orch, o.To, otelcollector.DelegationStatus(o.Status))
	case "session_start":
		return c.RecordSessionStart(ctx, o.Orch, o.Type)
	case "session_end":
		return c.RecordSessionEnd(ctx, o.Orch, o.Type)
	}
	return fmt.Errorf("unknown op %q", o.Op)
}

// daemon is a daemon process the test controls.
type daemon struct {
	t    testing.TB
	name string
	Addr string
	env  []string
	cmd  *exec.Cmd
	done chan struct{}
	log  bytes.Buffer
	mu   sync.Mutex
}

func startDaemon(t testing.TB, name, addr string, env ...string) *daemon {
	t.Helper()
	if addr == "" {
		addr = testpeer.ClosedAddr(t)
	}
	d := &daemon{t: t, name: name, Addr: addr, env: env}
	d.start()
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			d.mu.Lock()
			t.Logf("daemon %s output:\n%s", d.name, d.log.String())
			d.mu.Unlock()
		}
	})
	return d
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (d *daemon) start() {
	d.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		d.t.Fatal(err)
	}
	d.cmd = exec.Command(exe, "-test.run=^$")
	d.cmd.Env = append(os.Environ(), append([]string{daemonEnv + "=1", "FLEET_DAEMON_ADDR=" + d.Addr}, d.env...)...)
	w := lockedWriter{mu: &d.mu, w: &d.log}
	d.cmd.Stdout, d.cmd.Stderr = w, w
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(d.cmd, d.done)
	testpeer.Eventually(d.t, 30*time.Second, func() error {
		select {
		case <-d.done:
			return fmt.Errorf("daemon %s exited: %s", d.name, d.log.String())
		default:
		}
		resp, err := http.Get("http://" + d.Addr + "/metrics")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

// Stop ends the process (SIGTERM, then SIGKILL after 10 s).
func (d *daemon) Stop() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	d.cmd = nil
}

// Restart stops the process and starts a new one on the same address.
func (d *daemon) Restart() {
	d.Stop()
	d.start()
}

func (d *daemon) Record(ops ...op) {
	d.t.Helper()
	b, _ := json.Marshal(ops)
	resp, err := http.Post("http://"+d.Addr+"/record", "application/json", bytes.NewReader(b))
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		d.t.Fatalf("daemon %s: record: %s: %s", d.name, resp.Status, msg)
	}
}

func (d *daemon) Flush() {
	d.t.Helper()
	resp, err := http.Post("http://"+d.Addr+"/flush", "", nil)
	if err != nil {
		d.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		d.t.Fatalf("daemon %s: flush: %s", d.name, resp.Status)
	}
}

func (d *daemon) Stats(orch string, start, end time.Time) otelcollector.AggregatedStats {
	d.t.Helper()
	u := fmt.Sprintf("http://%s/stats?orch=%s&start=%d&end=%d", d.Addr, orch, start.UnixMilli(), end.UnixMilli())
	resp, err := http.Get(u)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st otelcollector.AggregatedStats
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		d.t.Fatalf("daemon %s: stats: %s: %s", d.name, resp.Status, msg)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		d.t.Fatal(errors.Join(err, fmt.Errorf("daemon %s stats", d.name)))
	}
	return st
}
