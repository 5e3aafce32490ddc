package flexbench

import (
	"os"
	"path/filepath"
	"testing"
)

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
	r := &logReader{Path: log}
	calls, err := r.next()
	if err != nil || len(calls) != 2 {
		t.Fatalf("%d calls, %v", len(calls), err)
	}
	if c := calls[0]; c.Call != "mount" || c.ToolMs != 4 || c.ownMs() != 6 || len(c.Tools) != 2 {
		t.Fatalf("first call: %+v", c)
	}
	if c := calls[1]; c.Call != "unmount" || c.ownMs() != 1 {
		t.Fatalf("second call: %+v", c)
	}
	if more, _ := r.next(); len(more) != 0 {
		t.Fatalf("a partial line was read as a call: %+v", more)
	}
}

// TestStats checks the nearest-rank percentiles.
func TestStats(t *testing.T) {
	s := Summarize([]float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10})
	if s.Median != 5 || s.P90 != 9 || s.Min != 1 || s.Max != 10 || s.N != 10 {
		t.Fatalf("%+v", s)
	}
}

// TestVMParseLine checks that the records of the VM scenario land where
// the report reads them, and that other lines are left alone.
func TestVMParseLine(t *testing.T) {
	r := &VMResult{}
	for _, l := range []string{
		`  FLEXBENCH {"backend":"rbd","call":"mount","wall_ms":12.5,"tool_ms":10,"tools":["rbd"]}`,
		`FLEXBENCH {"backend":"rbd","call":"mount","tag":"format"}`,
		`FLEXBENCH {not json`,
		`FLEXFLOOR {"prog":"true","wall_ms":3}`,
		`FLEXPLAIN {"size_mib":51200}`,
		`FLEXGROW {"layout":"meta_bg","exit":0,"before":1,"after":2}`,
		`FLEXNOTE Go's floor did not run`,
		`scenarios: 1 passed, 0 failed`,
		`some other line with FLEXBENCH in it`,
	} {
		r.parseLine(l)
	}
	if len(r.Calls) != 2 || r.Calls[0].WallMs != 12.5 || r.Calls[0].Backend != "rbd" || r.Calls[1].Tag != "format" {
		t.Errorf("calls: %+v", r.Calls)
	}
	if len(r.Floor) != 1 || len(r.Plain) != 1 || len(r.Grow) != 1 || !r.Grow[0].OK() {
		t.Errorf("floor %+v, plain %+v, grow %+v", r.Floor, r.Plain, r.Grow)
	}
	if len(r.Notes) != 1 || r.Notes[0] != "Go's floor did not run" || r.Summary != "scenarios: 1 passed, 0 failed" {
		t.Errorf("notes %q, summary %q", r.Notes, r.Summary)
	}
}
