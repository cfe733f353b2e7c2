// Package validate checks label and measurement values before they reach
// the OTel SDK. Every check returns a Reason rather than an error so that the
// success path neither allocates nor formats; callers build the error (and
// count the rejection) only when a check fails.
package validate

import (
	"math"
	"unicode/utf8"
)

// MaxLabelBytes is the longest label value accepted, in bytes. Longer values
// are almost always a bug (a prompt or a stack trace passed as a label) and
// would bloat every scrape.
const MaxLabelBytes = 256

// Reason says why a record was rejected. The zero value, OK, means accepted.
type Reason uint8

// Reasons, in the order they are reported. String gives the label value of
// orchestrator_collector_rejected_total{reason}.
const (
	OK Reason = iota
	EmptyLabel
	LabelTooLong
	InvalidUTF8
	NegativeValue
	NonFiniteValue
	OutOfRange
	UnknownStatus
	Closed
	// ValueOverflow: the value would take a counter series, or a sum of
	// values, past the largest int64.
	ValueOverflow
	numReasons
)

// NumReasons is the number of rejection reasons, OK excluded.
const NumReasons = int(numReasons) - 1

var reasonNames = [...]string{
	OK:             "ok",
	EmptyLabel:     "empty_label",
	LabelTooLong:   "label_too_long",
	InvalidUTF8:    "invalid_utf8",
	NegativeValue:  "negative_value",
	NonFiniteValue: "non_finite_value",
	OutOfRange:     "out_of_range",
	UnknownStatus:  "unknown_status",
	Closed:         "closed",
	ValueOverflow:  "value_overflow",
}

// String returns the snake_case name of r.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons returns every rejection reason, OK excluded.
func Reasons() []Reason {
	rs := make([]Reason, 0, NumReasons)
	for r := EmptyLabel; r < numReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// Label checks one label value: non-empty, at most MaxLabelBytes, valid UTF-8.
func Label(v string) Reason {
	switch {
	case v == "":
		return EmptyLabel
	case len(v) > MaxLabelBytes:
		return LabelTooLong
	case !utf8.ValidString(v):
		return InvalidUTF8
	}
	return OK
}

// NonNegativeInt rejects negative counts.
func NonNegativeInt(n int64) Reason {
	if n < 0 {
		return NegativeValue
	}
	return OK
}

// NonNegativeFloat rejects NaN, ±Inf and negative values.
func NonNegativeFloat(f float64) Reason {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return NonFiniteValue
	case f < 0:
		return NegativeValue
	}
	return OK
}

// UnitInterval accepts finite values in [0, 1].
func UnitInterval(f float64) Reason {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return NonFiniteValue
	case f < 0 || f > 1:
		return OutOfRange
	}
	return OK
}
