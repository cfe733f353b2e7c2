// Command mutate checks that the unit tests of the alerting rules bite: it
// applies, one at a time, each of these changes to every alert of a rules
// file and runs `promtool test rules` on the changed copy:
//
//   - its `for` lengthened by half;
//   - each threshold (the number after >, >=, < or <=) raised by half
//     (a threshold of 0 is left alone: half of 0 more is 0);
//   - each > made >=;
//   - each range window ([15m]) and each offset halved, one at a time.
//
// A mutant whose tests still pass survived; mutate lists the survivors and
// exits 1 if there is any. Only alerting rules are mutated: the recording
// rules they read are checked for exact values by the tests.
//
//	go run ./docs/prometheus/mutate docs/prometheus/rules.yml docs/prometheus/rules_test.yml docs/prometheus/rules_long_test.yml
//
// (make rules-mutate). A mutant is killed when any of the test files fails:
// each mutant meets the test files one at a time, the cheapest first, and
// the rest are not run once one fails. Mutants run on one worker per CPU.
//
// PROMTOOL_BIN overrides the promtool found on PATH.
package main

import (
	"cmp"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	verbose := flag.Bool("v", false, "print every mutant, not only the survivors")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: mutate [-v] rules.yml rules_test.yml...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 2 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Args()[1:], *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		os.Exit(1)
	}
}

func run(rulesPath string, testPaths []string, verbose bool) error {
	rules, err := os.ReadFile(rulesPath)
	if err != nil {
		return err
	}
	promtool := os.Getenv("PROMTOOL_BIN")
	if promtool == "" {
		if promtool, err = exec.LookPath("promtool"); err != nil {
			return fmt.Errorf("promtool not found (set PROMTOOL_BIN or install Prometheus): %w", err)
		}
	}
	tests := make([][]byte, len(testPaths))
	for i, p := range testPaths {
		if tests[i], err = os.ReadFile(p); err != nil {
			return err
		}
	}
	// One directory per worker: a test file names its rule files relative
	// to itself, so each worker's copies sit beside its mutated rules.
	workers := min(runtime.NumCPU(), 8)
	dirs := make([]*workDir, workers)
	for i := range dirs {
		if dirs[i], err = newWorkDir(promtool, rulesPath, testPaths, tests); err != nil {
			return err
		}
		defer os.RemoveAll(dirs[i].path)
	}

	// The unmutated rules must pass every test file; their times order the
	// files so that a mutant meets the cheapest file first.
	if err := dirs[0].order(rules); err != nil {
		return err
	}
	for _, d := range dirs[1:] {
		d.files = dirs[0].files
	}
	mutants := mutations(rules)
	if len(mutants) == 0 {
		return fmt.Errorf("%s: no alert to mutate", rulesPath)
	}

	// A mutant is killed by the first test file that fails; the others are
	// not run. Which file kills it does not matter, only that one does.
	survived := make([]bool, len(mutants))
	errs := make([]error, len(mutants))
	next := make(chan int)
	var wg sync.WaitGroup
	for _, d := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				survived[i], errs[i] = d.survives(mutants[i].content)
			}
		}()
	}
	for i := range mutants {
		next <- i
	}
	close(next)
	wg.Wait()

	var survivors []string
	for i, m := range mutants {
		switch {
		case errs[i] != nil:
			return fmt.Errorf("mutant %s: %w", m.desc, errs[i])
		case survived[i]:
			survivors = append(survivors, m.desc)
			fmt.Printf("SURVIVED %s\n", m.desc)
		case verbose:
			fmt.Printf("killed   %s\n", m.desc)
		}
	}
	fmt.Printf("%d of %d mutants killed\n", len(mutants)-len(survivors), len(mutants))
	if len(survivors) > 0 {
		return fmt.Errorf("%d mutants survived %s", len(survivors), strings.Join(testPaths, " "))
	}
	return nil
}

