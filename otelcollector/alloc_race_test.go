//go:build race

package otelcollector_test

// raceDetector is true when the tests run with -race, which makes
// allocation counts meaningless.
const raceDetector = true
