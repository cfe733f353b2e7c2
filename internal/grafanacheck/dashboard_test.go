package grafanacheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

const dashboardPath = "../../docs/grafana/orchestrator-overview.json"

// TestDashboardStrictDecode: the dashboard decodes strictly into the SDK's
// dashboard.Dashboard, with every panel's options and every query decoded
// by the plugin types the SDK registers, and passes Validate.
func TestDashboardStrictDecode(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	raw := readDashboard(t)
	d, err := decodeStrict(raw)
	if err != nil {
		t.Fatalf("strict decode of %s: %v", dashboardPath, err)
	}
	if err := realError(d.Validate()); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if d.Title == nil || *d.Title == "" || d.Uid == nil || *d.Uid == "" {
		t.Errorf("dashboard needs a title and a uid")
	}
	if len(d.Panels) == 0 {
		t.Fatal("no panels decoded")
	}
}

// TestStrictDecodeRejectsUnknownFields: the strict decode is strict
// where this module relies on it: a misspelt field in the dashboard, in a
// panel, in a panel's options or in a Prometheus query fails. (v0.0.22
// decodes a panel's fieldConfig.defaults leniently: a misspelt "units"
// there passes, which is why TestDashboardPanelTypesAndUnits checks the
// unit itself.)
func TestStrictDecodeRejectsUnknownFields(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	testCases := []struct {
		name string
		edit func(m map[string]any)
	}{
		{"dashboard", func(m map[string]any) { m["titel"] = "x" }},
		{"panel", func(m map[string]any) { firstPanel(m, "timeseries")["gridpos"] = map[string]any{} }},
		{"panel options", func(m map[string]any) {
			firstPanel(m, "timeseries")["options"].(map[string]any)["legnd"] = map[string]any{}
		}},
		{"query", func(m map[string]any) {
			firstPanel(m, "timeseries")["targets"].([]any)[0].(map[string]any)["exp"] = "up"
		}},
	}
	if _, err := decodeStrict(readDashboard(t)); err != nil {
		t.Fatalf("the dashboard itself does not decode: %v", err)
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(readDashboard(t), &m); err != nil {
				t.Fatal(err)
			}
			tc.edit(m)
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := decodeStrict(b); err == nil {
				t.Errorf("strict decode accepted a misspelt field in the %s", tc.name)
			}
		})
	}
}

// TestDashboardPanelTypesAndUnits: every panel type is one the SDK has a
// panel config for (or a row), and every unit is one of the SDK's units
// constants.
func TestDashboardPanelTypesAndUnits(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	units := sdkUnits(t)
	for _, p := range panels(t) {
		if p.Type != "row" {
			if _, ok := cog.ConfigForPanelcfgVariant(p.Type); !ok {
				t.Errorf("panel %q: type %q is not a panel type of the SDK", p.Title, p.Type)
			}
		}
		if p.FieldConfig == nil {
			continue
		}
		if u := p.FieldConfig.Defaults.Unit; u != "" && !units[u] {
			t.Errorf("panel %q: unit %q is not one of the SDK's units", p.Title, u)
		}
		for _, o := range p.FieldConfig.Overrides {
			for _, prop := range o.Properties {
				if prop.ID == "unit" {
					if u, _ := prop.Value.(string); !units[u] {
						t.Errorf("panel %q: override unit %q is not one of the SDK's units", p.Title, u)
					}
				}
			}
		}
	}
}

