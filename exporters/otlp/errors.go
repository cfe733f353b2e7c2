package otlp

import "errors"

// ErrInvalidOption: New was given an option (or an environment variable
// this package reads) that it cannot honour.
var ErrInvalidOption = errors.New("exporters/otlp: invalid option")
