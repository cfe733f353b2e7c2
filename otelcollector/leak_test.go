package otelcollector_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: a
// Collector's readers, stats sampler and exporters must all stop on Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