// Grafana's built-in variables (https://grafana.com/docs/grafana/latest/dashboards/variables/add-template-variables/#global-variables).
var builtins = []string{
	"__interval", "__interval_ms", "__rate_interval", "__rate_interval_ms", "__range", "__range_s",
	"__range_ms", "__from", "__to", "__all", "__dashboard", "__name", "__org", "__user", "__timezone",
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z0-9_]+)(?::[^\]]*)?\]\]`)

// TestDashboardVariablesDefined: every $var, ${var} and [[var]] in the
// dashboard is a variable of its templating list or one of Grafana's
// built-ins, and a variable used by another's query is defined before it
// (Grafana resolves them in order).
func TestDashboardVariablesDefined(t *testing.T) {
	var d struct {
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	raw := readDashboard(t)
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	defined := map[string]int{}
	for i, v := range d.Templating.List {
		defined[v.Name] = i
	}
	for i, v := range d.Templating.List {
		for _, name := range refs(string(v.Query)) {
			if j, ok := defined[name]; ok && j >= i {
				t.Errorf("variable %s uses $%s, defined after it", v.Name, name)
			}
		}
	}
	used := map[string]bool{}
	for _, name := range refs(string(raw)) {
		used[name] = true
		if _, ok := defined[name]; !ok && !slices.Contains(builtins, name) {
			t.Errorf("$%s is used but not defined", name)
		}
	}
	for name := range defined {
		if !used[name] {
			t.Errorf("variable %s is defined but no query uses it", name)
		}
	}
}

// decodeStrict decodes a dashboard with the SDK's strict decoder.
//
//lint:ignore SA1019 the file is the classic dashboard JSON (schemaVersion 39) that Grafana imports; dashboardv2 is the v2 resource format, another schema
func decodeStrict(raw []byte) (dashboard.Dashboard, error) {
	//lint:ignore SA1019 as above: the classic schema is the one the file uses
	var d dashboard.Dashboard
	err := realError(d.UnmarshalJSONStrict(raw))
	return d, err
}

// realError returns nil for an empty cog.BuildErrors: v0.0.22's decoders
// and Validate return their error list as an error even when it is empty.
func realError(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}

// refs returns the variable names referenced in s.
func refs(s string) []string {
	var out []string
	for _, m := range varRef.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1]+m[2]+m[3])
	}
	return out
}

// TestRefs pins the reference syntax TestDashboardVariablesDefined reads.
func TestRefs(t *testing.T) {
	testCases := []struct {
		in   string
		want []string
	}{
		{`rate(x{a=~"$job"}[$__rate_interval])`, []string{"job", "__rate_interval"}},
		{`${datasource}`, []string{"datasource"}},
		{`${instance:regex} [[model]] [[a:csv]]`, []string{"instance", "model", "a"}},
		{`no variables, 5 $`, nil},
	}
	for _, tc := range testCases {
		if got := refs(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("refs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

type panelJSON struct {
	Type        string `json:"type"`
	Title       string `json:"title"`
	FieldConfig *struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
		Overrides []struct {
			Properties []struct {
				ID    string `json:"id"`
				Value any    `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
	Panels []panelJSON `json:"panels"`
}

func panels(t *testing.T) []panelJSON {
	t.Helper()
	var d struct {
		Panels []panelJSON `json:"panels"`
	}
	if err := json.Unmarshal(readDashboard(t), &d); err != nil {
		t.Fatal(err)
	}
	var out []panelJSON
	var walk func([]panelJSON)
	walk = func(ps []panelJSON) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if len(out) < 10 {
		t.Fatalf("found %d panels; the dashboard did not parse as expected", len(out))
	}
	return out
}

func firstPanel(m map[string]any, typ string) map[string]any {
	var find func([]any) map[string]any
	find = func(ps []any) map[string]any {
		for _, p := range ps {
			pm := p.(map[string]any)
			if pm["type"] == typ {
				return pm
			}
			if sub, ok := pm["panels"].([]any); ok {
				if r := find(sub); r != nil {
					return r
				}
			}
		}
		return nil
	}
	return find(m["panels"].([]any))
}

func readDashboard(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) {
		t.Fatalf("%s is not valid JSON", dashboardPath)
	}
	return bytes.TrimSpace(b)
}

// sdkUnits reads the string constants of the SDK's units package from its
// source (Go cannot list a package's constants at run time).
func sdkUnits(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", "github.com/grafana/grafana-foundation-sdk/go/units").Output()
	if err != nil {
		t.Fatalf("go list units: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in %s: %v", dir, err)
	}
	units := map[string]bool{}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					units[s] = true
				}
			}
			return true
		})
	}
	if len(units) < 100 || !units["short"] || !units["percentunit"] {
		t.Fatalf("read %d units from %s; expected Grafana's list", len(units), filepath.Base(dir))
	}
	return units
}
