package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/flexblock/flexblock/test/testkit"
)

// The cluster section sits between these markers, so that a run without
// -cluster carries the last measured one over and -cluster-only replaces
// just it (a cluster run takes its own ~15 minutes).
const (
	clusterBegin = "<!-- cluster benchmarks: begin -->"
	clusterEnd   = "<!-- cluster benchmarks: end -->"
)

// clusterRun is what scripts/cluster/bench.sh measured: each key's values
// in milliseconds, in the order they were taken.
type clusterRun struct {
	values  map[string][]float64
	seconds float64
	when    time.Time
}

// runCluster runs the cluster benchmark (it starts and stops the test
// cluster unless one is up) and reads its figures.
func runCluster(work string) (*clusterRun, error) {
	out := filepath.Join(work, "cluster-perf.env")
	cmd := exec.Command(filepath.Join(testkit.Root(), "scripts/cluster/bench.sh"), out)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("scripts/cluster/bench.sh: %w", err)
	}
	f, err := os.Open(out)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c := &clusterRun{values: map[string][]float64{}, seconds: time.Since(start).Seconds(), when: start}
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), "=")
		x, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("%s: bad line %q", out, s.Text())
		}
		c.values[k] = append(c.values[k], x)
	}
	for _, k := range []string{"emptydir_ms", "rbd_ms", "iscsi_ms", "batch_emptydir_ready_ms", "batch_rbd_ready_ms"} {
		if len(c.values[k]) == 0 {
			return nil, fmt.Errorf("%s: no %s", out, k)
		}
	}
	return c, s.Err()
}

// clusterBlock renders the section, markers included.
func (c *clusterRun) block() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	m := func(k string) float64 { return med(c.values[k]) }
	p("%s\n## 6. In a real cluster: pods through kubelet, the scheduler and the API server\n\n", clusterBegin)
	p("Measured by `make cluster-bench` (`scripts/cluster/bench.sh`, scenario `perf` of `scripts/cluster/scenarios.sh`) on %s, %.0f s with the cluster's start: the single-node test cluster of the README (control plane on this host, the node in the real-kernel VM under TCG, no KVM: every figure inside the node is several times a real node's; the ratios are what carries over). Times are from `kubectl apply` to the pod Ready (`kubectl wait`), as a user sees them; rounds interleave the three kinds.\n\n", c.when.UTC().Format("2006-01-02 15:04 UTC"), c.seconds)
	e := m("emptydir_ms")
	p("| pod create -> Ready (median of %d) | ms | vs the same pod with an emptyDir | added by the volume, ms | tools the driver logged (median), ms | added, less the tools (kubelet + flexblock), ms |\n|---|---|---|---|---|---|\n", len(c.values["emptydir_ms"]))
	p("| emptyDir | %s | 1.00 | | | |\n", ms(e))
	for _, row := range []struct{ key, name string }{
		{"rbd", "a new RBD image (1 GiB, created, mapped and formatted ext4 on first use)"},
		{"iscsi", "a blank iSCSI LUN (login, formatted xfs on first use)"},
	} {
		x, t := m(row.key+"_ms"), m(row.key+"_tool_ms")
		p("| %s | %s | %s | %s | %s | %s |\n", row.name, ms(x), ratio(x, e), ms(x-e), ms(t), ms(x-e-t))
	}
	p("\nThe tool times are the sum of the `exec` events' `ms` the driver logged during that pod's start (`rbd create`, `rbd map`, `blkid`, `mkfs`, `mount`, `iscsiadm`...); what the volume adds beyond them is the driver's own work, kubelet's volume manager (its reconciler loop, the flex prober, the fsGroup walk) and the pod's status round trip.\n\n")
	p("| 20 pods at once (one `kubectl apply`) | to the last Ready, ms | vs emptyDir | delete to the last gone, ms | vs emptyDir |\n|---|---|---|---|---|\n")
	be, bed := m("batch_emptydir_ready_ms"), m("batch_emptydir_delete_ms")
	br, brd := m("batch_rbd_ready_ms"), m("batch_rbd_delete_ms")
	p("| emptyDir | %s | 1.00 | %s | 1.00 |\n", ms(be), ms(bed))
	p("| 20 new RBD images (64 MiB each, created and formatted on first use) | %s | %s | %s | %s |\n\n", ms(br), ratio(br, be), ms(brd), ratio(brd, bed))
	p("%s\n", clusterEnd)
	return b.String()
}

// carriedBlock is the cluster section of the report at path (empty if none).
func carriedBlock(path string) string {
	old, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	s := string(old)
	i, j := strings.Index(s, clusterBegin), strings.Index(s, clusterEnd)
	if i < 0 || j < i {
		return ""
	}
	return s[i:j+len(clusterEnd)] + "\n"
}

// spliceCluster writes block into the report at path in place of its
// cluster section (before "## Reproduce" when it has none).
func spliceCluster(path, block string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(old)
	i, j := strings.Index(s, clusterBegin), strings.Index(s, clusterEnd)
	switch {
	case i >= 0 && j > i:
		s = s[:i] + block + strings.TrimPrefix(s[j+len(clusterEnd):], "\n")
	case strings.Contains(s, "## Reproduce"):
		k := strings.Index(s, "## Reproduce")
		s = s[:k] + block + "\n" + s[k:]
	default:
		s += "\n" + block
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