// workDir is one worker's copy of the rules and their test files.
type workDir struct {
	promtool string
	path     string
	rules    string   // the rules file that each mutant overwrites
	files    []string // the test files' copies, cheapest first
}

func newWorkDir(promtool, rulesPath string, testPaths []string, tests [][]byte) (*workDir, error) {
	dir, err := os.MkdirTemp("", "rules-mutate-")
	if err != nil {
		return nil, err
	}
	d := &workDir{promtool: promtool, path: dir, rules: filepath.Join(dir, filepath.Base(rulesPath))}
	for i, p := range testPaths {
		dst := filepath.Join(dir, filepath.Base(p))
		if err := os.WriteFile(dst, tests[i], 0o644); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		d.files = append(d.files, filepath.Base(p))
	}
	return d, nil
}

// order checks that rules pass every test file and sorts the files by the
// time each took.
func (d *workDir) order(rules []byte) error {
	if err := d.write(rules); err != nil {
		return err
	}
	took := map[string]time.Duration{}
	for _, f := range d.files {
		start := time.Now()
		passed, out, err := d.test(f)
		if err != nil || !passed {
			return fmt.Errorf("the unmutated rules do not pass %s (%v):\n%s", f, err, out)
		}
		took[f] = time.Since(start)
	}
	slices.SortStableFunc(d.files, func(a, b string) int { return cmp.Compare(took[a], took[b]) })
	return nil
}

// survives reports whether the rules in content pass every test file.
func (d *workDir) survives(content []byte) (bool, error) {
	if err := d.write(content); err != nil {
		return false, err
	}
	for _, f := range d.files {
		passed, out, err := d.test(f)
		if err != nil {
			return false, fmt.Errorf("%w\n%s", err, out)
		}
		if !passed {
			return false, nil
		}
	}
	return true, nil
}

// write replaces the rules file and checks that promtool reads it.
func (d *workDir) write(content []byte) error {
	if err := os.WriteFile(d.rules, content, 0o644); err != nil {
		return err
	}
	if out, err := exec.Command(d.promtool, "check", "rules", d.rules).CombinedOutput(); err != nil {
		return fmt.Errorf("promtool check rules: %w\n%s", err, out)
	}
	return nil
}

// test runs promtool test rules on one test file; a failing test is
// passed == false with a nil error.
func (d *workDir) test(file string) (passed bool, out []byte, err error) {
	out, err = exec.Command(d.promtool, "test", "rules", filepath.Join(d.path, file)).CombinedOutput()
	if _, ok := err.(*exec.ExitError); ok {
		return false, out, nil
	}
	return err == nil, out, err
}

type mutant struct {
	desc    string
	content []byte
}

var (
	alertLine = regexp.MustCompile(`^(\s*)- alert:\s*(\S+)`)
	ruleStart = regexp.MustCompile(`^\s*- (alert|record|name):`)
	forLine   = regexp.MustCompile(`^(\s*for:\s*)(\S+)\s*$`)
	exprLine  = regexp.MustCompile(`^(\s*)expr:\s*(.*)$`)

	threshold = regexp.MustCompile(`(>=|<=|>|<)\s*(?:bool\s+)?([0-9]+(?:\.[0-9]+)?)\b`)
	greater   = regexp.MustCompile(`>`)
	window    = regexp.MustCompile(`\[([0-9][0-9smhdwy]*)(?::[0-9smhdwy]*)?\]`)
	offset    = regexp.MustCompile(`\boffset\s+([0-9][0-9smhdwy]*)`)
)

// site is one place a mutation can be applied: the byte range
// [start, end) of line, replaced by repl.
type site struct {
	line, start, end int
	repl, desc       string
}

