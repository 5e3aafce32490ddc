package bench_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	fb "github.com/flexblock/flexblock/bench/internal/flexbench"
)

// TestMain moves a benchmark run into a private mount namespace (mounts
// made by the benchmarks vanish with it). Plain `go test` (no -bench) runs
// the few tests here without root.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" && os.Geteuid() == 0 {
		if err := fb.EnterPrivateMountNS(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if work != "" {
		os.RemoveAll(work)
	}
	os.Exit(code)
}

var (
	setupOnce sync.Once
	env       *fb.Env
	work      string
	setupErr  error
)

// setup builds the binaries once per test binary run.
func setup(b *testing.B) *fb.Env {
	b.Helper()
	if os.Geteuid() != 0 || !fb.InPrivateNS() {
		b.Skip("needs root (loop devices, mount namespaces)")
	}
	setupOnce.Do(func() {
		work, setupErr = os.MkdirTemp("/var/tmp", "flexbench-gotest-")
		if setupErr == nil {
			env, setupErr = fb.Setup(work)
		}
	})
	if setupErr != nil {
		b.Fatal(setupErr)
	}
	return env
}

func scratch(b *testing.B, e *fb.Env) string {
	b.Helper()
	dir, err := os.MkdirTemp(e.Work, "b-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { fb.UnmountUnder(dir); os.RemoveAll(dir) })
	return dir
}

func report(b *testing.B, s *fb.Series, unit string) {
	if s.Failure != "" {
		b.Fatalf("%s: %s", s.Name, s.Failure)
	}
	st := fb.Summarize(s.Wall)
	b.ReportMetric(st.Median, unit+"-median-ms")
	b.ReportMetric(st.P90, unit+"-p90-ms")
	if len(s.RSS) > 0 {
		b.ReportMetric(fb.Summarize(s.RSS).Max/1024, unit+"-peak-MiB")
	}
}

func noNsOp(b *testing.B) { b.ReportMetric(0, "ns/op") }

// BenchmarkInit: benchmark 1a. One iteration = one init of each candidate.
func BenchmarkInit(b *testing.B) {
	e := setup(b)
	b.ResetTimer()
	r, err := fb.Init(e, scratch(b, e), b.N)
	if err != nil {
		b.Fatal(err)
	}
	noNsOp(b)
	report(b, r.Floor, "floor")
	report(b, r.Ours, "flexblock")
	report(b, r.BaselineJQ, "bashjq")
	b.ReportMetric(float64(r.ProdSize)/(1<<20), "binary-MiB")
}

func cycle(b *testing.B, fn func(*fb.Env, string, int) (*fb.CycleResult, error)) {
	e := setup(b)
	b.ResetTimer()
	r, err := fn(e, scratch(b, e), b.N)
	if err != nil {
		b.Fatal(err)
	}
	noNsOp(b)
	report(b, r.OursMount, "mount")
	report(b, r.OursUnmount, "unmount")
	report(b, r.BaseMount, "bashjq-mount")
	for _, s := range []*fb.Series{r.OursMount, r.OursUnmount} {
		var own []float64
		for i := range s.Wall {
			own = append(own, s.Wall[i]-s.ToolMs[i])
		}
		b.ReportMetric(fb.Summarize(own).Median, s.Name[len("flexblock "):]+"-without-tools-ms")
	}
}

// BenchmarkNoopCycle: benchmark 1b (mount + unmount, no-op tools).
func BenchmarkNoopCycle(b *testing.B) { cycle(b, fb.NoopCycle) }

// BenchmarkRealCycle: benchmark 3 on the host (existing ext4, real tools).
func BenchmarkRealCycle(b *testing.B) { cycle(b, fb.RealCycle) }

// BenchmarkFirstMount: benchmark 2; -short keeps 1 GiB only.
func BenchmarkFirstMount(b *testing.B) {
	sizes := []int64{fb.GiB, 100 * fb.GiB, fb.TiB}
	if testing.Short() {
		sizes = sizes[:1]
	}
	for _, fs := range []string{"ext4", "xfs"} {
		for _, size := range sizes {
			for _, way := range []string{"flexblock", "plain"} {
				b.Run(fmt.Sprintf("%s/%s/%s", fs, fb.SizeName(size), way), func(b *testing.B) {
					e := setup(b)
					dir := scratch(b, e)
					reps := func(int64) (int, int) { return b.N, 0 }
					if way == "plain" {
						reps = func(int64) (int, int) { return 0, b.N }
					}
					b.ResetTimer()
					rows, err := fb.FirstMount(e, dir, fb.FirstMountOpts{Storage: "disk", ImageDir: dir, FSTypes: []string{fs}, Sizes: []int64{size}, Reps: reps})
					if err != nil {
						b.Fatal(err)
					}
					noNsOp(b)
					s, mkfs := rows[0].Ours, rows[0].OursMkfs
					if way == "plain" {
						s, mkfs = rows[0].Plain, rows[0].PlainMkfs
					}
					report(b, s, "first-mount")
					b.ReportMetric(fb.Summarize(mkfs).Median, "mkfs-median-ms")
				})
			}
		}
	}
}

// BenchmarkRefcount: benchmark 4; -short uses 1000 instead of 10000.
func BenchmarkRefcount(b *testing.B) {
	counts := []int{100, 10000}
	if testing.Short() {
		counts = []int{100, 1000}
	}
	for _, n := range counts {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			e := setup(b)
			b.ResetTimer()
			rows, err := fb.Refcount(e, scratch(b, e), fb.RefcountOpts{Counts: []int{n}, N: b.N})
			if err != nil {
				b.Fatal(err)
			}
			noNsOp(b)
			report(b, rows[0].Unmount, "unmount")
			report(b, rows[0].Mount, "mount")
		})
	}
}

