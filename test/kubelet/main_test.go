// Package kubelet is the conformance suite: it drives the built flexblock
// driver through kubelet's own FlexVolume code (k8s.io/kubernetes
// pkg/volume/flexvolume: the dynamic prober, the driver-call parser, the
// option and secret handling, the attacher, mounter and unmounter), with
// the real exec, a fake volume host whose mounter is the real one, and a
// fake clientset holding the Secrets. See README.md.
package kubelet

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"k8s.io/klog/v2"
)

// Outcomes of the scenarios, counted for the closing "N passed, N failed".
var (
	resultsMu sync.Mutex
	results   = map[string]string{}
)

// scenario marks t as one conformance scenario. Call it first in the test:
// its cleanup runs last, after every other cleanup of the test, so a leak
// found by those still fails the scenario.
func scenario(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		outcome := "passed"
		switch {
		case t.Failed():
			outcome = "failed"
		case t.Skipped():
			outcome = "skipped"
		}
		resultsMu.Lock()
		results[t.Name()] = outcome
		resultsMu.Unlock()
	})
}

func TestMain(m *testing.M) {
	// kubelet's code logs through klog; keep its warnings and errors on
	// stderr (they explain a failure) and allow -v=N for more.
	klog.InitFlags(nil)
	code := m.Run()
	cleanupSuite()

	var passed, failed, skipped int
	var names []string
	for n := range results {
		names = append(names, n)
	}
	sort.Strings(names)
	var lines []string
	for _, n := range names {
		switch results[n] {
		case "passed":
			passed++
		case "failed":
			failed++
		default:
			skipped++
		}
		lines = append(lines, fmt.Sprintf("  %-7s %s", results[n], n))
	}
	if len(lines) > 0 {
		fmt.Printf("kubelet conformance (backend %s, k8s.io/kubernetes %s):\n%s\n", suiteBackend(), kubeletRelease, strings.Join(lines, "\n"))
	}
	summary := fmt.Sprintf("conformance: %d passed, %d failed", passed, failed)
	if skipped > 0 {
		summary += fmt.Sprintf(", %d skipped", skipped)
	}
	fmt.Println(summary)
	if code == 0 && failed > 0 {
		code = 1
	}
	os.Exit(code)
}

// suiteBackend is the backend under test, for the summary.
func suiteBackend() string {
	if b := os.Getenv(envBackend); b != "" {
		return b
	}
	return "loop"
}
