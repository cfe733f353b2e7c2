package otelcollector

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// inUse holds every reader a live Collector uses, directly (WithReader) or
// through an exporter, so that New can refuse one that another Collector
// already uses: the SDK would only log "duplicate reader registration",
// and the second Collector's Close would shut the first one's reader down.
var inUse sync.Map // sdkmetric.Reader -> struct{}

// readersOf lists the readers of cfg, those of its exporters included.
func readersOf(cfg *config) []sdkmetric.Reader {
	rs := append([]sdkmetric.Reader(nil), cfg.readers...)
	for _, e := range cfg.exporters {
		rs = append(rs, e.Reader())
	}
	return rs
}

// claimReaders claims every reader of cfg. A reader that is claimed
// already, or given twice, makes it fail with ErrInvalidOption, and those
// readers and their exporters are marked shared in cfg so that the failed
// New does not release them.
func claimReaders(cfg *config) error {
	var claimed []sdkmetric.Reader
	for _, r := range readersOf(cfg) {
		if r == nil || !reflect.TypeOf(r).Comparable() {
			continue
		}
		if _, loaded := inUse.LoadOrStore(r, struct{}{}); loaded {
			for _, x := range claimed {
				inUse.Delete(x)
			}
			cfg.shared = r
			return fmt.Errorf("%w: reader %T is already used by a Collector (an exporter or reader serves one Collector only)", ErrInvalidOption, r)
		}
		claimed = append(claimed, r)
	}
	return nil
}

// unclaimReaders releases the claims of claimReaders.
func unclaimReaders(cfg config) {
	for _, r := range readersOf(&cfg) {
		if r != nil && reflect.TypeOf(r).Comparable() {
			inUse.Delete(r)
		}
	}
}

// releaseUnclaimed shuts down the exporters and readers of a New that
// failed, except the one another Collector uses, under a short deadline of
// its own.
func releaseUnclaimed(cfg config) error {
	ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	defer cancel()
	var err error
	for _, e := range cfg.exporters {
		if e.Reader() == cfg.shared {
			continue
		}
		err = errors.Join(err, untilDeadline(ctx, fmt.Sprintf("New: releasing exporter %T", e), e.Shutdown))
		if e := e.Reader().Shutdown(ctx); e != nil && !errors.Is(e, sdkmetric.ErrReaderShutdown) && !errors.Is(e, sdkmetric.ErrReaderNotRegistered) {
			err = errors.Join(err, e)
		}
	}
	for _, r := range cfg.readers {
		if r == cfg.shared {
			continue
		}
		if e := r.Shutdown(ctx); e != nil && !errors.Is(e, sdkmetric.ErrReaderShutdown) && !errors.Is(e, sdkmetric.ErrReaderNotRegistered) {
			err = errors.Join(err, e)
		}
	}
	return err
}

// isNil reports whether v is nil or a typed nil (a nil pointer, map, ...
// in a non-nil interface), which would panic when used.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return rv.IsNil()
	}
	return false
}
