package rbd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/flexblock/flexblock/driver/blockdev"
	"github.com/flexblock/flexblock/driver/errkind"
)

// kmapping is one krbd mapping as the kernel shows it in
// /sys/bus/rbd/devices/N: the source of truth for which image a /dev/rbdN
// is (rbd device list only reads the same directory, and a name in a
// record or in /dev proves nothing once the kernel reused the number).
type kmapping struct {
	N            string // the device is /dev/rbdN
	Pool         string
	Namespace    string
	Image        string
	Snapshot     string // "" for the image itself
	ImageID      string
	Major, Minor uint32
}

func (k kmapping) device() string { return "/dev/rbd" + k.N }

// is matches pool, namespace, image and snapshot exactly.
func (k kmapping) is(m mapping) bool {
	return k.Pool == m.Pool && k.Namespace == m.Namespace && k.Image == m.Image && k.Snapshot == m.Snapshot
}

// kernelMappings lists every krbd mapping. A directory missing its pool or
// name is being torn down and is skipped.
func (b *Backend) kernelMappings() ([]kmapping, error) {
	ents, err := os.ReadDir(filepath.Join(b.SysBus, "devices"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // rbd module not loaded: nothing is mapped
	}
	if err != nil {
		return nil, fmt.Errorf("list rbd mappings: %w", err)
	}
	var out []kmapping
	for _, e := range ents {
		if k, ok := b.readMapping(e.Name()); ok {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return devNum(out[i].N) < devNum(out[j].N) })
	return out, nil
}

func devNum(n string) int { i, _ := strconv.Atoi(n); return i }

// readMapping reads /sys/bus/rbd/devices/n.
func (b *Backend) readMapping(n string) (kmapping, bool) {
	if _, err := strconv.ParseUint(n, 10, 32); err != nil {
		return kmapping{}, false
	}
	dir := filepath.Join(b.SysBus, "devices", n)
	attr := func(name string) string {
		raw, _ := os.ReadFile(filepath.Join(dir, name))
		return strings.TrimSpace(string(raw))
	}
	k := kmapping{N: n, Pool: attr("pool"), Namespace: attr("pool_ns"), Image: attr("name"),
		Snapshot: attr("current_snap"), ImageID: attr("image_id")}
	if k.Snapshot == "-" { // the kernel's word for "no snapshot"
		k.Snapshot = ""
	}
	maj, err1 := strconv.ParseUint(attr("major"), 10, 32)
	minor, err2 := strconv.ParseUint(attr("minor"), 10, 32)
	if k.Pool == "" || k.Image == "" || err1 != nil || err2 != nil {
		return kmapping{}, false
	}
	k.Major, k.Minor = uint32(maj), uint32(minor)
	return k, true
}

// byDevice returns the kernel's mapping behind dev (/dev/rbdN).
func (b *Backend) byDevice(dev string) (kmapping, bool) {
	if !deviceRE.MatchString(dev) {
		return kmapping{}, false
	}
	return b.readMapping(strings.TrimPrefix(dev, "/dev/rbd"))
}

// checkNode makes sure the device node is the kernel's device of k: the
// same major:minor (a stale or planted /dev/rbdN is not).
func (b *Backend) checkNode(k kmapping) error {
	d, err := b.DevNumber(k.device())
	if err != nil {
		return errkind.Errorf(errkind.NotFound, "%s (%s): %w", k.device(), spec(k.Pool, k.Namespace, k.Image, k.Snapshot), err)
	}
	if d != (blockdev.Dev{Major: k.Major, Minor: k.Minor}) {
		return errkind.Errorf(errkind.Mismatch, "%s is device %s but the kernel maps %s as %d:%d: the device node is not that mapping's; refusing to use it",
			k.device(), d, spec(k.Pool, k.Namespace, k.Image, k.Snapshot), k.Major, k.Minor)
	}
	return nil
}
