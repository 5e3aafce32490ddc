package iscsi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flexblock/flexblock/driver/format"
	"github.com/flexblock/flexblock/driver/lock"
	"github.com/flexblock/flexblock/driver/mount"
	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/state"
	"github.com/flexblock/flexblock/driver/volume"
)

func secret(v string) string { return base64.StdEncoding.EncodeToString([]byte(v)) }

func plain(lun string, more ...string) []string {
	return append([]string{"targetPortal", "10.0.0.1", "iqn", plainIQN, "lun", lun}, more...)
}

func chapOpts(pass string, more ...string) []string {
	return append([]string{"targetPortal", "10.0.0.1", "iqn", chapIQN, "lun", "1", "chapAuthSession", "true",
		"kubernetes.io/secret/node.session.auth.username", secret("user"),
		"kubernetes.io/secret/node.session.auth.password", secret(pass)}, more...)
}

// Every validation error names the field, says how to fix it, and nothing
// runs: not a command, not a state file.
func TestValidationRunsNothing(t *testing.T) {
	cases := []struct {
		kv   []string
		want string
	}{
		{[]string{"iqn", plainIQN, "lun", "1"}, `"targetPortal" is missing`},
		{plain("1", "targetPortal", "10.0.0.1:99999"), `"targetPortal" has an invalid port`},
		{plain("1", "targetPortal", "10.0.0.1;reboot"), `"targetPortal"`},
		{plain("1", "targetPortal", "-p"), `"targetPortal"`},
		{plain("1", "portals", "10.0.0.2,,10.0.0.3"), `"portals" has an empty item`},
		{plain("1", "portals", "10.0.0.2,bad host"), `"portals"`},
		{plain("1", "portals", "1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5,1.1.1.6,1.1.1.7,1.1.1.8"), "at most 8"},
		{[]string{"targetPortal", "10.0.0.1", "lun", "1"}, `"iqn" is missing`},
		{plain("1", "iqn", "iqn.2026-11.io.Flexblock:plain"), `"iqn" is "iqn.2026-11.io.Flexblock:plain", not a valid iSCSI name`},
		{plain("1", "iqn", "iqn.2026-13.io.flexblock:x"), `"iqn"`},
		{plain("1", "iqn", "iqn.2026-11.io.flexblock:a b"), `"iqn"`},
		{plain("1", "iqn", "iqn.2026-11.io.flexblock:x;rm"), `"iqn"`},
		{plain("1", "iqn", "eui.0123"), `"iqn"`},
		{plain("1", "iqn", "naa.xyz"), `"iqn"`},
		{plain("1", "iqn", "iqn.2026-11.io.flexblock:"+strings.Repeat("a", 220)), "more than the 223"},
		{[]string{"targetPortal", "10.0.0.1", "iqn", plainIQN}, `"lun" is missing`},
		{plain("-1"), `"lun" is "-1", not a LUN number`},
		{plain("16384"), "more than 16383"},
		{plain("1e3"), `"lun"`},
		{plain(" 1"), `"lun"`},
		{plain("1", "iscsiInterface", "../x"), `"iscsiInterface"`},
		{plain("1", "iscsiInterface", ""), `"iscsiInterface" is empty`},
		{plain("1", "iscsiInterface", strings.Repeat("i", 65)), "more than 64"},
		{plain("1", "initiatorName", "me"), `"initiatorName"`},
		{plain("1", "chapAuthSession", "yes"), `"chapAuthSession"`},
		{plain("1", "chapAuthDiscovery", "1x"), `"chapAuthDiscovery"`},
		{plain("1", "target", "x"), `"target" is not a known option`},
		{chapOpts("Chap-Secret-0123")[:10], `"kubernetes.io/secret/node.session.auth.password" is missing`},
		{chapOpts("with\ttab"), "control character"},
		{chapOpts(" padded"), "space"},
		{chapOpts(strings.Repeat("p", 256)), "at most 255"},
		{chapOpts("Chap-Secret-0123", "kubernetes.io/secret/node.session.auth.username_in", secret("tgt")), `"kubernetes.io/secret/node.session.auth.password_in" is missing`},
		{plain("1", "chapAuthDiscovery", "true", "kubernetes.io/secret/node.session.auth.username", secret("u")), `"kubernetes.io/secret/discovery.sendtargets.auth.username" is missing`},
	}
	for _, tc := range cases {
		n := newNode(t)
		root := t.TempDir()
		d := &volume.Lifecycle{Backend: n.b, Env: n.env, Mounter: &mount.Tools{Run: n.script}, Format: &format.Formatter{Run: n.script}, Records: state.Store{Dir: n.env.Layout.Dir}, Locks: lock.Dir{Path: n.env.Layout.Locks()}}
		o := options.Options{}
		for i := 0; i+1 < len(tc.kv); i += 2 {
			o[tc.kv[i]] = tc.kv[i+1]
		}
		err := d.Mount(context.Background(), root+"/pods/uid-1/volumes/flexblock~iscsi/vol", o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.kv, err, tc.want)
			continue
		}
		res := struct{ Message string }{err.Error()}
		if len(n.script.Calls) != 0 {
			t.Errorf("%q ran %v", tc.kv, n.lines())
		}
		if ents, _ := os.ReadDir(n.env.Layout.Dir); len(ents) != 0 {
			t.Errorf("%q wrote state", tc.kv)
		}
		if strings.Contains(res.Message, "Chap-Secret") || strings.Contains(res.Message, "with\ttab") {
			t.Errorf("%q: message shows the secret: %s", tc.kv, res.Message)
		}
	}
}

