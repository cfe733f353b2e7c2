package prometheus

import "errors"

var (
	// ErrInvalidOption: New was given an option it cannot honour, or an
	// option that needs another one (WithPath and WithTLS need WithServer).
	ErrInvalidOption = errors.New("exporters/prometheus: invalid option")
	// ErrRegistryConflict: the registry already holds a series name the
	// exporter serves, typically a second exporter on the same registry or
	// an application metric of the same name.
	ErrRegistryConflict = errors.New("exporters/prometheus: registry conflict")
)
