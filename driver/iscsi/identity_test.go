package iscsi

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/state"
)

// One LUN through two iscsiInterface/initiatorName values is one volume:
// the second pod joins the first's mount (after Authorize) instead of
// mounting the same LUN a second time.
func TestIDIsTheTargetAndLUN(t *testing.T) {
	n := newNode(t)
	id := n.mustParse(plain("1")...).ID()
	for _, more := range [][]string{
		{"initiatorName", "iqn.2026-11.io.flexblock:node-a"},
		{"initiatorName", "iqn.2026-11.io.flexblock:node-b"},
		{"iscsiInterface", "offload0"},
		{"iscsiInterface", "offload0", "initiatorName", "iqn.2026-11.io.flexblock:node-b"},
		{"portals", "10.0.0.2"},
	} {
		if got := n.mustParse(plain("1", more...)...).ID(); got != id {
			t.Errorf("%q: ID %s, want %s", more, got, id)
		}
	}
	if n.mustParse(plain("2")...).ID() == id || n.mustParse("targetPortal", "10.0.0.1", "iqn", chapIQN, "lun", "1").ID() == id {
		t.Fatal("another LUN or target shares the ID")
	}
}

// Authorize compares the portals, target, LUN and a keyed hash of the
// CHAP credentials with what the session was made with; the record never
// holds a secret, and the key is made once, 0600.
func TestAuthorize(t *testing.T) {
	n := newNode(t)
	_, rec, err := n.acquire(n.mustParse(chapOpts("Chap-Secret-0123")...), false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(rec.Data), "Chap-Secret-0123") {
		t.Fatalf("secret in the record: %s", rec.Data)
	}
	st, err := os.Stat(n.env.Layout.HashKey())
	if err != nil || st.Mode().Perm() != 0o600 || st.Size() < 32 {
		t.Fatalf("hash key: %v %v", err, st)
	}
	key, _ := os.ReadFile(n.env.Layout.HashKey())
	authorize := func(nodeLocal bool, kv ...string) error {
		return n.mustParse(kv...).Authorize(context.Background(), n.env, rec, nodeLocal)
	}
	n.reset()
	if err := authorize(false, chapOpts("Chap-Secret-0123")...); err != nil {
		t.Fatal(err)
	}
	if err := authorize(false, chapOpts("Chap-Secret-0123", "initiatorName", "iqn.2026-11.io.flexblock:node-b")...); err != nil {
		t.Fatal("another initiator name with the same credentials:", err)
	}
	if len(n.lines()) != 0 {
		t.Fatalf("Authorize ran %q", n.lines())
	}
	for name, tc := range map[string]struct {
		kv        []string
		nodeLocal bool
		kind      *errkind.Kind
		want      string
	}{
		"other password":  {chapOpts("Chap-Secret-9999"), false, errkind.Denied, "CHAP"},
		"other user":      {append(chapOpts("Chap-Secret-0123"), "kubernetes.io/secret/node.session.auth.username", secret("eve")), false, errkind.Denied, "CHAP"},
		"no CHAP":         {[]string{"targetPortal", "10.0.0.1", "iqn", chapIQN, "lun", "1"}, false, errkind.Denied, "CHAP"},
		"no credentials":  {[]string{"targetPortal", "10.0.0.1", "iqn", chapIQN, "lun", "1", "chapAuthSession", "true"}, true, errkind.Denied, "credentials"},
		"other portal":    {chapOpts("Chap-Secret-0123", "targetPortal", "10.0.0.2"), false, errkind.Mismatch, "10.0.0.2:3260"},
		"one more portal": {chapOpts("Chap-Secret-0123", "portals", "10.0.0.2"), false, errkind.Mismatch, "10.0.0.2:3260"},
		"other LUN":       {chapOpts("Chap-Secret-0123", "lun", "2"), false, errkind.Mismatch, "LUN"},
	} {
		err := authorize(tc.nodeLocal, tc.kv...)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), chapIQN) {
			t.Errorf("%s: %v", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "Chap-Secret") {
			t.Errorf("%s: secret in the message: %v", name, err)
		}
	}
	if again, _ := os.ReadFile(n.env.Layout.HashKey()); string(again) != string(key) {
		t.Fatal("the hash key changed")
	}

	// A session without CHAP: a pod that brings CHAP is not the same.
	n = newNode(t)
	_, rec, err = n.acquire(n.mustParse(plain("1")...), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.mustParse(plain("1")...).Authorize(context.Background(), n.env, rec, false); err != nil {
		t.Fatal(err)
	}
	// A record of the previous version holds no hash: refused, with the way out.
	old := *rec
	old.Data = json.RawMessage(`{"iqn":"` + plainIQN + `","lun":1,"iface":"default","portals":["10.0.0.1:3260"],"devices":["sda"]}`)
	if err := n.mustParse(plain("1")...).Authorize(context.Background(), n.env, &old, false); !errors.Is(err, errkind.Denied) || !strings.Contains(err.Error(), "older") {
		t.Fatalf("old record: %v", err)
	}
}