func TestParseValues(t *testing.T) {
	n := newNode(t)
	v := n.mustParse(plain("7", "portals", "10.0.0.2, 10.0.0.1:3260 ,[fd00::5]:3261")...)
	if strings.Join(v.Portals, ",") != "10.0.0.1:3260,10.0.0.2:3260,[fd00::5]:3261" {
		t.Errorf("portals %v", v.Portals)
	}
	if v.ID() != plainIQN+"~lun7" || v.Iface != "default" || v.LUN != 7 {
		t.Errorf("%+v id %s", v, v.ID())
	}
	if k := v.LockKeys(); len(k) != 1 || k[0] != "iscsi-target-iqn.2026-11.io.flexblock_plain" {
		t.Errorf("locks %v", k)
	}
	w := n.mustParse(plain("7", "initiatorName", "iqn.2026-11.io.flexblock:node-a")...)
	if !strings.HasPrefix(w.Iface, "flexblock-") || w.ID() != plainIQN+"~lun7" || len(w.LockKeys()) != 2 || w.LockKeys()[1] != "iscsi-iface-"+w.Iface {
		t.Errorf("iface %s id %s locks %v", w.Iface, w.ID(), w.LockKeys())
	}
	if x := n.mustParse(plain("7", "initiatorName", "iqn.2026-11.io.flexblock:node-b")...); x.Iface == w.Iface {
		t.Error("two initiator names share an iface")
	}
	long := n.mustParse("targetPortal", "10.0.0.1", "iqn", "iqn.2026-11.io.flexblock:"+strings.Repeat("x", 190), "lun", "16383", "iscsiInterface", strings.Repeat("i", 64))
	if len(long.ID()) > maxIDLen || !strings.Contains(long.ID(), "~h") {
		t.Errorf("long id %d %s", len(long.ID()), long.ID())
	}
	for _, good := range []string{"eui.02004567A425678D", "naa.52004567BA64678D", "naa.52004567BA64678D52004567BA64678D", "iqn.1992-08.com.netapp:sn.84183797"} {
		if _, err := n.parse(plain("0", "iqn", good)...); err != nil {
			t.Errorf("%s: %v", good, err)
		}
	}
	// CHAP options without a Secret: credentials come from the node at
	// Acquire time (attach mode), so Parse accepts them.
	if _, err := n.parse(plain("1", "chapAuthSession", "true")...); err != nil {
		t.Error(err)
	}
}

var freshLogin = []string{
	"iscsiadm -m discoverydb -t sendtargets -p 10.0.0.1:3260 -I default --discover -o nonpersistent",
	"iscsiadm -m node -T " + plainIQN + " -p 10.0.0.1:3260 -I default",
	"iscsiadm -m node -T " + plainIQN + " -p 10.0.0.1:3260 -I default -o new",
	"iscsiadm -m node -T " + plainIQN + " -p 10.0.0.1:3260 -I default -o update -n node.startup -v manual -n node.session.scan -v manual -n node.conn[0].timeo.login_timeout -v 15 -n node.session.initial_login_retry_max -v 2",
	"iscsiadm -m node -T " + plainIQN + " -p 10.0.0.1:3260 -I default --login",
}

var logout = []string{
	"iscsiadm -m node -T " + plainIQN + " -p 10.0.0.1:3260 -I default --logout",
	"iscsiadm -m node -T " + plainIQN + " -p 10.0.0.1:3260 -I default -o delete",
}

