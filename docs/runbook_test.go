package docs_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

const runbookPath = "runbook.md"

// TestRunbookCoversEveryAlert: every alert of rules.yml has a severity, a
// summary, a description and a runbook_url, and that URL points at a
// section of runbook.md named after the alert (GitHub's anchor of "##
// Name" is the lower-cased name).
func TestRunbookCoversEveryAlert(t *testing.T) {
	rules, err := os.ReadFile(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	book, err := os.ReadFile(runbookPath)
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## (\S+)\s*$`).FindAllSubmatch(book, -1) {
		sections[strings.ToLower(string(m[1]))] = true
	}
	const base = "https://github.com/wundr-io/orchestrator-otel/blob/main/docs/runbook.md#"
	blocks := regexp.MustCompile(`(?m)^\s*- alert:\s*`).Split(string(rules), -1)[1:]
	if len(blocks) < 8 {
		t.Fatalf("found %d alerts in %s, want at least 8", len(blocks), rulesPath)
	}
	for _, b := range blocks {
		if i := strings.Index(b, "\n  - name:"); i >= 0 {
			b = b[:i]
		}
		name := strings.Fields(b)[0]
		for _, want := range []string{"severity:", "summary:", "description:", "runbook_url:"} {
			if !strings.Contains(b, want) {
				t.Errorf("%s: no %s", name, strings.TrimSuffix(want, ":"))
			}
		}
		m := regexp.MustCompile(`runbook_url:\s*"([^"]*)"`).FindStringSubmatch(b)
		if m == nil {
			continue
		}
		if want := base + strings.ToLower(name); m[1] != want {
			t.Errorf("%s: runbook_url %s, want %s", name, m[1], want)
		}
		if !sections[strings.ToLower(name)] {
			t.Errorf("%s: %s has no section \"## %s\"", name, runbookPath, name)
		}
	}
}
