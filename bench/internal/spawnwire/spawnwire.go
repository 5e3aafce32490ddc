// Package spawnwire is the protocol between the benchmarks' caller and the
// spawn helper (internal/cmd/spawn): one JSON Request per line on the
// helper's stdin, one JSON Reply per line on its stdout.
package spawnwire

// Request is one program to run.
type Request struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
}

// Reply is how the run went.
type Reply struct {
	WallNs      int64  `json:"wall_ns"`
	UserNs      int64  `json:"user_ns"`
	SysNs       int64  `json:"sys_ns"`
	MaxRSSKiB   int64  `json:"maxrss_kib"`      // wait4's ru_maxrss
	SelfRSSKiB  int64  `json:"self_maxrss_kib"` // the helper's own peak: the floor of MaxRSSKiB
	Exit        int    `json:"exit"`
	Output      string `json:"output"` // stdout and stderr together
	Error       string `json:"error,omitempty"`
	StartFailed bool   `json:"start_failed,omitempty"`
}
