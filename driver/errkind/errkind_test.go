package errkind

import (
	"errors"
	"fmt"
	"testing"
)

func TestMarkKeepsMessageAndAddsKind(t *testing.T) {
	base := errors.New("volume kube/img is in use on node-b")
	err := fmt.Errorf("mount: %w", Mark(Busy, base))
	if err.Error() != "mount: volume kube/img is in use on node-b" {
		t.Fatalf("message changed: %q", err)
	}
	if !errors.Is(err, Busy) || !errors.Is(err, base) {
		t.Fatalf("kind or cause lost: %v", err)
	}
	if errors.Is(err, NotFound) {
		t.Fatal("carries a kind it was not given")
	}
	if Of(err) != Busy {
		t.Fatalf("Of = %v", Of(err))
	}
}

func TestNilAndUnmarked(t *testing.T) {
	if Mark(Busy, nil) != nil {
		t.Fatal("Mark(nil) is not nil")
	}
	if Of(errors.New("x")) != nil || Of(nil) != nil {
		t.Fatal("unmarked error has a kind")
	}
	e := Errorf(Timeout, "lock %s: %w", "a", errors.ErrUnsupported)
	if !errors.Is(e, Timeout) || !errors.Is(e, errors.ErrUnsupported) || e.Error() != "lock a: unsupported operation" {
		t.Fatalf("Errorf: %v", e)
	}
}