func TestFreshLoginAndRelease(t *testing.T) {
	n := newNode(t)
	v := n.mustParse(plain("2")...)
	dev, rec, err := n.acquire(v, false)
	if err != nil {
		t.Fatal(err)
	}
	n.expectLines(freshLogin...)
	if dev != filepath.Join(n.dev, "sda") {
		t.Errorf("device %s", dev)
	}
	if strings.Join(n.writes, ";") != "class/scsi_host/host2/scan=- - 2" {
		t.Errorf("sysfs writes %v: only LUN 2 may be scanned", n.writes)
	}
	var a attachment
	_ = json.Unmarshal(rec.Data, &a)
	if a.IQN != plainIQN || a.LUN != 2 || a.Iface != "default" || strings.Join(a.Portals, ",") != portal1 || strings.Join(a.Devices, ",") != "sda" {
		t.Errorf("data %s", rec.Data)
	}
	if n.nodes[plainIQN+"|"+portal1+"|default"]["node.startup"] != "manual" {
		t.Error("node.startup is not manual")
	}
	if len(n.markers()) != 2 {
		t.Errorf("markers %v", n.markers())
	}
	for _, d := range n.slept {
		if d > 100*time.Millisecond {
			t.Errorf("slept %s: polls must be <= 100ms", d)
		}
	}

	n.reset()
	if err := n.release(rec); err != nil {
		t.Fatal(err)
	}
	n.expectLines(append([]string{"blockdev --flushbufs " + n.dev + "/sda"}, logout...)...)
	if strings.Join(n.writes, ";") != "block/sda/device/delete=1" {
		t.Errorf("writes %v", n.writes)
	}
	if n.sessionCount() != 0 || n.sdCount() != 0 || len(n.nodes) != 0 || len(n.markers()) != 0 {
		t.Errorf("left: %d sessions, %d sd, nodes %v, markers %v", n.sessionCount(), n.sdCount(), n.nodes, n.markers())
	}
	// Releasing again (a retried unmount) is success and runs nothing.
	n.reset()
	if err := n.b.Release(context.Background(), n.env, rec); err != nil || len(n.lines()) != 0 {
		t.Errorf("second release: %v %v", err, n.lines())
	}
}

// A reboot ends the session and empties the state dir, but open-iscsi's
// node record stays on disk, and so does flexblock's marker of it (in the
// records dir): the next user of the target reuses the record, and its
// release deletes it, CHAP secret included.
func TestNodeRecordMadeBeforeARebootIsDeletedAfterIt(t *testing.T) {
	n := newNode(t)
	if _, _, err := n.acquire(n.mustParse(plain("2")...), false); err != nil {
		t.Fatal(err)
	}
	for _, s := range n.b.sessions() { // the reboot
		n.removeSession(&s)
	}
	n.env.Layout = state.Layout{Dir: t.TempDir(), RecordsDir: n.env.Layout.RecordsDir}

	n.reset()
	_, rec, err := n.acquire(n.mustParse(plain("2")...), false)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(n.lines(), freshLogin[2]) {
		t.Errorf("the kept node record was created again: %q", n.lines())
	}
	n.reset()
	if err := n.release(rec); err != nil {
		t.Fatal(err)
	}
	if len(n.nodes) != 0 || len(n.markers()) != 0 || n.sessionCount() != 0 {
		t.Errorf("left: nodes %v, markers %v, %d sessions", n.nodes, n.markers(), n.sessionCount())
	}
	if !slices.Contains(n.lines(), logout[1]) {
		t.Errorf("node record not deleted: %q", n.lines())
	}
}

// LUN 1 and LUN 2 of one target: the second reuses the session, releasing
// LUN 1 keeps the session (LUN 2 is in use), releasing LUN 2 logs out.
func TestTwoLUNsRefcountedLogout(t *testing.T) {
	n := newNode(t)
	_, rec1, err := n.acquire(n.mustParse(plain("1")...), false)
	if err != nil {
		t.Fatal(err)
	}
	n.reset()
	dev2, rec2, err := n.acquire(n.mustParse(plain("2")...), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.lines()) != 0 {
		t.Errorf("session reuse ran %v", n.lines())
	}
	if dev2 != filepath.Join(n.dev, "sdb") || strings.Join(n.writes, ";") != "class/scsi_host/host2/scan=0 0 2" {
		t.Errorf("dev %s writes %v", dev2, n.writes)
	}
	if n.sessionCount() != 1 {
		t.Fatalf("%d sessions", n.sessionCount())
	}

	n.reset()
	if err := n.release(rec1); err != nil {
		t.Fatal(err)
	}
	n.expectLines("blockdev --flushbufs " + n.dev + "/sda")
	if n.sessionCount() != 1 || n.sdCount() != 1 {
		t.Fatalf("after LUN 1: %d sessions %d sds", n.sessionCount(), n.sdCount())
	}

	n.reset()
	if err := n.release(rec2); err != nil {
		t.Fatal(err)
	}
	n.expectLines(append([]string{"blockdev --flushbufs " + n.dev + "/sdb"}, logout...)...)
	if n.sessionCount() != 0 || n.sdCount() != 0 || len(n.nodes) != 0 || len(n.markers()) != 0 {
		t.Errorf("left: %d sessions %d sds nodes %v markers %v", n.sessionCount(), n.sdCount(), n.nodes, n.markers())
	}
}

