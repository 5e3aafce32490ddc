package flexvol

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"
)

// Handle dispatches one call and always returns a Result: a panic anywhere
// below becomes a Failure instead of a stack trace on kubelet's pipe.
func Handle(ctx context.Context, l Lifecycle, args []string, onPanic func(v any, stack []byte)) (r Result) {
	defer func() {
		if v := recover(); v != nil {
			if onPanic != nil {
				onPanic(v, debug.Stack())
			}
			r = Failuref("internal error in flexblock (%v); details are in the driver log", v)
		}
	}()
	return Dispatch(ctx, l, args)
}

// Write writes r as exactly one JSON object and a newline.
func Write(w io.Writer, r Result) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "<podVolumeDir>" readable in kubelet's events
	if err := enc.Encode(r); err != nil {
		buf.Reset()
		fmt.Fprintf(&buf, "{\"status\":%q,\"message\":\"cannot encode answer\"}\n", StatusFailure)
	}
	_, err := w.Write(buf.Bytes())
	return err
}