// mutations finds every alert of the rules file and returns a mutant for
// each site of each of them.
func mutations(rules []byte) []mutant {
	lines := strings.Split(string(rules), "\n")
	var sites []site
	for i := 0; i < len(lines); i++ {
		m := alertLine.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		name := m[2]
		end := i + 1
		for end < len(lines) && !ruleStart.MatchString(lines[end]) && !strings.HasPrefix(strings.TrimSpace(lines[end]), "# ") {
			end++
		}
		for j := i + 1; j < end; j++ {
			if fm := forLine.FindStringSubmatchIndex(lines[j]); fm != nil {
				if d, err := parseDuration(lines[j][fm[4]:fm[5]]); err == nil {
					sites = append(sites, site{j, fm[4], fm[5], formatDuration(d * 3 / 2), fmt.Sprintf("%s: for %s lengthened by half", name, lines[j][fm[4]:fm[5]])})
				}
			}
			em := exprLine.FindStringSubmatchIndex(lines[j])
			if em == nil {
				continue
			}
			exprLines := []int{j}
			if strings.TrimSpace(lines[j][em[4]:em[5]]) == "|" {
				exprLines = nil
				indent := em[3] - em[2]
				for k := j + 1; k < end && (strings.TrimSpace(lines[k]) == "" || leading(lines[k]) > indent); k++ {
					exprLines = append(exprLines, k)
				}
			}
			for _, k := range exprLines {
				sites = append(sites, exprSites(name, k, lines[k])...)
			}
		}
		i = end - 1
	}
	out := make([]mutant, 0, len(sites))
	for _, s := range sites {
		changed := make([]string, len(lines))
		copy(changed, lines)
		l := changed[s.line]
		changed[s.line] = l[:s.start] + s.repl + l[s.end:]
		out = append(out, mutant{desc: s.desc, content: []byte(strings.Join(changed, "\n"))})
	}
	return out
}

// exprSites returns the mutation sites of one line of an alert's expr.
func exprSites(name string, k int, line string) []site {
	code := line
	if i := strings.Index(code, "#"); i >= 0 {
		code = code[:i]
	}
	var out []site
	for _, m := range threshold.FindAllStringSubmatchIndex(code, -1) {
		v, err := strconv.ParseFloat(code[m[4]:m[5]], 64)
		if err != nil || v == 0 {
			continue
		}
		out = append(out, site{k, m[4], m[5], strconv.FormatFloat(v*1.5, 'g', -1, 64),
			fmt.Sprintf("%s: threshold %s %s raised by half", name, code[m[2]:m[3]], code[m[4]:m[5]])})
	}
	for _, m := range greater.FindAllStringIndex(code, -1) {
		if m[1] < len(code) && code[m[1]] == '=' {
			continue
		}
		out = append(out, site{k, m[0], m[1], ">=", fmt.Sprintf("%s: > made >= in %q", name, strings.TrimSpace(code))})
	}
	for _, re := range []*regexp.Regexp{window, offset} {
		for _, m := range re.FindAllStringSubmatchIndex(code, -1) {
			d, err := parseDuration(code[m[2]:m[3]])
			if err != nil {
				continue
			}
			out = append(out, site{k, m[2], m[3], formatDuration(d / 2),
				fmt.Sprintf("%s: %s halved in %q", name, code[m[0]:m[1]], strings.TrimSpace(code))})
		}
	}
	return out
}

func leading(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }

// parseDuration reads a Prometheus duration (time.ParseDuration plus d, w
// and y).
func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i == len(s) {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		n, _ := strconv.Atoi(s[:i])
		j := i
		for j < len(s) && (s[j] < '0' || s[j] > '9') {
			j++
		}
		unit := map[string]time.Duration{
			"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour,
			"d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "y": 365 * 24 * time.Hour,
		}[s[i:j]]
		if unit == 0 {
			return 0, fmt.Errorf("bad unit in %q", s)
		}
		total += time.Duration(n) * unit
		s = s[j:]
	}
	return total, nil
}

// formatDuration writes d in whole seconds (milliseconds if it has any),
// which every Prometheus version parses.
func formatDuration(d time.Duration) string {
	if d%time.Second != 0 {
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}
