package prometheus

import "time"

// WithReadHeaderTimeout shortens the built-in server's header timeout so
// that the slowloris test runs in about a second. Tests only.
func WithReadHeaderTimeout(d time.Duration) Option {
	return optionFunc(func(c config) config {
		c.readHeaderTimeout = d
		return c
	})
}