// A session flexblock did not log in (an administrator's) is used but never
// logged out, and its node record never deleted.
func TestForeignSessionIsNeverLoggedOut(t *testing.T) {
	n := newNode(t)
	n.nodes[plainIQN+"|"+portal1+"|default"] = map[string]string{}
	s := n.addSession(plainIQN, portal1, "default")
	n.addLUN(s, 1)
	dev, rec, err := n.acquire(n.mustParse(plain("1")...), false)
	if err != nil || dev != filepath.Join(n.dev, "sda") || len(n.lines()) != 0 {
		t.Fatalf("%s %v %v", dev, err, n.lines())
	}
	if err := n.release(rec); err != nil {
		t.Fatal(err)
	}
	n.expectLines("blockdev --flushbufs " + n.dev + "/sda")
	if n.sessionCount() != 1 || len(n.nodes) != 1 {
		t.Error("the administrator's session or record was touched")
	}
}

func TestCHAPArgvAndSecretsNotLogged(t *testing.T) {
	n := newNode(t)
	n.discPass = "Disc-Secret-4567"
	v := n.mustParse(chapOpts("Chap-Secret-0123", "chapAuthDiscovery", "true",
		"kubernetes.io/secret/discovery.sendtargets.auth.username", secret("duser"),
		"kubernetes.io/secret/discovery.sendtargets.auth.password", secret("Disc-Secret-4567"),
		"kubernetes.io/secret/node.session.auth.username_in", secret("tuser"),
		"kubernetes.io/secret/node.session.auth.password_in", secret("Target-Secret-89"))...)
	_, rec, err := n.acquire(v, false)
	if err != nil {
		t.Fatal(err)
	}
	disc := "iscsiadm -m discoverydb -t sendtargets -p 10.0.0.1:3260 -I default"
	node := "iscsiadm -m node -T " + chapIQN + " -p 10.0.0.1:3260 -I default"
	n.expectLines(
		disc,
		disc+" -o new",
		disc+" -o update -n discovery.sendtargets.auth.authmethod -v CHAP -n discovery.sendtargets.auth.username -v duser -n discovery.sendtargets.auth.password -v Disc-Secret-4567",
		disc+" --discover -o nonpersistent",
		disc+" -o delete",
		node,
		node+" -o new",
		node+" -o update -n node.startup -v manual -n node.session.scan -v manual -n node.conn[0].timeo.login_timeout -v 15 -n node.session.initial_login_retry_max -v 2"+
			" -n node.session.auth.authmethod -v CHAP -n node.session.auth.username -v user -n node.session.auth.password -v Chap-Secret-0123"+
			" -n node.session.auth.username_in -v tuser -n node.session.auth.password_in -v Target-Secret-89",
		node+" --login",
	)
	if len(n.discs) != 0 {
		t.Error("the discovery record (with its CHAP password) was left behind")
	}
	if err := n.release(rec); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Chap-Secret-0123", "Disc-Secret-4567", "Target-Secret-89"} {
		if strings.Contains(n.logBuf.String(), s) {
			t.Errorf("log holds %s:\n%s", s, n.logBuf)
		}
		if filesContain(t, n.env.Layout.Dir, s) {
			t.Errorf("state dir holds %s", s)
		}
	}
}

func filesContain(t *testing.T, dir, s string) bool {
	found := false
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), s) {
				found = true
			}
		}
		return nil
	})
	return found
}

// A wrong CHAP password: a Failure that says what to fix, keeps iscsiadm's
// reason, never shows the secret, and leaves no session, node record or
// marker behind.
func TestWrongCHAPLeavesNothing(t *testing.T) {
	n := newNode(t)
	_, _, err := n.acquire(n.mustParse(chapOpts("Wrong-Secret-999")...), false)
	if err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	for _, want := range []string{"authorization failure", "node.session.auth.password", "exit status 24"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "Wrong-Secret-999") || strings.Contains(n.logBuf.String(), "Wrong-Secret-999") {
		t.Errorf("the secret leaked: %v\n%s", err, n.logBuf)
	}
	if n.sessionCount() != 0 || len(n.nodes) != 0 || len(n.markers()) != 0 {
		t.Errorf("left: %d sessions nodes %v markers %v", n.sessionCount(), n.nodes, n.markers())
	}
	last := n.lines()[len(n.lines())-1]
	if last != "iscsiadm -m node -T "+chapIQN+" -p 10.0.0.1:3260 -I default -o delete" {
		t.Errorf("last command %s", last)
	}
	// CHAP not enabled on a CHAP target: the message says to enable it.
	n2 := newNode(t)
	_, _, err = n2.acquire(n2.mustParse("targetPortal", "10.0.0.1", "iqn", chapIQN, "lun", "1"), false)
	if err == nil || !strings.Contains(err.Error(), `set chapAuthSession: "true"`) {
		t.Errorf("err %v", err)
	}
}

