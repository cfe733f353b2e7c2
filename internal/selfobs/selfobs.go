// Package selfobs counts what the collector itself drops, so that rejected
// records are visible in the same pipeline as the data they would have
// changed.
package selfobs

import (
	"sync/atomic"

	"github.com/wundr-io/orchestrator-otel/internal/validate"
)

// Rejections counts rejected records per reason. The zero value is ready to
// use and every method is safe for concurrent use.
type Rejections struct {
	n [validate.NumReasons + 1]atomic.Int64
}

// Add counts one rejection for reason r. OK is ignored.
func (r *Rejections) Add(reason validate.Reason) {
	if reason == validate.OK || int(reason) >= len(r.n) {
		return
	}
	r.n[reason].Add(1)
}

// Load returns the number of rejections for reason.
func (r *Rejections) Load(reason validate.Reason) int64 {
	if int(reason) >= len(r.n) {
		return 0
	}
	return r.n[reason].Load()
}

// Total returns the number of rejections over all reasons.
func (r *Rejections) Total() int64 {
	var t int64
	for i := range r.n {
		t += r.n[i].Load()
	}
	return t
}
