// Package testpeer starts real peers (a Prometheus server, an OpenTelemetry
// Collector) on loopback for end-to-end tests, and reads back what they
// received. It is test support: every function takes a testing.TB.
//
// Peers bind port 0 where they can and report the port they got (Prometheus
// and the Collector's OTLP receivers log it); the one port that cannot be
// learnt that way, the Collector's Prometheus exporter, is chosen here and
// the start is retried with another when the port was taken meanwhile.
//
// Processes (process.go), the Collector (collector.go) and what it wrote
// (otlpfile.go), and Prometheus (prometheus.go) each have their own file.
package testpeer

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// modulePath is the main module's path; repoRoot looks for its go.mod.
const modulePath = "github.com/wundr-io/orchestrator-otel"

// pollInterval is how often Eventually, and everything here that waits,
// checks again.
const pollInterval = 50 * time.Millisecond

// Eventually calls f every 50 ms until it returns nil, and fails the test
// with f's last error when timeout passes first. Call it from the test's
// goroutine.
func Eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	if err := poll(timeout, f); err != nil {
		t.Fatalf("not true after %v: %v", timeout, err)
	}
}

// poll calls f until it returns nil or timeout passes, and returns f's last
// error then.
func poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(pollInterval)
	}
}

// LookBinary finds a peer binary: the file named by the environment
// variable envVar, else name on PATH, else <repo>/.cache/name (where
// .ci/build-collector.sh puts the test Collector). When it is missing the
// test fails if CI=true (a missing peer must not pass silently in CI) and is
// skipped otherwise; hint says how to get it.
func LookBinary(t testing.TB, envVar, name, hint string) string {
	t.Helper()
	var candidates []string
	if p := os.Getenv(envVar); p != "" {
		candidates = append(candidates, p)
	} else {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		if root, err := repoRoot(); err == nil {
			candidates = append(candidates, filepath.Join(root, ".cache", name))
		}
	}
	for _, p := range candidates {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	msg := fmt.Sprintf("testpeer: %s not found (set %s or %s)", name, envVar, hint)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// GoTool returns the go command on PATH. go test puts its own toolchain's
// bin directory first on the PATH of the tests it runs.
func GoTool(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("testpeer: go tool: %v", err)
	}
	return p
}

// ClosedAddr returns a 127.0.0.1 address nothing listens on: a port the
// kernel has just handed out and taken back. Use it for "nothing is there"
// tests. A process told to bind it may find it taken in between; the
// Collector started on it retries such a start.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	addr, err := closedAddr()
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	return addr
}

func closedAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pick a port: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// repoRoot walks up from the working directory to the directory whose
// go.mod declares modulePath.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && declaresModule(data, modulePath) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod for %s above the working directory", modulePath)
		}
		dir = parent
	}
}

func declaresModule(gomod []byte, path string) bool {
	for _, line := range strings.Split(string(gomod), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`) == path
		}
	}
	return false
}
