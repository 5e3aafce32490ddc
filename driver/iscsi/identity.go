package iscsi

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/state"
	"github.com/flexblock/flexblock/driver/volume"
)

// grant is what a session was made with, kept in the record so a pod that
// joins the mount is compared with it: the portals as the options named
// them, and a keyed hash of the CHAP credentials (never the secrets).
type grant struct {
	Portals []string `json:"portals"`
	CHAP    string   `json:"chap,omitempty"`
}

// grantOf is the grant of v with the credentials disc and sess.
func (v *Volume) grantOf(env *volume.Env, disc, sess *chap) (*grant, error) {
	g := &grant{Portals: portalSet(v.Portals)}
	if disc == nil && sess == nil {
		return g, nil
	}
	key, err := hashKey(env.Layout.HashKey())
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, key)
	for _, c := range []*chap{disc, sess} {
		if c == nil {
			mac.Write([]byte{0})
			continue
		}
		for _, f := range []string{c.User, c.Pass, c.UserIn, c.PassIn} {
			// Length-prefixed: no two credential sets write the same bytes.
			mac.Write([]byte(strconv.Itoa(len(f)) + ":" + f))
		}
	}
	g.CHAP = hex.EncodeToString(mac.Sum(nil))
	return g, nil
}

func portalSet(portals []string) []string {
	out := slices.Clone(portals)
	slices.Sort(out)
	return slices.Compact(out)
}

// hashKey returns the node-local HMAC key, making it (32 random bytes,
// 0600, O_EXCL|O_NOFOLLOW) on first use.
func hashKey(path string) ([]byte, error) {
	for range 2 {
		key, err := readKey(path)
		if !errors.Is(err, fs.ErrNotExist) {
			return key, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("hash key: %w", err)
		}
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("hash key: %w", err)
		}
		err = writeKey(path, key)
		if errors.Is(err, fs.ErrExist) {
			continue // another call made it first: use that one
		}
		return key, err
	}
	return nil, fmt.Errorf("hash key %s: cannot be read or made", path)
}

func readKey(path string) ([]byte, error) {
	// O_NONBLOCK: a FIFO planted here must fail the check, not hang it.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fs.ErrNotExist
		}
		return nil, fmt.Errorf("hash key %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("hash key %s: not a private regular file: remove it (it is made again)", path)
	}
	key, err := io.ReadAll(io.LimitReader(f, 64))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("hash key %s: unreadable or not 32 bytes: remove it (it is made again)", path)
	}
	return key, nil
}

func writeKey(path string, key []byte) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fs.ErrExist
		}
		return fmt.Errorf("hash key %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	_, err = f.Write(key)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("hash key %s: %w", path, err)
	}
	return nil
}

// Authorize implements volume.Spec: the joining pod must name the same
// target, LUN and portals, and bring the same CHAP credentials (compared
// by keyed hash), as the session the mount was made on. Nothing runs.
func (v *Volume) Authorize(_ context.Context, env *volume.Env, rec *state.Record, nodeLocal bool) error {
	a, ok := attachmentOf(rec)
	if !ok {
		return errkind.Errorf(errkind.Mismatch, "volume %s~lun%d: the record of its mount on this node has no iSCSI data to compare with", v.IQN, v.LUN)
	}
	if a.IQN != v.IQN || a.LUN != v.LUN {
		return errkind.Errorf(errkind.Mismatch, "the mount on this node is LUN %d of %s, not LUN %d of %s", a.LUN, a.IQN, v.LUN, v.IQN)
	}
	if a.Grant == nil {
		return errkind.Errorf(errkind.Denied, "LUN %d of %s is mounted on this node by an older flexblock that did not record its credentials: this pod cannot be checked against them; stop the pods using it so it is mounted afresh", v.LUN, v.IQN)
	}
	if mine := portalSet(v.Portals); !slices.Equal(mine, a.Grant.Portals) {
		return errkind.Errorf(errkind.Mismatch, "LUN %d of %s is mounted on this node through the portals %s; this pod names %s: use the same targetPortal and portals",
			v.LUN, v.IQN, strings.Join(a.Grant.Portals, ","), strings.Join(mine, ","))
	}
	disc, sess, err := v.credentials(env, nodeLocal)
	if err != nil {
		return errkind.Errorf(errkind.Denied, "LUN %d of %s is mounted on this node, but this pod's CHAP credentials cannot be checked: %w", v.LUN, v.IQN, err)
	}
	g, err := v.grantOf(env, disc, sess)
	if err != nil {
		return err
	}
	if !hmac.Equal([]byte(g.CHAP), []byte(a.Grant.CHAP)) {
		return errkind.Errorf(errkind.Denied, "LUN %d of %s is mounted on this node with other CHAP credentials (or CHAP settings) than this pod's: fix the Secret and chapAuthDiscovery/chapAuthSession of this pod", v.LUN, v.IQN)
	}
	return nil
}