func TestUnreachablePortal(t *testing.T) {
	n := newNode(t)
	n.down[portal1] = errTransTimeout
	_, _, err := n.acquire(n.mustParse(plain("1")...), false)
	if err == nil || !strings.Contains(err.Error(), "could not connect to the portal 10.0.0.1:3260") {
		t.Fatalf("err %v", err)
	}
	n.expectLines(freshLogin[0])
	if len(n.nodes) != 0 || len(n.markers()) != 0 {
		t.Errorf("left nodes %v markers %v", n.nodes, n.markers())
	}
}

func TestTargetNotOffered(t *testing.T) {
	n := newNode(t)
	_, _, err := n.acquire(n.mustParse(plain("1", "iqn", "iqn.2026-11.io.flexblock:other")...), false)
	if err == nil || !strings.Contains(err.Error(), "does not offer target iqn.2026-11.io.flexblock:other") || !strings.Contains(err.Error(), plainIQN) {
		t.Fatalf("err %v", err)
	}
}

// The LUN never appears: the wait is bounded by iscsi.deviceTimeout with
// polls of at most 100 ms, the LUN is rescanned (never the whole target),
// and the login this call made is undone.
func TestDeviceTimeoutUndoesLogin(t *testing.T) {
	n := newNode(t)
	n.cfg.ISCSI.DeviceTimeout = 3e9
	start := n.clock()
	_, _, err := n.acquire(n.mustParse(plain("9")...), false)
	if err == nil || !strings.Contains(err.Error(), "LUN 9 of "+plainIQN+" did not appear within 3s") {
		t.Fatalf("err %v", err)
	}
	if waited := n.clock().Sub(start); waited < 3*time.Second || waited > 3100*time.Millisecond {
		t.Errorf("waited %s", waited)
	}
	for _, w := range n.writes {
		if w != "class/scsi_host/host2/scan=- - 9" {
			t.Errorf("write %s", w)
		}
	}
	if len(n.writes) < 2 {
		t.Errorf("LUN rescanned %d times", len(n.writes))
	}
	got := n.lines()
	if tail := strings.Join(got[len(got)-2:], "\n"); tail != strings.Join(logout, "\n") {
		t.Errorf("undo ran %v", got)
	}
	if n.sessionCount() != 0 || len(n.nodes) != 0 || len(n.markers()) != 0 {
		t.Errorf("left: %d sessions nodes %v markers %v", n.sessionCount(), n.nodes, n.markers())
	}
	// LUN 0 exists but is the controller: say so.
	n3 := newNode(t)
	n3.exports[plainIQN] = []int{0}
	_, _, err = n3.acquire(n3.mustParse(plain("0")...), false)
	if err == nil || !strings.Contains(err.Error(), "is not a disk") {
		t.Errorf("err %v", err)
	}
}

// Two portals: each logs in, the LUN appears on both, the backend waits for
// multipathd's map and uses it; release flushes the map before the paths.
func TestMultipath(t *testing.T) {
	n := newNode(t)
	n.onSleep = func(k int) {
		if k == 3 {
			n.addDM(4, "mpatha", "sda", "sdb")
		}
	}
	dev, rec, err := n.acquire(n.mustParse(plain("1", "portals", "10.0.0.2")...), false)
	if err != nil {
		t.Fatal(err)
	}
	if dev != filepath.Join(n.dev, "mapper", "mpatha") {
		t.Fatalf("device %s", dev)
	}
	var a attachment
	_ = json.Unmarshal(rec.Data, &a)
	if a.DM != "dm-4" || a.DMName != "mpatha" || strings.Join(a.Devices, ",") != "sda,sdb" || len(a.Portals) != 2 {
		t.Errorf("data %s", rec.Data)
	}
	n.reset()
	if err := n.release(rec); err != nil {
		t.Fatal(err)
	}
	p2 := strings.NewReplacer("10.0.0.1", "10.0.0.2")
	n.expectLines(
		"blockdev --flushbufs "+n.dev+"/dm-4",
		"multipath -f mpatha",
		"blockdev --flushbufs "+n.dev+"/sda",
		"blockdev --flushbufs "+n.dev+"/sdb",
		logout[0], logout[1], p2.Replace(logout[0]), p2.Replace(logout[1]))
	if n.sessionCount() != 0 || n.sdCount() != 0 {
		t.Error("left sessions or devices")
	}
}

