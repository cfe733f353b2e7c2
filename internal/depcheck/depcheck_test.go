package depcheck_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wundr-io/orchestrator-otel/internal/testpeer"
)

const grpcModule = "google.golang.org/grpc"

// TestPrometheusOnlyLinksNoGRPC: gRPC arrives only with exporters/otlp. A
// program that pulls with exporters/prometheus (the quickstart, and the
// smallest such program in testdata) must not depend on it, while
// exporters/otlp must (which shows the check can fail).
func TestPrometheusOnlyLinksNoGRPC(t *testing.T) {
	goBin := testpeer.GoTool(t)
	testCases := []struct {
		name     string
		pkg      string
		wantGRPC bool
	}{
		{"testdata prometheus-only program", "./testdata/promonly", false},
		{"quickstart", "../../examples/quickstart", false},
		{"otelcollector", "../../otelcollector", false},
		{"exporters/prometheus", "../../exporters/prometheus", false},
		{"exporters/otlp (control)", "../../exporters/otlp", true},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(filepath.FromSlash(tc.pkg)); err != nil {
				t.Fatalf("package directory %s: %v", tc.pkg, err)
			}
			cmd := exec.Command(goBin, "list", "-deps", tc.pkg)
			out, err := cmd.Output()
			if err != nil {
				var stderr string
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = string(ee.Stderr)
				}
				t.Fatalf("go list -deps %s: %v\n%s", tc.pkg, err, stderr)
			}
			deps := strings.Fields(string(out))
			hasGRPC := slices.ContainsFunc(deps, func(p string) bool {
				return p == grpcModule || strings.HasPrefix(p, grpcModule+"/")
			})
			if hasGRPC != tc.wantGRPC {
				t.Errorf("go list -deps %s: links %s = %v, want %v", tc.pkg, grpcModule, hasGRPC, tc.wantGRPC)
			}
		})
	}
}
