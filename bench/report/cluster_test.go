package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testRun() *clusterRun {
	return &clusterRun{when: time.Unix(0, 0), seconds: 900, values: map[string][]float64{
		"emptydir_ms": {2000, 3000, 2500}, "rbd_ms": {9000, 8000, 10000}, "rbd_tool_ms": {4000, 4000, 4000},
		"iscsi_ms": {7000, 7000, 7000}, "iscsi_tool_ms": {3000, 3000, 3000},
		"batch_emptydir_ready_ms": {20000}, "batch_emptydir_delete_ms": {10000},
		"batch_rbd_ready_ms": {60000}, "batch_rbd_delete_ms": {40000},
	}}
}

func TestClusterBlockFigures(t *testing.T) {
	b := testRun().block()
	// RBD: median 9000 ms against 2500: 3.6x, 6500 added, 4000 tools, 2500 the rest.
	for _, want := range []string{"| 9000 | 3.60× | 6500 | 4000 | 2500 |", "| 7000 | 2.80× | 4500 | 3000 | 1500 |", "| 60000 | 3.00× | 40000 | 4.00× |"} {
		if !strings.Contains(b, want) {
			t.Errorf("block lacks %q:\n%s", want, b)
		}
	}
	if !strings.HasPrefix(b, clusterBegin) || !strings.HasSuffix(strings.TrimSpace(b), clusterEnd) {
		t.Errorf("block not between the markers")
	}
}

func TestSpliceReplacesOnlyTheClusterSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "B.md")
	old := "# head\n\n" + clusterBegin + "\nold figures\n" + clusterEnd + "\n## Reproduce\n\nx\n"
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := carriedBlock(path); !strings.Contains(got, "old figures") {
		t.Fatalf("carried %q", got)
	}
	if err := spliceCluster(path, clusterBegin+"\nnew figures\n"+clusterEnd+"\n"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := "# head\n\n" + clusterBegin + "\nnew figures\n" + clusterEnd + "\n## Reproduce\n\nx\n"
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// A report without the section gets it before Reproduce.
	if err := os.WriteFile(path, []byte("# head\n## Reproduce\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := spliceCluster(path, "BLOCK\n"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "# head\nBLOCK\n\n## Reproduce\n" {
		t.Fatalf("got %q", got)
	}
}
