// Package flexvol speaks the FlexVolume exec convention exactly as kubelet's
// code does: it checks kubelet's argv per call, decodes the options, calls a
// Driver, and writes exactly one JSON object, whatever happens.
package flexvol

import (
	"errors"
	"fmt"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/logging"
)

// Statuses.
const (
	StatusSuccess      = "Success"
	StatusFailure      = "Failure"
	StatusNotSupported = "Not supported"
)

// Capabilities are reported by init. All five are always sent: kubelet
// defaults a missing key to true.
type Capabilities struct {
	Attach           bool `json:"attach"`
	SELinuxRelabel   bool `json:"selinuxRelabel"`
	SupportsMetrics  bool `json:"supportsMetrics"`
	FSGroup          bool `json:"fsGroup"`
	RequiresFSResize bool `json:"requiresFSResize"`
}

// Result is the answer of one call.
type Result struct {
	Status       string        `json:"status"`
	Message      string        `json:"message,omitempty"`
	Device       string        `json:"device,omitempty"`
	Attached     *bool         `json:"attached,omitempty"`
	Capabilities *Capabilities `json:"capabilities,omitempty"`
}

// Success is a plain success.
func Success() Result { return Result{Status: StatusSuccess} }

// Failure is a failure with a message for kubelet's events.
func Failure(err error) Result {
	return Result{Status: StatusFailure, Message: err.Error()}
}

// Bounded is the answer as it may leave the process: its message masked
// (every secret the call saw) and then cut to head and tail, so a tool's
// flood of output never becomes a flood in the pod's events, and no cut
// can leave part of a secret behind (masking comes first).
func (r Result) Bounded(mask func(string) string) Result {
	r.Message = logging.Clip(mask(r.Message), logging.MaxAnswer)
	return r
}

// answer turns the lifecycle's error into kubelet's answer.
func answer(err error) Result {
	switch {
	case err == nil:
		return Success()
	case errors.Is(err, errkind.Unsupported):
		return Result{Status: StatusNotSupported, Message: err.Error()}
	}
	return Failure(err)
}

// Failuref formats a failure message.
func Failuref(format string, a ...any) Result {
	return Result{Status: StatusFailure, Message: fmt.Sprintf(format, a...)}
}

// NotSupported tells kubelet not to call this again until the next probe.
func NotSupported(call string) Result {
	return Result{Status: StatusNotSupported, Message: call + " is not supported by this driver"}
}