// One of two portals is down at mount time: the mount goes on with the
// other path through the multipath map; the failed portal leaves nothing.
func TestMultipathOnePortalDown(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(n *fakeNode)
	}{
		{"discovery fails", func(n *fakeNode) { n.down[portal2] = errTrans }},
		{"login fails", func(n *fakeNode) { n.loginFail[portal2] = errTransTimeout }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			tc.setup(n)
			n.onSleep = func(k int) {
				if k == 1 {
					n.addDM(0, "mpathb", "sda")
				}
			}
			dev, rec, err := n.acquire(n.mustParse(plain("1", "portals", "10.0.0.2")...), false)
			if err != nil {
				t.Fatal(err)
			}
			if dev != filepath.Join(n.dev, "mapper", "mpathb") || n.sessionCount() != 1 {
				t.Fatalf("device %s, %d sessions", dev, n.sessionCount())
			}
			if len(n.nodes) != 1 || len(n.markers()) != 2 {
				t.Errorf("nodes %v markers %v", n.nodes, n.markers())
			}
			if err := n.release(rec); err != nil {
				t.Fatal(err)
			}
			if n.sessionCount() != 0 || len(n.nodes) != 0 || len(n.markers()) != 0 {
				t.Errorf("left: nodes %v markers %v", n.nodes, n.markers())
			}
		})
	}
}

func TestMultipathMissingIsAFailureThatUndoes(t *testing.T) {
	n := newNode(t)
	_, _, err := n.acquire(n.mustParse(plain("1", "portals", "10.0.0.2")...), false)
	if err == nil || !strings.Contains(err.Error(), "start multipathd") {
		t.Fatalf("err %v", err)
	}
	if n.sessionCount() != 0 || n.sdCount() != 0 || len(n.nodes) != 0 {
		t.Error("the failed mount left sessions, devices or records")
	}
}

// multipathd builds the map from the first path and adds the second later;
// the backend waits for the complete, resumed map before using it.
func TestMultipathWaitsForEveryPath(t *testing.T) {
	n := newNode(t)
	var usedAt int
	n.onSleep = func(k int) {
		usedAt = k
		switch k {
		case 3:
			n.addDM(4, "mpatha", "sda")
			n.file(filepath.Join(n.sys, "block", "dm-4", "dm", "suspended"), "0")
		case 5:
			n.file(filepath.Join(n.sys, "block", "dm-4", "dm", "suspended"), "1")
			n.mkdir(filepath.Join(n.sys, "block", "dm-4", "slaves", "sdb"))
		case 7:
			n.file(filepath.Join(n.sys, "block", "dm-4", "dm", "suspended"), "0")
		}
	}
	dev, _, err := n.acquire(n.mustParse(plain("1", "portals", "10.0.0.2")...), false)
	if err != nil {
		t.Fatal(err)
	}
	if dev != filepath.Join(n.dev, "mapper", "mpatha") || usedAt != 7 {
		t.Fatalf("device %s after %d sleeps, want the map after 7", dev, usedAt)
	}
}

// A single portal whose sd multipathd already holds: the map is used (the
// sd is busy under it).
func TestSinglePortalUnderMultipath(t *testing.T) {
	n := newNode(t)
	s := n.addSession(plainIQN, portal1, "default")
	n.addLUN(s, 1)
	n.addDM(2, "mpathc", "sda")
	dev, _, err := n.acquire(n.mustParse(plain("1")...), false)
	if err != nil || dev != filepath.Join(n.dev, "mapper", "mpathc") {
		t.Fatalf("%s %v", dev, err)
	}
}

func TestDNSPortalIsResolved(t *testing.T) {
	n := newNode(t)
	_, rec, err := n.acquire(n.mustParse(plain("1", "targetPortal", "target.example")...), false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rec.Data), `"portals":["10.0.0.1:3260"]`) {
		t.Errorf("data %s", rec.Data)
	}
	_, _, err = n.acquire(n.mustParse(plain("2", "targetPortal", "nowhere.example")...), false)
	if err == nil || !strings.Contains(err.Error(), "cannot resolve nowhere.example") {
		t.Errorf("err %v", err)
	}
}