// Identify checks the recorded device against the kernel: the sd device
// of this LUN on this target's sessions, its WWID, the multipath map's
// slaves and the node's major:minor.
func TestIdentify(t *testing.T) {
	n := newNode(t)
	v := n.mustParse(plain("1")...)
	dev, rec, err := n.acquire(v, false)
	if err != nil || dev != filepath.Join(n.dev, "sda") {
		t.Fatal(dev, err)
	}
	if err := v.Identify(context.Background(), n.env, rec); err != nil {
		t.Fatal(err)
	}
	mismatch := func(what string, rec *state.Record) {
		t.Helper()
		if err := v.Identify(context.Background(), n.env, rec); !errors.Is(err, errkind.Mismatch) {
			t.Errorf("%s: %v", what, err)
		}
	}
	other := *rec
	other.Device = filepath.Join(n.dev, "sdz")
	mismatch("a device of no session", &other)

	// LUN 2 logged in too: its sd is not this volume's device.
	_, rec2, err := n.acquire(n.mustParse(plain("2")...), false)
	if err != nil {
		t.Fatal(err)
	}
	other.Device = rec2.Device
	mismatch("another LUN's device", &other)

	// The LUN behind the path changed (the target remapped it).
	s := n.b.findSession(plainIQN, portal1, "default")
	n.file(filepath.Join(lunDir(s, 1), "wwid"), "naa.6001405deadbeef")
	mismatch("another WWID", rec)
	n.file(filepath.Join(lunDir(s, 1), "wwid"), fakeWWID(plainIQN, 1))
	if err := v.Identify(context.Background(), n.env, rec); err != nil {
		t.Fatal(err)
	}

	// The node at the recorded path is another device.
	n.devnums["sda"] = [2]uint32{7, 0}
	mismatch("another device number", rec)
	n.devnums["sda"] = [2]uint32{8, 0}

	// The session is gone (its sda with it).
	n.removeSession(s)
	mismatch("session gone", rec)
}

func TestIdentifyMultipath(t *testing.T) {
	n := newNode(t)
	n.onSleep = func(k int) {
		if k == 3 {
			n.addDM(4, "mpatha", "sda", "sdb")
		}
	}
	v := n.mustParse(plain("1", "portals", "10.0.0.2")...)
	_, rec, err := n.acquire(v, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Identify(context.Background(), n.env, rec); err != nil {
		t.Fatal(err)
	}
	// A foreign path in the map.
	n.mkdir(filepath.Join(n.sys, "block", "dm-4", "slaves", "sdq"))
	if err := v.Identify(context.Background(), n.env, rec); !errors.Is(err, errkind.Mismatch) {
		t.Fatalf("foreign slave: %v", err)
	}
	if err := os.Remove(filepath.Join(n.sys, "block", "dm-4", "slaves", "sdq")); err != nil {
		t.Fatal(err)
	}
	// Not a multipath map any more (the number went to an LVM volume).
	n.file(filepath.Join(n.sys, "block", "dm-4", "dm", "uuid"), "LVM-abc")
	if err := v.Identify(context.Background(), n.env, rec); !errors.Is(err, errkind.Mismatch) {
		t.Fatalf("not mpath: %v", err)
	}
}

func TestTools(t *testing.T) {
	if got := New().Tools(); !slices.Equal(got, []string{"iscsiadm", "blockdev", "multipath", "multipathd"}) {
		t.Fatal(got)
	}
}

// A session flexblock logged in with CHAP is reused by another LUN of the
// target only with the same credentials: a wrong password never rides on
// another volume's session.
func TestSessionReuseNeedsTheSameCHAP(t *testing.T) {
	n := newNode(t)
	n.exports[chapIQN] = []int{1, 2}
	if _, _, err := n.acquire(n.mustParse(chapOpts("Chap-Secret-0123")...), false); err != nil {
		t.Fatal(err)
	}
	for _, opts := range [][]string{
		chapOpts("Wrong-Secret", "lun", "2"),
		{"targetPortal", "10.0.0.1", "iqn", chapIQN, "lun", "2"},
	} {
		n.reset()
		_, _, err := n.acquire(n.mustParse(opts...), false)
		if !errors.Is(err, errkind.Denied) || !strings.Contains(err.Error(), "CHAP") || n.sdCount() != 1 {
			t.Fatalf("%q: %v (%d devices)", opts, err, n.sdCount())
		}
		for _, l := range n.lines() {
			if strings.Contains(l, "--login") || strings.Contains(l, "--logout") {
				t.Fatalf("%q ran %s", opts, l)
			}
		}
	}
	n.reset()
	if _, _, err := n.acquire(n.mustParse(chapOpts("Chap-Secret-0123", "lun", "2")...), false); err != nil || n.sdCount() != 2 {
		t.Fatal(err)
	}
}
