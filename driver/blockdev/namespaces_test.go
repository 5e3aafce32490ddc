package blockdev

import (
	"os"
	"testing"
)

// BenchmarkForeignMounts is what reading every other mount namespace's
// table costs Free (once per first mount) on this machine.
func BenchmarkForeignMounts(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("reading other processes' namespaces needs root")
	}
	k := Kernel{}
	for b.Loop() {
		if _, err := k.foreignMounts(Dev{}); err != nil {
			b.Fatal(err)
		}
	}
}

// A mount table that is a plain file (tests, tools) has no other
// namespaces; this process's and PID 1's do.
func TestProcOf(t *testing.T) {
	for in, want := range map[string]string{"": "/proc/self/ns/mnt", "/proc/1/mountinfo": "/proc/1/ns/mnt",
		"/proc/self/mountinfo": "/proc/self/ns/mnt", "/tmp/mountinfo": "", "/proc/1/../2/mountinfo": ""} {
		if _, got := (Kernel{MountInfo: in}).procOf(); got != want {
			t.Errorf("procOf(%q) = %q, want %q", in, got, want)
		}
	}
}