// Attach mode: waitforattach has no Secret; CHAP comes from the node-local
// credentials file, whose passwords are registered with the masker.
func TestNodeLocalCredentials(t *testing.T) {
	n := newNode(t)
	n.cfg.Attach = true
	v := n.mustParse("targetPortal", "10.0.0.1", "iqn", chapIQN, "lun", "1", "chapAuthSession", "true")
	_, _, err := n.acquire(v, true)
	if err == nil || !strings.Contains(err.Error(), "set iscsi.credentialsFile") || len(n.lines()) != 0 {
		t.Fatalf("err %v, ran %v", err, n.lines())
	}
	file := filepath.Join(t.TempDir(), "chap.json")
	n.cfg.ISCSI.CredentialsFile = file
	creds := `{"node.session.auth.username": "user", "node.session.auth.password": "Chap-Secret-0123"}`
	if err := os.WriteFile(file, []byte(creds), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.acquire(v, true); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable file: %v", err)
	}
	_ = os.Chmod(file, 0o600)
	if err := os.WriteFile(file, []byte(`{"node.session.auth.username": "user"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.acquire(v, true); err == nil || !strings.Contains(err.Error(), `"node.session.auth.password" to the credentials file`) {
		t.Fatalf("missing key: %v", err)
	}
	if err := os.WriteFile(file, []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	dev, rec, err := n.acquire(v, true)
	if err != nil || dev == "" {
		t.Fatal(err)
	}
	if n.env.Mask.Mask("x Chap-Secret-0123 y") != "x *** y" {
		t.Error("the file's password is not masked")
	}
	if strings.Contains(n.logBuf.String(), "Chap-Secret-0123") {
		t.Error("password in log")
	}
	if err := n.release(rec); err != nil || n.sessionCount() != 0 {
		t.Fatalf("%v %d", err, n.sessionCount())
	}
}

// initiatorName: a dedicated iface carries it (the default initiator stays
// untouched); it is deleted with the last volume that uses it.
func TestDedicatedIface(t *testing.T) {
	n := newNode(t)
	opts := plain("1", "initiatorName", "iqn.2026-11.io.flexblock:node-a")
	v := n.mustParse(opts...)
	_, rec1, err := n.acquire(v, false)
	if err != nil {
		t.Fatal(err)
	}
	i := v.Iface
	got := n.lines()
	want := []string{
		"iscsiadm -m iface -I " + i,
		"iscsiadm -m iface -I " + i + " -o new",
		"iscsiadm -m iface -I " + i + " -o update -n iface.initiatorname -v iqn.2026-11.io.flexblock:node-a",
		"iscsiadm -m discoverydb -t sendtargets -p 10.0.0.1:3260 -I " + i + " --discover -o nonpersistent",
	}
	if strings.Join(got[:4], "\n") != strings.Join(want, "\n") || !strings.HasSuffix(got[len(got)-1], "-I "+i+" --login") {
		t.Fatalf("commands %v", got)
	}
	_, rec2, err := n.acquire(n.mustParse(plain("2", "initiatorName", "iqn.2026-11.io.flexblock:node-a")...), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.release(rec1); err != nil || n.ifaces[i] == nil {
		t.Fatalf("%v: iface deleted while LUN 2 uses it", err)
	}
	n.reset()
	if err := n.release(rec2); err != nil {
		t.Fatal(err)
	}
	if n.ifaces[i] != nil || n.lines()[len(n.lines())-1] != "iscsiadm -m iface -I "+i+" -o delete" {
		t.Errorf("iface left: %v", n.lines())
	}
	if len(n.markers()) != 0 || n.sessionCount() != 0 {
		t.Errorf("markers %v", n.markers())
	}
}

func TestDedicatedIfaceClonesBase(t *testing.T) {
	n := newNode(t)
	n.ifaces["eth1-iface"] = map[string]string{"iface.transport_name": "tcp", "iface.net_ifacename": "eth1", "iface.hwaddress": "<empty>"}
	v := n.mustParse(plain("1", "iscsiInterface", "eth1-iface", "initiatorName", "iqn.2026-11.io.flexblock:node-a")...)
	if _, _, err := n.acquire(v, false); err != nil {
		t.Fatal(err)
	}
	if f := n.ifaces[v.Iface]; f["iface.net_ifacename"] != "eth1" || f["iface.transport_name"] != "tcp" || f["iface.hwaddress"] != "" || f["iface.initiatorname"] != "iqn.2026-11.io.flexblock:node-a" {
		t.Errorf("iface %v", f)
	}
}

// A driver killed after login but before the state record got its data:
// the retried mount reuses the session and, through the ownership marker,
// the release still logs it out.
func TestCrashAfterLoginStillLogsOut(t *testing.T) {
	n := newNode(t)
	v := n.mustParse(plain("1")...)
	if _, _, err := n.acquire(v, false); err != nil {
		t.Fatal(err)
	}
	st := state.Store{Dir: n.env.Layout.Dir}
	if err := st.Save(&state.Record{Backend: "iscsi", ID: v.ID(), Mode: state.ModePod}); err != nil {
		t.Fatal(err)
	}
	n.reset()
	_, rec, err := n.acquire(v, false)
	if err != nil || len(n.lines()) != 0 {
		t.Fatalf("retry: %v %v", err, n.lines())
	}
	n.reset()
	if err := n.release(rec); err != nil {
		t.Fatal(err)
	}
	n.expectLines(append([]string{"blockdev --flushbufs " + n.dev + "/sda"}, logout...)...)
}

// Release when the session is already gone (logged out by hand, or the
// target died and the admin cleaned up) is success.
func TestReleaseWithSessionGone(t *testing.T) {
	n := newNode(t)
	_, rec, err := n.acquire(n.mustParse(plain("1")...), false)
	if err != nil {
		t.Fatal(err)
	}
	n.removeSession(n.b.findSession(plainIQN, portal1, "default"))
	n.reset()
	if err := n.release(rec); err != nil {
		t.Fatal(err)
	}
	n.expectLines(logout...)
	if len(n.markers()) != 0 || len(n.nodes) != 0 {
		t.Error("left markers or records")
	}
}

func TestExpand(t *testing.T) {
	n := newNode(t)
	v := n.mustParse(plain("1")...)
	_, rec, err := n.acquire(v, false)
	if err != nil {
		t.Fatal(err)
	}
	n.reset()
	err = v.Expand(context.Background(), n.env, rec, 4<<30)
	if err == nil || !strings.Contains(err.Error(), "grow the LUN on the target first") {
		t.Fatalf("ungrown LUN: %v", err)
	}
	n.sizes["sda"] = 4 << 30
	n.reset()
	if err := v.Expand(context.Background(), n.env, rec, 4<<30); err != nil {
		t.Fatal(err)
	}
	if strings.Join(n.writes, ";") != "block/sda/device/rescan=1" || len(n.lines()) != 0 {
		t.Errorf("writes %v commands %v", n.writes, n.lines())
	}
}

func TestExpandMultipath(t *testing.T) {
	n := newNode(t)
	n.onSleep = func(k int) {
		if k == 1 {
			n.addDM(1, "mpathd", "sda", "sdb")
		}
	}
	v := n.mustParse(plain("1", "portals", "10.0.0.2")...)
	_, rec, err := n.acquire(v, false)
	if err != nil {
		t.Fatal(err)
	}
	n.sizes["sda"], n.sizes["sdb"] = 3<<30, 3<<30
	n.script.OnFunc("multipathd resize map", func(runner.Cmd) (runner.Result, error) {
		n.file(filepath.Join(n.sys, "block", "dm-1", "size"), strconv.Itoa(3<<30/512))
		return runner.Result{}, nil
	})
	n.reset()
	if err := v.Expand(context.Background(), n.env, rec, 3<<30); err != nil {
		t.Fatal(err)
	}
	n.expectLines("multipathd resize map mpathd")
	if strings.Join(n.writes, ";") != "block/sda/device/rescan=1;block/sdb/device/rescan=1" {
		t.Errorf("writes %v", n.writes)
	}
}

// A named iface that does not exist is a Failure that says how to fix it,
// before any discovery or login; an existing one is used as given.
func TestNamedIface(t *testing.T) {
	n := newNode(t)
	_, _, err := n.acquire(n.mustParse(plain("1", "iscsiInterface", "eth1-iface")...), false)
	if err == nil || !strings.Contains(err.Error(), `iscsiInterface "eth1-iface" does not exist on this node`) {
		t.Fatalf("err %v", err)
	}
	n.expectLines("iscsiadm -m iface -I eth1-iface")
	n.ifaces["eth1-iface"] = map[string]string{"iface.transport_name": "tcp"}
	n.reset()
	_, rec, err := n.acquire(n.mustParse(plain("1", "iscsiInterface", "eth1-iface")...), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := n.lines(); len(got) != 6 || !strings.HasSuffix(got[5], "-I eth1-iface --login") || rec.ID != plainIQN+"~lun1" {
		t.Errorf("commands %v id %s", got, rec.ID)
	}
	if err := n.release(rec); err != nil || n.ifaces["eth1-iface"] == nil {
		t.Errorf("%v: the administrator's iface must stay", err)
	}
}
