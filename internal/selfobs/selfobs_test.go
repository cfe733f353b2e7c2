package selfobs

import (
	"sync"
	"testing"

	"github.com/wundr-io/orchestrator-otel/internal/validate"
)

func TestRejectionsConcurrentSafe(t *testing.T) {
	var r Rejections
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				r.Add(validate.EmptyLabel)
				r.Add(validate.Closed)
				r.Add(validate.OK)
			}
		}()
	}
	wg.Wait()
	if got := r.Load(validate.EmptyLabel); got != 8000 {
		t.Fatalf("empty_label = %d, want 8000", got)
	}
	if got := r.Total(); got != 16000 {
		t.Fatalf("total = %d, want 16000", got)
	}
	if got := r.Load(validate.OK); got != 0 {
		t.Fatalf("ok counted %d times", got)
	}
}
