package logging

// Events are the "msg" values of log lines that tools outside the driver
// parse (benchmarks, e2e scenarios, operators' log queries): they are an
// interface, so they are named here once and never written as text.
const (
	// EventExec: one external tool ran (tool, argv masked, exit, ms).
	EventExec = "exec"
	// EventCallDone: one kubelet call answered (status, message, ms).
	EventCallDone = "call done"
	// EventDeviceReady: a device was checked or formatted (formatted).
	EventDeviceReady = "device ready"
	// EventCollecting: a volume no pod uses is being released.
	EventCollecting = "collecting unused volume"
	// EventCollectFailed: releasing such a volume failed (logged only).
	EventCollectFailed = "collecting unused volume failed"
	// EventRecordSetAside: a state record failed its checks.
	EventRecordSetAside = "state record set aside"
	// EventRecordRebuilt: a lost record was rebuilt from the mount table.
	EventRecordRebuilt = "state record rebuilt"
	// EventUnrecordedBind: a volume stays up for a bind no record lists.
	EventUnrecordedBind = "volume kept for a bind flexblock did not record"
	// EventLUNReady: an iSCSI LUN's device appeared (paths, waitedMs).
	EventLUNReady = "iSCSI LUN ready"
	// EventPanic: a panic was turned into a Failure.
	EventPanic = "panic"
)

// Events lists every event, for the test that keeps parsers and names in step.
func Events() []string {
	return []string{EventExec, EventCallDone, EventDeviceReady, EventCollecting,
		EventCollectFailed, EventRecordSetAside, EventRecordRebuilt, EventUnrecordedBind, EventLUNReady, EventPanic}
}
