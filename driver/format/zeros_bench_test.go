package format

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// BenchmarkCheckZeros measures the zero probe on a sparse loop device of
// 1 GiB and of 1 TiB (first mount's extra reads; issue 13 point 4):
// go test -run '^$' -bench CheckZeros ./driver/format (root, losetup).
func BenchmarkCheckZeros(b *testing.B) {
	for _, c := range []struct {
		name string
		size int64
	}{{"1GiB", 1 << 30}, {"1TiB", 1 << 40}} {
		b.Run(c.name, func(b *testing.B) {
			dev := sparseLoop(b, c.size)
			b.ResetTimer()
			for b.Loop() {
				if err := CheckZeros(dev); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(probeRegions(c.size))), "regions")
		})
		// The two ends alone: what the read check cost before the probe.
		b.Run(c.name+"-ends-only", func(b *testing.B) {
			dev := sparseLoop(b, c.size)
			for b.Loop() {
				fd, err := os.Open(dev)
				if err != nil {
					b.Fatal(err)
				}
				if err := readRegions(fd, probeRegions(c.size)[:2]); err != nil {
					b.Fatal(err)
				}
				fd.Close()
			}
		})
	}
}

// sparseLoop attaches a sparse image on disk (as the benchmarks of
// BENCHMARKS.md use) to a loop device, detached at cleanup.
func sparseLoop(b *testing.B, size int64) string {
	if os.Geteuid() != 0 {
		b.Skip("needs root to attach a loop device")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		b.Skip("losetup not installed")
	}
	dir, err := os.MkdirTemp("/var/tmp", "zeros-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	img := dir + "/img"
	if err := writeSparse(img, size); err != nil {
		b.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).Output()
	if err != nil {
		b.Fatal(err)
	}
	dev := strings.TrimSpace(string(out))
	b.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	return dev
}
