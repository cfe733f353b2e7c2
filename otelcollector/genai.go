package otelcollector

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/semconv/v1.41.0/genaiconv"

	"github.com/wundr-io/orchestrator-otel/internal/schema"
	"github.com/wundr-io/orchestrator-otel/internal/validate"
)

// GenAIOperationChat is the gen_ai.operation.name RecordTokenUsageDetailed
// uses when TokenUsage.Operation is empty.
const GenAIOperationChat = "chat"

// TokenUsage is what one model call consumed, for RecordTokenUsageDetailed.
type TokenUsage struct {
	// Model is the requested model: the model label of
	// orchestrator_tokens_used_total and gen_ai.request.model. Required.
	Model string
	// Provider is gen_ai.provider.name as the conventions spell it
	// ("anthropic", "openai", "gcp.vertex_ai", "aws.bedrock", ...).
	// Optional: when empty the attribute is left out.
	Provider string
	// Operation is gen_ai.operation.name ("chat", "text_completion",
	// "embeddings", ...). Empty means GenAIOperationChat.
	Operation string
	// Input and Output are the prompt and completion tokens, each >= 0.
	Input, Output int64
	// Duration is how long the model call took. 0 records no
	// gen_ai.client.operation.duration; a negative duration is rejected.
	Duration time.Duration
}

// RecordTokenUsageDetailed records one model call. It adds Input+Output to
// orchestrator_tokens_used_total for orchestratorID and u.Model, exactly as
// RecordTokenUsage does. With WithGenAIMetrics it also records u.Input and
// u.Output in gen_ai.client.token.usage (gen_ai.token.type input and output)
// and, when u.Duration > 0, u.Duration in gen_ai.client.operation.duration.
//
// Bad input (an invalid orchestratorID, Model, or non-empty Provider or
// Operation; negative tokens or duration; Input+Output beyond int64) is
// rejected like any record: an error wrapping ErrInvalidLabel or
// ErrInvalidValue, counted in orchestrator_collector_rejected_total, and
// nothing recorded.
func (c *Collector) RecordTokenUsageDetailed(ctx context.Context, orchestratorID string, u TokenUsage) error {
	slot, ok := c.enter()
	if !ok {
		return c.reject(validate.Closed, "", nil)
	}
	if err := c.checkTokenUsage(u); err != nil {
		c.leave(slot)
		return err
	}
	// The legacy counter validates orchestratorID and Model and holds its
	// own in-flight mark; ours keeps Close waiting for the GenAI records.
	if err := c.RecordTokenUsage(ctx, orchestratorID, u.Model, u.Input+u.Output); err != nil {
		c.leave(slot)
		return err
	}
	if g := c.genai; g != nil {
		e := g.entry(u.Operation, u.Model, u.Provider)
		if e == g.overflow {
			g.tokensOverflowed.Add(1)
		}
		g.tokens.Record(ctx, u.Input, e.input...)
		g.tokens.Record(ctx, u.Output, e.output...)
		if u.Duration > 0 {
			if e == g.overflow {
				g.durationOverflowed.Add(1)
			}
			g.duration.Record(ctx, u.Duration.Seconds(), e.duration...)
		}
	}
	c.leave(slot)
	return nil
}

func (c *Collector) checkTokenUsage(u TokenUsage) error {
	if r := validate.NonNegativeInt(u.Input); r != validate.OK {
		return c.reject(r, "Input", u.Input)
	}
	if r := validate.NonNegativeInt(u.Output); r != validate.OK {
		return c.reject(r, "Output", u.Output)
	}
	if u.Input > math.MaxInt64-u.Output {
		c.rejected.Add(validate.ValueOverflow)
		return fmt.Errorf("%w: Input+Output (%d+%d) overflows int64", ErrInvalidValue, u.Input, u.Output)
	}
	if u.Duration < 0 {
		return c.reject(validate.NegativeValue, "Duration", u.Duration)
	}
	if u.Provider != "" {
		if r := validate.Label(u.Provider); r != validate.OK {
			return c.reject(r, "Provider", u.Provider)
		}
	}
	if u.Operation != "" {
		if r := validate.Label(u.Operation); r != validate.OK {
			return c.reject(r, "Operation", u.Operation)
		}
	}
	return nil
}