// Identify implements volume.Spec: rec.Device must still be, in sysfs,
// this LUN's sd device on one of the recorded sessions of the target (or
// the multipath map built only on those), with the LUN's WWID, and the
// node must be that device (major:minor).
func (v *Volume) Identify(_ context.Context, _ *volume.Env, rec *state.Record) error {
	a, ok := attachmentOf(rec)
	if !ok || a.IQN != v.IQN || a.LUN != v.LUN {
		return errkind.Errorf(errkind.Mismatch, "the record of %s holds no iSCSI data for LUN %d of %s", rec.Device, v.LUN, v.IQN)
	}
	return v.b.identify(rec.Device, a)
}

// lunPaths are the sd devices of a's LUN on its sessions now.
func (b *Backend) lunPaths(a attachment) []string {
	var sds []string
	for _, p := range a.Portals {
		if s := b.findSession(a.IQN, p, a.Iface); s != nil {
			if sd := lunDevice(s, a.LUN); sd != "" {
				sds = append(sds, sd)
			}
		}
	}
	return sds
}

// lunWWID is the one WWID of the sd devices (an error when they differ or
// one has none: then they are not paths of one LUN).
func (b *Backend) lunWWID(sds []string) (string, error) {
	var w string
	for _, sd := range sds {
		got := readAttr(filepath.Join(b.SysRoot, "block", sd, "device", "wwid"))
		if got == "" {
			return "", nil // the kernel gives none (old kernels, some targets)
		}
		if w != "" && got != w {
			return "", errkind.Errorf(errkind.Mismatch, "the paths %s are not one LUN: their WWIDs differ (%s, %s): check that every portal leads to the same target", strings.Join(sds, ", "), w, got)
		}
		w = got
	}
	return w, nil
}

func (b *Backend) identify(dev string, a attachment) error {
	what := fmt.Sprintf("LUN %d of %s", a.LUN, a.IQN)
	sds := b.lunPaths(a)
	if len(sds) == 0 {
		return errkind.Errorf(errkind.Mismatch, "%s has no device on this node any more (its sessions or the LUN are gone): %s is not it", what, dev)
	}
	w, err := b.lunWWID(sds)
	if err != nil {
		return err
	}
	if a.WWID != "" && w != a.WWID {
		return errkind.Errorf(errkind.Mismatch, "%s now has WWID %s, not %s: the target maps another disk at that LUN; refusing to use %s", what, w, a.WWID, dev)
	}
	real, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return errkind.Errorf(errkind.Mismatch, "%s (%s): %w", dev, what, err)
	}
	name := filepath.Base(real)
	if err := b.isLUNDevice(name, sds); err != nil {
		return errkind.Errorf(errkind.Mismatch, "%s is not %s: %w", dev, what, err)
	}
	d, err := b.DevNumber(dev)
	if err != nil {
		return errkind.Errorf(errkind.Mismatch, "%s (%s): %w", dev, what, err)
	}
	if want := readAttr(filepath.Join(b.SysRoot, "block", name, "dev")); want != d.String() {
		return errkind.Errorf(errkind.Mismatch, "%s is device %s, but the kernel's %s is %s: the node is not %s", dev, d, name, want, what)
	}
	return nil
}

// isLUNDevice: name is one of sds, or a multipath map whose every slave is.
func (b *Backend) isLUNDevice(name string, sds []string) error {
	if sdName(name) {
		if !contains(sds, name) {
			return fmt.Errorf("%s is not a path of it (its paths are %s)", name, strings.Join(sds, ", "))
		}
		return nil
	}
	dir := filepath.Join(b.SysRoot, "block", name)
	if !strings.HasPrefix(name, "dm-") || !strings.HasPrefix(readAttr(filepath.Join(dir, "dm", "uuid")), "mpath-") {
		return fmt.Errorf("%s is neither one of its paths (%s) nor a multipath map", name, strings.Join(sds, ", "))
	}
	slaves, _ := os.ReadDir(filepath.Join(dir, "slaves"))
	if len(slaves) == 0 {
		return fmt.Errorf("the multipath map %s holds no path", name)
	}
	for _, s := range slaves {
		if !contains(sds, s.Name()) {
			return fmt.Errorf("the multipath map %s holds %s, which is not one of its paths (%s)", name, s.Name(), strings.Join(sds, ", "))
		}
	}
	return nil
}
