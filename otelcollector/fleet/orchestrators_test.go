package fleet

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Every series is in exactly one group of daemons, whether its instance
// was listed, was not, or is not set: the matchers are read as an engine
// reads them (=~ and !~ anchored at both ends, a missing label as "").
func TestGroupMatchers(t *testing.T) {
	listed := []string{"daemon-0", "daemon-1", "10.0.0.7:9464", "a|b", "x.*", `we"ird\`, "daemon-10"}
	probes := append([]string{"", "daemon-2", "daemon-00", "a", "b", "xyz", "daemon-1 "}, listed...)
	for n := 2; n <= 5; n++ {
		ms := groupMatchers(listed, n)
		if len(ms) != n {
			t.Fatalf("n=%d: %d groups", n, len(ms))
		}
		for _, v := range probes {
			in := 0
			for _, m := range ms {
				if matches(t, m[0], v) {
					in++
				}
			}
			if in != 1 {
				t.Errorf("n=%d: instance %q is in %d groups of %q", n, v, in, ms)
			}
		}
	}
}

// matches evaluates one instance=~ or instance!~ matcher on v.
func matches(t *testing.T, m, v string) bool {
	t.Helper()
	neg := strings.HasPrefix(m, "instance!~")
	lit := strings.TrimPrefix(strings.TrimPrefix(m, "instance!~"), "instance=~")
	pat, err := strconv.Unquote(lit)
	if err != nil {
		t.Fatalf("matcher %s: %v", m, err)
	}
	re := regexp.MustCompile(fmt.Sprintf("^(?:%s)$", pat))
	return re.MatchString(v) != neg
}
