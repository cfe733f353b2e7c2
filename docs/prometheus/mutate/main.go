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
// (make rules-mutate). A mutant is killed when any of the test files fails.
// To be quick without changing that verdict, each mutant meets the test
// files one at a time, in the order given, and the rest are not run once
// one fails; and of each file it runs only the test items that name its
// alert or read ALERTS (an item that cannot see the alert passes as it did
// on the unmutated rules). Mutants run on one worker per CPU.
//
// PROMTOOL_BIN overrides the promtool found on PATH.
package main

import (
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
	// The unmutated rules must pass every test file, whole.
	if err := dirs[0].write(rules); err != nil {
		return err
	}
	for i, f := range dirs[0].files {
		if passed, out, err := dirs[0].test(f.name, tests[i]); err != nil || !passed {
			return fmt.Errorf("the unmutated rules do not pass %s (%v):\n%s", testPaths[i], err, out)
		}
	}
	mutants := mutations(rules)
	if len(mutants) == 0 {
		return fmt.Errorf("%s: no alert to mutate", rulesPath)
	}

	// A mutant is killed by the first test file that fails; the others are
	// not run. Which file kills it does not matter, only that one does.
	killer := make([]string, len(mutants)) // the test file that killed it; "" if it survived
	errs := make([]error, len(mutants))
	next := make(chan int)
	var wg sync.WaitGroup
	for _, d := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				killer[i], errs[i] = d.killer(mutants[i])
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
		case killer[i] == "":
			survivors = append(survivors, m.desc)
			fmt.Printf("SURVIVED %s\n", m.desc)
		case verbose:
			fmt.Printf("killed   %s (by %s)\n", m.desc, killer[i])
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
	rules    string // the rules file that each mutant overwrites
	files    []testFile
}

// testFile is one test file, split so that a mutant of one alert runs only
// the test items that can see that alert.
type testFile struct {
	name  string // base name, as the copy in each work directory
	whole []byte
	split *splitTests // nil when the file's layout is not the one split understands
}

func newWorkDir(promtool, rulesPath string, testPaths []string, tests [][]byte) (*workDir, error) {
	dir, err := os.MkdirTemp("", "rules-mutate-")
	if err != nil {
		return nil, err
	}
	d := &workDir{promtool: promtool, path: dir, rules: filepath.Join(dir, filepath.Base(rulesPath))}
	for i, p := range testPaths {
		d.files = append(d.files, testFile{name: filepath.Base(p), whole: tests[i], split: split(tests[i])})
	}
	return d, nil
}

// killer returns the first test file that the mutant fails, or "" if it
// passes every one (it survived). The files are tried in the order given.
func (d *workDir) killer(m mutant) (string, error) {
	if err := d.write(m.content); err != nil {
		return "", err
	}
	for _, f := range d.files {
		content := f.whole
		if f.split != nil {
			if content = f.split.forAlert(m.alert); content == nil {
				continue // no item of this file can see the alert
			}
		}
		passed, out, err := d.test(f.name, content)
		if err != nil {
			return "", fmt.Errorf("%w\n%s", err, out)
		}
		if !passed {
			return f.name, nil
		}
	}
	return "", nil
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

// splitTests is a promtool test file cut into the part before its test
// items (rule_files, evaluation_interval, group_eval_order, ending with
// the tests: line) and the items themselves.
type splitTests struct {
	header string
	items  []string
}

var (
	testsLine = regexp.MustCompile(`^tests:\s*$`)
	itemLine  = regexp.MustCompile(`^(\s+)- `)
)

// split cuts a test file whose last top-level key is tests:, or returns nil
// (the file is then always run whole).
func split(content []byte) *splitTests {
	lines := strings.SplitAfter(string(content), "\n")
	at := slices.IndexFunc(lines, func(l string) bool { return testsLine.MatchString(l) })
	if at < 0 {
		return nil
	}
	st := &splitTests{header: strings.Join(lines[:at+1], "")}
	indent := ""
	var cur strings.Builder
	for _, l := range lines[at+1:] {
		trimmed := strings.TrimSpace(l)
		if trimmed != "" && !strings.HasPrefix(trimmed, "#") && l[0] != ' ' {
			return nil // another top-level key after tests:
		}
		if m := itemLine.FindStringSubmatch(l); m != nil && (indent == "" || m[1] == indent) {
			indent = m[1]
			if cur.Len() > 0 {
				st.items = append(st.items, cur.String())
				cur.Reset()
			}
		}
		if indent != "" {
			cur.WriteString(l)
		}
	}
	if cur.Len() > 0 {
		st.items = append(st.items, cur.String())
	}
	if len(st.items) == 0 {
		return nil
	}
	return st
}

// forAlert returns the test file with only the items that name alert or
// read ALERTS, or nil if there is none. A mutant changes only its own
// alert, so every other item gives what it gave on the unmutated rules:
// it passes, and leaving it out changes no verdict.
func (st *splitTests) forAlert(alert string) []byte {
	word := regexp.MustCompile(`\b` + regexp.QuoteMeta(alert) + `\b|\bALERTS\b`)
	var b strings.Builder
	for _, it := range st.items {
		if word.MatchString(it) {
			if b.Len() == 0 {
				b.WriteString(st.header)
			}
			b.WriteString(it)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return []byte(b.String())
}

// test writes content as the test file named file and runs promtool test
// rules on it; a failing test is passed == false with a nil error.
func (d *workDir) test(file string, content []byte) (passed bool, out []byte, err error) {
	path := filepath.Join(d.path, file)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		return false, nil, err
	}
	out, err = exec.Command(d.promtool, "test", "rules", path).CombinedOutput()
	if _, ok := err.(*exec.ExitError); ok {
		return false, out, nil
	}
	return err == nil, out, err
}

type mutant struct {
	alert   string // the alert it changes
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
	line, start, end  int
	repl, desc, alert string
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
					sites = append(sites, site{j, fm[4], fm[5], formatDuration(d * 3 / 2), fmt.Sprintf("%s: for %s lengthened by half", name, lines[j][fm[4]:fm[5]]), name})
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
		out = append(out, mutant{alert: s.alert, desc: s.desc, content: []byte(strings.Join(changed, "\n"))})
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
			fmt.Sprintf("%s: threshold %s %s raised by half", name, code[m[2]:m[3]], code[m[4]:m[5]]), name})
	}
	for _, m := range greater.FindAllStringIndex(code, -1) {
		if m[1] < len(code) && code[m[1]] == '=' {
			continue
		}
		out = append(out, site{k, m[0], m[1], ">=", fmt.Sprintf("%s: > made >= in %q", name, strings.TrimSpace(code)), name})
	}
	for _, re := range []*regexp.Regexp{window, offset} {
		for _, m := range re.FindAllStringSubmatchIndex(code, -1) {
			d, err := parseDuration(code[m[2]:m[3]])
			if err != nil {
				continue
			}
			out = append(out, site{k, m[2], m[3], formatDuration(d / 2),
				fmt.Sprintf("%s: %s halved in %q", name, code[m[0]:m[1]], strings.TrimSpace(code)), name})
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
