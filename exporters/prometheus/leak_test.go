package prometheus_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: the
// built-in server, its connections and the test peers must all be stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
