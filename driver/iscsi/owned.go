package iscsi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/flexblock/flexblock/driver/state"
	"github.com/flexblock/flexblock/driver/volume"
)

// Kinds of open-iscsi objects the driver may own.
const (
	ownSession   = "session"   // a session flexblock logged in
	ownNode      = "node"      // a node record flexblock created
	ownDiscovery = "discovery" // a discovery record flexblock created
	ownIface     = "iface"     // a dedicated iface flexblock created
)

// owned records, one small file per object, which sessions and records
// flexblock created, so that the last flexblock user of a target logs out
// a session another volume logged in, and nothing an administrator made
// is ever logged out or deleted. The marker is written BEFORE the object
// is made, so a driver killed in between leaves a marker, never an
// unowned object. Session markers live in the state dir, which vanishes
// with a reboot as sessions do; the markers of records, which open-iscsi
// keeps on disk, live in the persistent records dir.
type owned struct{ sessions, records string }

func ownedIn(env *volume.Env) owned {
	return owned{sessions: env.Layout.ISCSISessions(), records: env.Layout.ISCSIRecords()}
}

func (o owned) dir(m marker) string {
	if m.Kind == ownSession {
		return o.sessions
	}
	return o.records
}

type marker struct {
	Kind   string `json:"kind"`
	IQN    string `json:"iqn,omitempty"`
	Portal string `json:"portal,omitempty"`
	Iface  string `json:"iface,omitempty"`
	// CHAP is the keyed hash of the credentials a session was logged in
	// with (see grant), so a later volume reuses it only with the same.
	CHAP string `json:"chap,omitempty"`
}

func (m marker) path(dir string) string {
	sum := sha256.Sum256([]byte(m.Kind + "\x00" + m.IQN + "\x00" + m.Portal + "\x00" + m.Iface))
	return filepath.Join(dir, m.Kind+"-"+hex.EncodeToString(sum[:12])+".json")
}

func (o owned) has(m marker) bool {
	_, err := os.Stat(m.path(o.dir(m)))
	return err == nil
}

// get reads the marker of m's object; false when flexblock does not own it.
func (o owned) get(m marker) (marker, bool) {
	b, err := os.ReadFile(m.path(o.dir(m)))
	if err != nil {
		return marker{}, false
	}
	var got marker
	return got, json.Unmarshal(b, &got) == nil
}

func (o owned) set(m marker) error {
	b, _ := json.Marshal(m)
	return state.WriteFileAtomic(m.path(o.dir(m)), b, 0o600)
}

func (o owned) clear(m marker) error {
	err := os.Remove(m.path(o.dir(m)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func sessionMarker(iqn, portal, iface string) marker {
	return marker{Kind: ownSession, IQN: iqn, Portal: portal, Iface: iface}
}

func nodeMarker(iqn, portal, iface string) marker {
	return marker{Kind: ownNode, IQN: iqn, Portal: portal, Iface: iface}
}

func discoveryMarker(portal string) marker { return marker{Kind: ownDiscovery, Portal: portal} }

func ifaceMarker(iface string) marker { return marker{Kind: ownIface, Iface: iface} }