// BenchmarkConcurrency: benchmark 5; -short uses 8 volumes and 4 pods.
func BenchmarkConcurrency(b *testing.B) {
	vols, pods := 64, 8
	if testing.Short() {
		vols, pods = 8, 4
	}
	e := setup(b)
	dir := scratch(b, e)
	b.ResetTimer()
	r, err := fb.Concurrency(e, dir, dir, vols, pods, b.N, nil)
	if err != nil {
		b.Fatal(err)
	}
	noNsOp(b)
	b.ReportMetric(r.ConcMount.TotalMs, "mount-total-ms")
	b.ReportMetric(r.ConcMount.Slowest(), "mount-slowest-ms")
	b.ReportMetric(r.ConcUnmount.TotalMs, "unmount-total-ms")
	b.ReportMetric(r.ConcUnmount.Slowest(), "unmount-slowest-ms")
}

// TestLogReader checks the split of a call into tool time and own time.
func TestLogReader(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	lines := `{"msg":"exec","pid":7,"tool":"blkid","ms":1.5,"exit":0}
{"msg":"exec","pid":8,"tool":"mount","ms":4,"exit":0}
{"msg":"exec","pid":7,"tool":"mount","ms":2.5,"exit":0}
{"msg":"call done","pid":7,"call":"mount","status":"Success","ms":10}
{"msg":"call done","pid":8,"call":"unmount","status":"Success","ms":5}
{"msg":"exec","pid":9,"tool":"umount"`
	if err := os.WriteFile(log, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &fb.LogReader{Path: log}
	calls, err := r.Next()
	if err != nil || len(calls) != 2 {
		t.Fatalf("%d calls, %v", len(calls), err)
	}
	if c := calls[0]; c.Call != "mount" || c.ToolMs != 4 || c.OwnMs() != 6 || len(c.Tools) != 2 {
		t.Fatalf("first call: %+v", c)
	}
	if c := calls[1]; c.Call != "unmount" || c.OwnMs() != 1 {
		t.Fatalf("second call: %+v", c)
	}
	if more, _ := r.Next(); len(more) != 0 {
		t.Fatalf("a partial line was read as a call: %+v", more)
	}
}

// TestStats checks the nearest-rank percentiles.
func TestStats(t *testing.T) {
	s := fb.Summarize([]float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10})
	if s.Median != 5 || s.P90 != 9 || s.Min != 1 || s.Max != 10 || s.N != 10 {
		t.Fatalf("%+v", s)
	}
}
