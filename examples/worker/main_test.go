package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"testing"
)

// TestRun runs a small batch on a loopback port and checks the summary
// accounts for every job.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), options{addr: "127.0.0.1:0", workers: 3, jobs: 60}, &out); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^orch-\S+: messages=(\d+) .* tool_calls=(\d+) failed=(\d+) errors=(\d+)$`)
	var messages, calls int
	for _, m := range re.FindAllStringSubmatch(out.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		k, _ := strconv.Atoi(m[2])
		failed, _ := strconv.Atoi(m[3])
		errs, _ := strconv.Atoi(m[4])
		if failed != errs {
			t.Errorf("failed tool calls %d != errors %d (each failed job records one error)", failed, errs)
		}
		messages += n
		calls += k
	}
	if messages != 60 || calls != 60 {
		t.Errorf("summary accounts for %d messages and %d tool calls, want 60 each:\n%s", messages, calls, out.String())
	}
}
