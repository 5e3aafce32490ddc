// Package errkind names the kinds of failure the lifecycle and its
// collaborators report, so callers decide with errors.Is instead of
// reading messages. A marked error keeps its own message (the one the user
// sees in the pod's event); the kind only adds what it is.
package errkind

import (
	"errors"
	"fmt"
)

// Kind is one kind of failure. Kinds are compared by identity.
type Kind struct{ name string }

func (k *Kind) Error() string { return k.name }

// The kinds. Each error a lifecycle call returns should carry one.
var (
	// Invalid: the caller's input (options, paths, arguments) is wrong.
	Invalid = &Kind{"invalid input"}
	// NotFound: the storage, device or record named does not exist.
	NotFound = &Kind{"not found"}
	// Busy: another call or another user holds it; retrying later may work.
	Busy = &Kind{"busy"}
	// NotBlank: a device holds data (or might) and will not be formatted.
	NotBlank = &Kind{"refused: not blank"}
	// Mismatch: what is there is not what the call describes (another
	// volume, another filesystem, another cluster, a foreign mount).
	Mismatch = &Kind{"mismatch"}
	// Denied: the caller's credentials do not open the storage.
	Denied = &Kind{"denied"}
	// Timeout: a bounded wait or tool ran out of time.
	Timeout = &Kind{"timed out"}
	// Unsafe: a path or record would lead outside what flexblock owns.
	Unsafe = &Kind{"unsafe"}
	// Unsupported: the call does not apply to this driver's mode.
	Unsupported = &Kind{"not supported"}
)

type marked struct {
	kind *Kind
	err  error
}

func (m *marked) Error() string   { return m.err.Error() }
func (m *marked) Unwrap() []error { return []error{m.err, m.kind} }

// Mark returns err carrying kind as well; nil stays nil.
func Mark(kind *Kind, err error) error {
	if err == nil {
		return nil
	}
	return &marked{kind: kind, err: err}
}

// Errorf formats an error of the given kind (%w works as in fmt.Errorf).
func Errorf(kind *Kind, format string, a ...any) error {
	return Mark(kind, fmt.Errorf(format, a...))
}

// all lists the kinds Of looks for, most specific first.
var all = []*Kind{Unsupported, Invalid, Unsafe, Denied, NotBlank, Mismatch, NotFound, Timeout, Busy}

// Of returns the kind err carries, or nil.
func Of(err error) *Kind {
	for _, k := range all {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}
