// Package depcheck holds only a test: it checks, with go list, which
// packages of this module link gRPC. gRPC must arrive with exporters/otlp
// alone, so that a program that only pulls with exporters/prometheus does
// not pay for it.
package depcheck
