package testpeer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Alertmanager is an alertmanager started for one test.
type Alertmanager struct {
	// Addr is its 127.0.0.1:port, what Prometheus' alerting config names.
	Addr string
	// URL is the base URL of its HTTP API, http://Addr.
	URL string
}

// AlertmanagerOptions configures StartAlertmanager.
type AlertmanagerOptions struct {
	// WebhookURL receives every notification (send_resolved: true), one
	// alert per group: group_by [...], group_wait and group_interval 1s,
	// repeat_interval 1h.
	WebhookURL string
}

// StartAlertmanager starts an Alertmanager (Debian's
// prometheus-alertmanager, or alertmanager, or ALERTMANAGER_BIN) on
// 127.0.0.1, port 0, clustering off (--cluster.listen-address=), and waits
// until it is ready. It is stopped when the test ends, and its log tail is
// printed if the test failed.
func StartAlertmanager(t testing.TB, opts AlertmanagerOptions) *Alertmanager {
	t.Helper()
	bin := os.Getenv("ALERTMANAGER_BIN")
	if bin == "" {
		if p, err := exec.LookPath("alertmanager"); err == nil {
			bin = p
		}
	}
	if bin == "" {
		bin = LookBinary(t, "ALERTMANAGER_BIN", "prometheus-alertmanager", "install the prometheus-alertmanager package")
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: webhook
  group_by: ['...']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: webhook
    webhook_configs:
      - url: %q
        send_resolved: true
`, opts.WebhookURL)
	cfgPath := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := startToolkitPeer(t, "alertmanager", bin, []string{
		"--config.file=" + cfgPath,
		"--storage.path=" + filepath.Join(dir, "data"),
		"--cluster.listen-address=",
	}, filepath.Join(dir, "alertmanager.log"))
	return &Alertmanager{Addr: addr, URL: "http://" + addr}
}
