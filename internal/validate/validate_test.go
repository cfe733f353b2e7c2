package validate

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestLabel(t *testing.T) {
	testCases := []struct {
		name string
		in   string
		want Reason
	}{
		{"plain", "orch-1", OK},
		{"unicode", "模型-ü", OK},
		{"max length", strings.Repeat("a", MaxLabelBytes), OK},
		{"empty", "", EmptyLabel},
		{"too long", strings.Repeat("a", MaxLabelBytes+1), LabelTooLong},
		{"invalid utf8", "a\xffb", InvalidUTF8},
		{"lone continuation byte", "\x80", InvalidUTF8},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Label(tc.in); got != tc.want {
				t.Fatalf("Label(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestValues(t *testing.T) {
	testCases := []struct {
		name string
		got  Reason
		want Reason
	}{
		{"int zero", NonNegativeInt(0), OK},
		{"int negative", NonNegativeInt(-1), NegativeValue},
		{"float zero", NonNegativeFloat(0), OK},
		{"float negative", NonNegativeFloat(-0.5), NegativeValue},
		{"float NaN", NonNegativeFloat(math.NaN()), NonFiniteValue},
		{"float +Inf", NonNegativeFloat(math.Inf(1)), NonFiniteValue},
		{"unit 0", UnitInterval(0), OK},
		{"unit 1", UnitInterval(1), OK},
		{"unit above", UnitInterval(1.0001), OutOfRange},
		{"unit below", UnitInterval(-0.1), OutOfRange},
		{"unit NaN", UnitInterval(math.NaN()), NonFiniteValue},
		{"unit -Inf", UnitInterval(math.Inf(-1)), NonFiniteValue},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}

func TestReasonsAreNamed(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Reasons() {
		s := r.String()
		if s == "" || s == "unknown" || s == "ok" || seen[s] {
			t.Fatalf("reason %d has bad or duplicate name %q", r, s)
		}
		seen[s] = true
	}
	if len(seen) != NumReasons {
		t.Fatalf("got %d reasons, want %d", len(seen), NumReasons)
	}
}

// FuzzLabel checks that Label never panics and accepts exactly the values
// that are non-empty, short enough and valid UTF-8.
func FuzzLabel(f *testing.F) {
	for _, s := range []string{"", "orch-1", "\xff", strings.Repeat("x", 257), "a\x00b", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := s != "" && len(s) <= MaxLabelBytes && utf8.ValidString(s)
		if got := Label(s) == OK; got != want {
			t.Fatalf("Label(%q) accepted=%v, want %v", s, got, want)
		}
	})
}

// FuzzFloat checks the float validators against their definitions.
func FuzzFloat(f *testing.F) {
	for _, v := range []float64{0, 1, -1, 0.5, 1.5, math.NaN(), math.Inf(1), math.Inf(-1), math.SmallestNonzeroFloat64} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		finite := !math.IsNaN(v) && !math.IsInf(v, 0)
		if got, want := NonNegativeFloat(v) == OK, finite && v >= 0; got != want {
			t.Fatalf("NonNegativeFloat(%v) accepted=%v, want %v", v, got, want)
		}
		if got, want := UnitInterval(v) == OK, finite && v >= 0 && v <= 1; got != want {
			t.Fatalf("UnitInterval(%v) accepted=%v, want %v", v, got, want)
		}
	})
}
