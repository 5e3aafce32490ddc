package iscsi

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexblock/flexblock/driver/blockdev"
	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/logging"
	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/state"
	"github.com/flexblock/flexblock/driver/volume"
)

// fakeNode is a node with a fake sysfs and /dev under temp dirs and a fake
// iscsiadm/iscsid/kernel behind a runner.Script: logins create sessions in
// sysfs, scans create LUN devices, deletes and logouts remove them. Tests
// assert the exact argv the backend ran.
type fakeNode struct {
	t      *testing.T
	sys    string
	dev    string
	b      *Backend
	env    *volume.Env
	cfg    *config.Config
	script *runner.Script
	logBuf *bytes.Buffer

	mu        sync.Mutex
	now       time.Time
	slept     []time.Duration
	onSleep   func(n int)
	nextSID   int
	nextHost  int
	nextSD    int
	exports   map[string][]int // target -> LUNs it exports
	notDisk   map[int]bool     // LUNs without a block device (controller LUN)
	down      map[string]int   // portal -> iscsiadm exit code when contacted
	loginFail map[string]int   // portal -> login exit code
	chapUser  map[string]string
	chapPass  map[string]string // target -> required session CHAP password
	discPass  string            // required discovery CHAP password ("" none)
	nodes     map[string]map[string]string
	discs     map[string]map[string]string
	ifaces    map[string]map[string]string
	sizes     map[string]int64     // sd -> size after a rescan
	devnums   map[string][2]uint32 // sdX, dm-N -> the node's major:minor
	writes    []string
}

const (
	plainIQN = "iqn.2026-11.io.flexblock:plain"
	chapIQN  = "iqn.2026-11.io.flexblock:chap"
	portal1  = "10.0.0.1:3260"
	portal2  = "10.0.0.2:3260"
)

func newNode(t *testing.T) *fakeNode {
	t.Helper()
	cfg, err := config.Load(filepath.Join(t.TempDir(), "none.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ISCSI.DeviceTimeout = config.Duration(5 * time.Second)
	cfg.ISCSI.RecordsDir = t.TempDir()
	n := &fakeNode{
		t: t, sys: t.TempDir(), dev: t.TempDir(), cfg: cfg,
		script:  &runner.Script{Strict: true},
		logBuf:  &bytes.Buffer{},
		now:     time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
		nextSID: 1, nextHost: 2,
		exports:   map[string][]int{plainIQN: {1, 2, 3}, chapIQN: {1}},
		notDisk:   map[int]bool{0: true},
		down:      map[string]int{},
		loginFail: map[string]int{},
		chapUser:  map[string]string{chapIQN: "user"},
		chapPass:  map[string]string{chapIQN: "Chap-Secret-0123"},
		nodes:     map[string]map[string]string{},
		discs:     map[string]map[string]string{},
		ifaces:    map[string]map[string]string{},
		sizes:     map[string]int64{},
		devnums:   map[string][2]uint32{},
	}
	n.env = &volume.Env{Config: cfg, Run: n.script, Mask: &logging.Masker{}, Log: logging.New(n.logBuf), Layout: state.Layout{Dir: t.TempDir(), RecordsDir: cfg.ISCSI.RecordsDir}}
	n.b = &Backend{
		SysRoot: n.sys, DevRoot: n.dev, Write: n.write, Now: n.clock, DevNumber: n.devNumber,
		Sleep: func(ctx context.Context, d time.Duration) error {
			n.mu.Lock()
			n.slept = append(n.slept, d)
			n.now = n.now.Add(d)
			k := len(n.slept)
			hook := n.onSleep
			n.mu.Unlock()
			if hook != nil {
				hook(k)
			}
			return nil
		},
		Resolve: func(_ context.Context, host string) ([]string, error) {
			if host == "target.example" {
				return []string{"10.0.0.1"}, nil
			}
			return nil, fmt.Errorf("no such host")
		},
	}
	for _, d := range []string{"class/iscsi_session", "class/iscsi_connection", "class/scsi_host", "block", "devices/platform"} {
		n.mkdir(filepath.Join(n.sys, d))
	}
	n.script.OnFunc("iscsiadm", n.iscsiadm)
	n.script.On("blockdev --flushbufs", "", 0)
	n.script.OnFunc("multipath -f", n.multipathFlush)
	n.script.On("multipathd resize map", "", 0)
	t.Cleanup(func() {
		for _, c := range n.script.Calls {
			if !slices.Contains(n.b.Tools(), c.Name) {
				t.Errorf("ran %s, which Tools does not list", c.Name)
			}
		}
	})
	return n
}

// devNumber is stat(2) of a fake device node: its major:minor.
func (n *fakeNode) devNumber(p string) (blockdev.Dev, error) {
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		return blockdev.Dev{}, err
	}
	d, ok := n.devnums[filepath.Base(r)]
	if !ok {
		return blockdev.Dev{}, fmt.Errorf("%s is not a block device", p)
	}
	return blockdev.Dev{Major: d[0], Minor: d[1]}, nil
}

// fakeWWID is the LUN's world-wide name: one per target and LUN.
func fakeWWID(iqn string, lun int) string {
	return fmt.Sprintf("naa.6001405%08x", crc32.ChecksumIEEE([]byte(iqn+"/"+strconv.Itoa(lun))))
}

func (n *fakeNode) clock() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.now
}

