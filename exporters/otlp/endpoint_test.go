package otlp_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/exporters/otlp"
)

// TestWithEndpointRejectsURL: WithEndpoint takes host:port only, and New
// says so at once. On the old code New accepted "http://host:4317" (and
// the other malformed endpoints below); the mistake showed only when an
// export failed with "too many colons in address", 10 s later.
func TestWithEndpointRejectsURL(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		want     string
	}{
		{"http://127.0.0.1:4317", "WithEndpointURL"},
		{"https://collector.example:4318", "WithEndpointURL"},
		{"127.0.0.1:4318/v1/metrics", "port"},
		{"127.0.0.1", "host:port"},
		{"127.0.0.1:0", "port"},
		{"127.0.0.1:65536", "port"},
		{"127.0.0.1:http", "port"},
		{":4317", "host"},
		{"::1:4317", "host:port"},
		{"user@host:4317", "host"},
		{"", "host:port"},
		{"[0]:1", "host"},            // brackets hold an IPv6 address only (fuzz finding)
		{"[127.0.0.1]:4317", "host"}, // likewise
	} {
		t.Run(tc.endpoint, func(t *testing.T) {
			for _, protocol := range []otlp.Protocol{otlp.ProtocolGRPC, otlp.ProtocolHTTP} {
				exp, err := otlp.New(context.Background(), otlp.WithProtocol(protocol), otlp.WithEndpoint(tc.endpoint), otlp.WithInsecure())
				if err == nil {
					_ = exp.Shutdown(context.Background())
					t.Fatalf("%s: New accepted WithEndpoint(%q)", protocol, tc.endpoint)
				}
				if !errors.Is(err, otlp.ErrInvalidOption) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("%s: %q, want ErrInvalidOption mentioning %q", protocol, err, tc.want)
				}
			}
		})
	}
}

// TestEndpointFormsDeliver: host:port in WithEndpoint and the same address
// as a URL in WithEndpointURL both reach a real receiver.
func TestEndpointFormsDeliver(t *testing.T) {
	for _, protocol := range []otlp.Protocol{otlp.ProtocolGRPC, otlp.ProtocolHTTP} {
		var r *receiver
		if protocol == otlp.ProtocolHTTP {
			r = startHTTPReceiver(t, nil)
		} else {
			r = startGRPCReceiver(t, nil)
		}
		for _, opt := range []otlp.Option{
			otlp.WithEndpoint(r.Addr),
			otlp.WithEndpointURL("http://" + r.Addr + map[otlp.Protocol]string{otlp.ProtocolHTTP: "/v1/metrics"}[protocol]),
		} {
			before := r.Requests()
			p := newPipeline(t, otlp.WithProtocol(protocol), opt, otlp.WithInsecure(), otlp.WithInterval(time.Hour))
			p.counter.Add(context.Background(), 1)
			if err := p.flush(t); err != nil {
				t.Fatalf("%s: flush: %v", protocol, err)
			}
			if r.Requests() != before+1 {
				t.Fatalf("%s: %d requests, want %d", protocol, r.Requests(), before+1)
			}
		}
	}
}