// createGenAI creates the GenAI instruments when WithGenAIMetrics is given,
// on the Collector's one Meter.
func (c *Collector) createGenAI(m metric.Meter, cfg config) error {
	if !cfg.genaiMetrics {
		return nil
	}
	g, err := newGenAIMetrics(m, cfg.cardinalityLimit)
	if err != nil {
		return fmt.Errorf("otelcollector: creating GenAI instruments: %w", err)
	}
	c.genai = g
	return nil
}

// genaiMetrics holds the GenAI instruments and, per (operation, model,
// provider), the options of their series. Up to limit-1 tuples are cached,
// as for the other instruments; every further tuple records into the
// overflow series (otel.metric.overflow=true), built once, so that a record
// past the limit allocates nothing, and is counted in
// orchestrator_collector_overflow_total.
type genaiMetrics struct {
	tokens   metric.Int64Histogram
	duration metric.Float64Histogram

	limit    int
	mu       sync.RWMutex
	entries  map[genaiKey]*genaiEntry
	overflow *genaiEntry

	tokensOverflowed, durationOverflowed atomic.Int64
}

type genaiKey struct{ operation, model, provider string }

type genaiEntry struct {
	input, output, duration []metric.RecordOption
}

func newGenAIMetrics(m metric.Meter, limit int) (*genaiMetrics, error) {
	tokens, err1 := genaiconv.NewClientTokenUsage(m,
		metric.WithExplicitBucketBoundaries(schema.GenAITokenUsageBuckets()...))
	duration, err2 := genaiconv.NewClientOperationDuration(m,
		metric.WithExplicitBucketBoundaries(schema.GenAIOperationDurationBuckets()...))
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return &genaiMetrics{
		tokens:   tokens.Inst(),
		duration: duration.Inst(),
		limit:    max(limit-1, 1),
		entries:  make(map[genaiKey]*genaiEntry),
		overflow: newGenAIOverflow(),
	}, nil
}

// entry returns the record options of one tuple; its labels are valid.
func (g *genaiMetrics) entry(operation, model, provider string) *genaiEntry {
	if operation == "" {
		operation = GenAIOperationChat
	}
	k := genaiKey{operation, model, provider}
	g.mu.RLock()
	e, ok := g.entries[k]
	full := len(g.entries) >= g.limit
	g.mu.RUnlock()
	if ok {
		return e
	}
	if full {
		return g.overflow
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if old, ok := g.entries[k]; ok {
		return old
	}
	if len(g.entries) >= g.limit {
		return g.overflow
	}
	e = newGenAIEntry(k)
	g.entries[k] = e
	return e
}

func newGenAIOverflow() *genaiEntry {
	opts := []metric.RecordOption{metric.WithAttributeSet(recordOverflowSet)}
	return &genaiEntry{input: opts, output: opts, duration: opts}
}

func newGenAIEntry(k genaiKey) *genaiEntry {
	base := []attribute.KeyValue{
		semconv.GenAIOperationNameKey.String(k.operation),
		semconv.GenAIRequestModel(k.model),
	}
	if k.provider != "" {
		base = append(base, semconv.GenAIProviderNameKey.String(k.provider))
	}
	with := func(extra ...attribute.KeyValue) []metric.RecordOption {
		kvs := append(append([]attribute.KeyValue(nil), base...), extra...)
		return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(kvs...))}
	}
	return &genaiEntry{
		input:    with(semconv.GenAITokenTypeInput),
		output:   with(semconv.GenAITokenTypeOutput),
		duration: with(),
	}
}