func (n *fakeNode) mkdir(p string) {
	if err := os.MkdirAll(p, 0o755); err != nil {
		n.t.Fatal(err)
	}
}

func (n *fakeNode) file(p, content string) {
	n.mkdir(filepath.Dir(p))
	if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

func (n *fakeNode) link(target, p string) {
	n.mkdir(filepath.Dir(p))
	if err := os.Symlink(target, p); err != nil {
		n.t.Fatal(err)
	}
}

// parse validates options the way the core does (ParseCommon, then Parse).
func (n *fakeNode) parse(kv ...string) (*Volume, error) {
	o := options.Options{}
	for i := 0; i+1 < len(kv); i += 2 {
		o[kv[i]] = kv[i+1]
	}
	c, err := options.ParseCommon(o, "ext4", keys)
	if err != nil {
		return nil, err
	}
	for _, s := range c.Secrets {
		n.env.Mask.Add(s) // as the core does
	}
	s, err := n.b.Parse(c, n.cfg)
	if err != nil {
		return nil, err
	}
	return s.(*Volume), nil
}

func (n *fakeNode) mustParse(kv ...string) *Volume {
	n.t.Helper()
	v, err := n.parse(kv...)
	if err != nil {
		n.t.Fatal(err)
	}
	return v
}

// acquire runs Acquire and saves the state record as the core does.
func (n *fakeNode) acquire(v *Volume, nodeLocal bool) (string, *state.Record, error) {
	n.t.Helper()
	st := state.Store{Dir: n.env.Layout.Dir}
	rec := &state.Record{Backend: "iscsi", ID: v.ID(), Mode: state.ModePod, Locks: v.LockKeys()}
	if err := st.Save(rec); err != nil {
		n.t.Fatal(err)
	}
	dev, data, err := v.Acquire(context.Background(), n.env, nodeLocal)
	if err != nil {
		_ = st.Delete("iscsi", rec.ID)
		return "", nil, err
	}
	rec.Device, rec.Data = dev, data
	if err := st.Save(rec); err != nil {
		n.t.Fatal(err)
	}
	return dev, rec, nil
}

// release runs Release and deletes the record as the core's teardown does.
func (n *fakeNode) release(rec *state.Record) error {
	if err := n.b.Release(context.Background(), n.env, rec); err != nil {
		return err
	}
	return state.Store{Dir: n.env.Layout.Dir}.Delete("iscsi", rec.ID)
}

func (n *fakeNode) reset() { n.script.Calls = nil; n.writes = nil }

// iscsiadm lines the backend ran, and everything else.
func (n *fakeNode) lines() []string { return n.script.Lines() }

func (n *fakeNode) fail(c runner.Cmd, code int, stderr string) (runner.Result, error) {
	return runner.Result{ExitCode: code, Stderr: []byte(stderr)},
		&runner.ExitError{Cmd: n.env.Mask.Mask(c.String()), Code: code, Stderr: n.env.Mask.Mask(stderr)}
}

type argv struct {
	opts   map[string]string
	flags  map[string]bool
	params [][2]string
}

func parseArgv(args []string) argv {
	a := argv{opts: map[string]string{}, flags: map[string]bool{}}
	var name string
	for i := 0; i < len(args); i++ {
		switch x := args[i]; {
		case x == "-n":
			name = args[i+1]
			i++
		case x == "-v":
			a.params = append(a.params, [2]string{name, args[i+1]})
			i++
		case strings.HasPrefix(x, "--"):
			a.flags[x] = true
		case strings.HasPrefix(x, "-"):
			a.opts[x] = args[i+1]
			i++
		}
	}
	return a
}

// iscsiadm is the fake iscsiadm + iscsid.
func (n *fakeNode) iscsiadm(c runner.Cmd) (runner.Result, error) {
	a := parseArgv(c.Args)
	p, iqn, iface, op := a.opts["-p"], a.opts["-T"], a.opts["-I"], a.opts["-o"]
	switch a.opts["-m"] {
	case "discoverydb":
		switch {
		case a.flags["--discover"]:
			if code, ok := n.down[p]; ok {
				return n.fail(c, code, "iscsiadm: cannot make connection to "+p+": Connection refused")
			}
			if n.discPass != "" && n.discs[p]["discovery.sendtargets.auth.password"] != n.discPass {
				return n.fail(c, errAuthFailed, "iscsiadm: Login failed to authenticate with target")
			}
			var out []string
			for _, t := range sortedKeys(n.exports) {
				out = append(out, p+",1 "+t)
			}
			return runner.Result{Stdout: []byte(strings.Join(out, "\n") + "\n")}, nil
		case op == "new":
			n.discs[p] = map[string]string{}
		case op == "update":
			for _, kv := range a.params {
				n.discs[p][kv[0]] = kv[1]
			}
		case op == "delete":
			if n.discs[p] == nil {
				return n.fail(c, 6, "iscsiadm: Discovery record not found")
			}
			delete(n.discs, p)
		default:
			if n.discs[p] == nil {
				return n.fail(c, 6, "iscsiadm: Discovery record ["+p+"] not found.")
			}
		}
	case "node":
		key := iqn + "|" + p + "|" + iface
		switch {
		case a.flags["--login"]:
			if code, ok := n.down[p]; ok {
				return n.fail(c, code, "iscsiadm: initiator reported error (8 - connection timed out)")
			}
			if code, ok := n.loginFail[p]; ok {
				return n.fail(c, code, "iscsiadm: initiator reported error")
			}
			if n.nodes[key] == nil {
				return n.fail(c, errNoObjects, "iscsiadm: No records found")
			}
			if want := n.chapPass[iqn]; want != "" && (n.nodes[key]["node.session.auth.password"] != want || n.nodes[key]["node.session.auth.username"] != n.chapUser[iqn]) {
				return n.fail(c, errAuthFailed, "iscsiadm: initiator reported error (24 - iSCSI login failed due to authorization failure)")
			}
			if n.b.findSession(iqn, p, iface) != nil {
				return n.fail(c, errSessExists, "iscsiadm: default: 1 session requested, but 1 already present.")
			}
			n.addSession(iqn, p, iface)
		case a.flags["--logout"]:
			s := n.b.findSession(iqn, p, iface)
			if s == nil {
				return n.fail(c, errNoObjects, "iscsiadm: No matching sessions found")
			}
			n.removeSession(s)
		case op == "new":
			n.nodes[key] = map[string]string{}
		case op == "update":
			if n.nodes[key] == nil {
				return n.fail(c, errNoObjects, "iscsiadm: No records found")
			}
			for _, kv := range a.params {
				n.nodes[key][kv[0]] = kv[1]
			}
		case op == "delete":
			if n.nodes[key] == nil {
				return n.fail(c, errNoObjects, "iscsiadm: No records found")
			}
			delete(n.nodes, key)
		default:
			if n.nodes[key] == nil {
				return n.fail(c, errNoObjects, "iscsiadm: No records found")
			}
		}
	case "iface":
		switch op {
		case "new":
			n.ifaces[iface] = map[string]string{}
		case "update":
			for _, kv := range a.params {
				n.ifaces[iface][kv[0]] = kv[1]
			}
		case "delete":
			delete(n.ifaces, iface)
		default:
			vals, ok := n.ifaces[iface]
			if !ok {
				return n.fail(c, errNoObjects, "iscsiadm: Could not read iface "+iface)
			}
			var out []string
			for _, k := range sortedKeys(vals) {
				out = append(out, k+" = "+vals[k])
			}
			return runner.Result{Stdout: []byte(strings.Join(out, "\n") + "\n")}, nil
		}
	}
	return runner.Result{}, nil
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// addSession makes the sysfs objects of a logged-in session (no LUN yet:
// node.session.scan is manual).
func (n *fakeNode) addSession(iqn, portal, iface string) *session {
	sid, host := n.nextSID, n.nextHost
	n.nextSID++
	n.nextHost++
	addr, port, _ := strings.Cut(portal, ":")
	dev := filepath.Join(n.sys, "devices/platform", "host"+strconv.Itoa(host), "session"+strconv.Itoa(sid))
	n.mkdir(dev)
	cls := filepath.Join(n.sys, "class/iscsi_session", "session"+strconv.Itoa(sid))
	n.file(filepath.Join(cls, "targetname"), iqn)
	n.file(filepath.Join(cls, "ifacename"), iface)
	n.link(dev, filepath.Join(cls, "device"))
	conn := filepath.Join(n.sys, "class/iscsi_connection", "connection"+strconv.Itoa(sid)+":0")
	n.file(filepath.Join(conn, "persistent_address"), addr)
	n.file(filepath.Join(conn, "persistent_port"), port)
	n.file(filepath.Join(n.sys, "class/scsi_host", "host"+strconv.Itoa(host), "scan"), "")
	return n.b.findSession(iqn, portal, iface)
}

func (n *fakeNode) removeSession(s *session) {
	for _, sd := range n.sdsOf(s) {
		n.removeSD(sd)
	}
	sid := strings.TrimPrefix(s.Name, "session")
	for _, p := range []string{filepath.Dir(s.Dev), filepath.Join(n.sys, "class/iscsi_session", s.Name),
		filepath.Join(n.sys, "class/iscsi_connection", "connection"+sid+":0"),
		filepath.Join(n.sys, "class/scsi_host", "host"+strconv.Itoa(s.Host))} {
		if err := os.RemoveAll(p); err != nil {
			n.t.Fatal(err)
		}
	}
}

func (n *fakeNode) sdsOf(s *session) []string {
	blocks, _ := filepath.Glob(filepath.Join(s.Dev, "target*", "*", "block", "*"))
	var out []string
	for _, b := range blocks {
		out = append(out, filepath.Base(b))
	}
	return out
}

// addLUN makes the H:C:T:L dir of lun on the session and its sd device.
func (n *fakeNode) addLUN(s *session, lun int) string {
	h := strconv.Itoa(s.Host)
	dir := filepath.Join(s.Dev, "target"+h+":0:0", h+":0:0:"+strconv.Itoa(lun))
	n.mkdir(dir)
	if n.notDisk[lun] {
		return ""
	}
	sd := "sd" + string(rune('a'+n.nextSD))
	n.nextSD++
	n.file(filepath.Join(dir, "delete"), "")
	n.file(filepath.Join(dir, "rescan"), "")
	blk := filepath.Join(dir, "block", sd)
	n.file(filepath.Join(dir, "wwid"), fakeWWID(s.Target, lun))
	minor := uint32(16 * (n.nextSD - 1))
	n.devnums[sd] = [2]uint32{8, minor}
	n.file(filepath.Join(blk, "dev"), fmt.Sprintf("8:%d", minor))
	n.file(filepath.Join(blk, "size"), "2097152")
	n.mkdir(filepath.Join(blk, "holders"))
	n.link(dir, filepath.Join(blk, "device"))
	n.link(blk, filepath.Join(n.sys, "block", sd))
	n.file(filepath.Join(n.dev, sd), "")
	return sd
}

func (n *fakeNode) removeSD(sd string) {
	blk, err := filepath.EvalSymlinks(filepath.Join(n.sys, "block", sd))
	if err != nil {
		return
	}
	for _, p := range []string{filepath.Dir(filepath.Dir(blk)), filepath.Join(n.sys, "block", sd), filepath.Join(n.dev, sd)} {
		if err := os.RemoveAll(p); err != nil {
			n.t.Fatal(err)
		}
	}
}

// addDM is what multipathd does: a map over sds.
func (n *fakeNode) addDM(num int, name string, sds ...string) {
	dm := "dm-" + strconv.Itoa(num)
	dir := filepath.Join(n.sys, "block", dm)
	for _, sd := range sds {
		n.mkdir(filepath.Join(dir, "slaves", sd))
	}
	n.file(filepath.Join(dir, "dm", "name"), name)
	n.file(filepath.Join(dir, "dm", "uuid"), "mpath-36001405"+name)
	n.file(filepath.Join(dir, "size"), "2097152")
	n.file(filepath.Join(dir, "dev"), fmt.Sprintf("253:%d", num))
	n.devnums[dm] = [2]uint32{253, uint32(num)}
	n.file(filepath.Join(n.dev, dm), "")
	n.mkdir(filepath.Join(n.dev, "mapper"))
	n.link(filepath.Join(n.dev, dm), filepath.Join(n.dev, "mapper", name))
}

func (n *fakeNode) multipathFlush(c runner.Cmd) (runner.Result, error) {
	name := c.Args[len(c.Args)-1]
	dms, _ := filepath.Glob(filepath.Join(n.sys, "block", "dm-*"))
	for _, d := range dms {
		if readAttr(filepath.Join(d, "dm", "name")) == name {
			_ = os.RemoveAll(d)
			_ = os.Remove(filepath.Join(n.dev, filepath.Base(d)))
			_ = os.Remove(filepath.Join(n.dev, "mapper", name))
			return runner.Result{}, nil
		}
	}
	return n.fail(c, 1, name+": map not present")
}

// write is the fake kernel behind sysfs writes: scan probes one LUN,
// delete removes an sd, rescan picks up a new size.
func (n *fakeNode) write(path string, data []byte) error {
	rel, _ := filepath.Rel(n.sys, path)
	n.writes = append(n.writes, rel+"="+string(data))
	switch {
	case strings.HasSuffix(path, "/scan"):
		host, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(filepath.Dir(path)), "host"))
		f := strings.Fields(string(data))
		lun, _ := strconv.Atoi(f[2])
		for _, s := range n.b.sessions() {
			if s.Host == host && containsInt(n.exports[s.Target], lun) && lunDir(&s, lun) == "" {
				n.addLUN(&s, lun)
			}
		}
		return nil
	case strings.HasSuffix(path, "/device/delete"):
		sd := filepath.Base(filepath.Dir(filepath.Dir(path)))
		if _, err := os.Lstat(filepath.Join(n.sys, "block", sd)); err != nil {
			return err
		}
		n.removeSD(sd)
		return nil
	case strings.HasSuffix(path, "/device/rescan"):
		sd := filepath.Base(filepath.Dir(filepath.Dir(path)))
		if size, ok := n.sizes[sd]; ok {
			n.file(filepath.Join(n.sys, "block", sd, "size"), strconv.FormatInt(size/512, 10))
		}
		return nil
	}
	return writeSysfs(path, data)
}

// sessionCount is how many sessions sysfs shows.
func (n *fakeNode) sessionCount() int { return len(n.b.sessions()) }

func (n *fakeNode) sdCount() int {
	l, _ := filepath.Glob(filepath.Join(n.sys, "block", "sd*"))
	return len(l)
}

func (n *fakeNode) markers() []string {
	l, _ := filepath.Glob(filepath.Join(n.env.Layout.Dir, "iscsi", "*"))
	r, _ := filepath.Glob(filepath.Join(n.cfg.ISCSI.RecordsDir, "*"))
	return append(l, r...)
}

func (n *fakeNode) expectLines(want ...string) {
	n.t.Helper()
	got := n.lines()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		n.t.Fatalf("commands:\n got:\n  %s\n want:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
