// Package wait is the driver's one way to pause: a sleep that ends early,
// with the context's error, when the call's deadline passes or it is
// cancelled, so no wait outlives the call's bound.
package wait

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx is done.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
