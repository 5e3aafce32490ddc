package iscsi

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// session is one iSCSI session as sysfs shows it.
type session struct {
	Name   string // session7
	Target string // targetname
	Iface  string // ifacename ("" when the kernel does not say)
	Addr   string // connection's persistent_address
	Port   string // connection's persistent_port
	Dev    string // the session's device dir (.../hostH/sessionN)
	Host   int    // SCSI host number, -1 when unknown
}

// sessions lists every iSCSI session on the node.
func (b *Backend) sessions() []session {
	dirs, _ := filepath.Glob(filepath.Join(b.SysRoot, "class", "iscsi_session", "session*"))
	var out []session
	for _, d := range dirs {
		s := session{Name: filepath.Base(d), Host: -1}
		s.Target = readAttr(filepath.Join(d, "targetname"))
		if s.Target == "" {
			continue // being torn down
		}
		s.Iface = readAttr(filepath.Join(d, "ifacename"))
		dev, err := filepath.EvalSymlinks(filepath.Join(d, "device"))
		if err != nil {
			continue
		}
		s.Dev = dev
		if host := filepath.Base(filepath.Dir(dev)); strings.HasPrefix(host, "host") {
			if n, err := strconv.Atoi(host[4:]); err == nil {
				s.Host = n
			}
		}
		sid := strings.TrimPrefix(s.Name, "session")
		conns, _ := filepath.Glob(filepath.Join(b.SysRoot, "class", "iscsi_connection", "connection"+sid+":*"))
		sort.Strings(conns)
		for _, c := range conns {
			s.Addr = readAttr(filepath.Join(c, "persistent_address"))
			s.Port = readAttr(filepath.Join(c, "persistent_port"))
			if s.Addr != "" {
				break
			}
		}
		out = append(out, s)
	}
	return out
}

// findSession returns the session of iqn at portal (host:port with an IP
// host) through iface, or nil.
func (b *Backend) findSession(iqn, portal, iface string) *session {
	for _, s := range b.sessions() {
		if s.matches(iqn, portal, iface) {
			return &s
		}
	}
	return nil
}

func (s *session) matches(iqn, portal, iface string) bool {
	if s.Target != iqn {
		return false
	}
	if s.Iface != "" && s.Iface != iface {
		return false
	}
	host, port, err := net.SplitHostPort(portal)
	if err != nil || port != s.Port {
		return false
	}
	return sameHost(host, s.Addr)
}

func sameHost(a, b string) bool {
	ia, ib := net.ParseIP(a), net.ParseIP(b)
	if ia != nil && ib != nil {
		return ia.Equal(ib)
	}
	return strings.EqualFold(a, b)
}

// lunNumbers are the Linux LUN numbers a LUN may show up as: from 256 on,
// most targets use flat space addressing (0x4000 | lun).
func lunNumbers(lun int) []int {
	if lun >= 256 {
		return []int{lun, 0x4000 | lun}
	}
	return []int{lun}
}

// lunDir is the H:C:T:L dir of lun in the session, or "".
func lunDir(s *session, lun int) string {
	dirs, _ := filepath.Glob(filepath.Join(s.Dev, "target*", "*:*:*:*"))
	want := lunNumbers(lun)
	for _, d := range dirs {
		f := strings.Split(filepath.Base(d), ":")
		if len(f) != 4 {
			continue
		}
		if n, err := strconv.Atoi(f[3]); err == nil && containsInt(want, n) {
			return d
		}
	}
	return ""
}

// lunDevice is the sd device name ("sdb") of lun in the session, or "".
func lunDevice(s *session, lun int) string {
	d := lunDir(s, lun)
	if d == "" {
		return ""
	}
	ents, err := os.ReadDir(filepath.Join(d, "block"))
	if err != nil {
		return ""
	}
	for _, e := range ents {
		if sdName(e.Name()) {
			return e.Name()
		}
	}
	return ""
}

func sdName(n string) bool {
	if !strings.HasPrefix(n, "sd") || len(n) < 3 {
		return false
	}
	for _, r := range n[2:] {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}

// scan asks the kernel to probe only lun on the session's SCSI host: "C T L"
// when the target is known, else "- - L" (every target of this host, which
// is this session only: open-iscsi software sessions have a host each).
func (b *Backend) scan(s *session, lun int) error {
	if s.Host < 0 {
		return fmt.Errorf("session %s has no SCSI host in sysfs", s.Name)
	}
	ct := "- -"
	if ts, _ := filepath.Glob(filepath.Join(s.Dev, "target*:*:*")); len(ts) > 0 {
		f := strings.Split(strings.TrimPrefix(filepath.Base(ts[0]), "target"), ":")
		if len(f) == 3 {
			ct = f[1] + " " + f[2]
		}
	}
	path := filepath.Join(b.SysRoot, "class", "scsi_host", "host"+strconv.Itoa(s.Host), "scan")
	var errs []error
	for _, n := range lunNumbers(lun) {
		if err := b.Write(path, []byte(ct+" "+strconv.Itoa(n))); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) < len(lunNumbers(lun)) {
		return nil // one form was accepted
	}
	return fmt.Errorf("rescan LUN %d of %s: %w", lun, s.Name, errors.Join(errs...))
}

// multipathHolder is the multipath dm device ("dm-3") whose slaves include
// one of sds, and its map name; "" when there is none.
func (b *Backend) multipathHolder(sds []string) (dm, name string) {
	slaves, _ := filepath.Glob(filepath.Join(b.SysRoot, "block", "dm-*", "slaves", "*"))
	sort.Strings(slaves)
	for _, s := range slaves {
		if !contains(sds, filepath.Base(s)) {
			continue
		}
		d := filepath.Base(filepath.Dir(filepath.Dir(s)))
		if !strings.HasPrefix(readAttr(filepath.Join(b.SysRoot, "block", d, "dm", "uuid")), "mpath-") {
			continue // LVM, crypt, ...: not a multipath map
		}
		return d, readAttr(filepath.Join(b.SysRoot, "block", d, "dm", "name"))
	}
	return "", ""
}

// mapComplete says whether the dm map holds every one of sds as a slave
// and is not suspended (multipathd suspends it while reloading its table).
func (b *Backend) mapComplete(dm string, sds []string) bool {
	dir := filepath.Join(b.SysRoot, "block", dm)
	if readAttr(filepath.Join(dir, "dm", "suspended")) == "1" {
		return false
	}
	for _, sd := range sds {
		if !exists(filepath.Join(dir, "slaves", sd)) {
			return false
		}
	}
	return true
}

// sizeBytes is a block device's size from sysfs (0 when unknown).
func (b *Backend) sizeBytes(dev string) int64 {
	n, _ := strconv.ParseInt(readAttr(filepath.Join(b.SysRoot, "block", dev, "size")), 10, 64)
	return n * 512
}

// deleteSD removes an sd device from the kernel; a gone one is fine.
func (b *Backend) deleteSD(sd string) error {
	err := b.Write(filepath.Join(b.SysRoot, "block", sd, "device", "delete"), []byte("1"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", sd, err)
	}
	return nil
}

func (b *Backend) rescanSD(sd string) error {
	if err := b.Write(filepath.Join(b.SysRoot, "block", sd, "device", "rescan"), []byte("1")); err != nil {
		return fmt.Errorf("rescan %s: %w", sd, err)
	}
	return nil
}

// byPath is the sd device udev's by-path link names, or "". A fallback
// only: sysfs is the source of truth and works without udev.
func (b *Backend) byPath(portal, iqn string, lun int) string {
	link := filepath.Join(b.DevRoot, "disk", "by-path", "ip-"+portal+"-iscsi-"+iqn+"-lun-"+strconv.Itoa(lun))
	t, err := filepath.EvalSymlinks(link)
	if err != nil || !sdName(filepath.Base(t)) {
		return ""
	}
	return filepath.Base(t)
}

// writeSysfs writes one value to an existing sysfs attribute.
func writeSysfs(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func readAttr(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func containsInt(list []int, n int) bool {
	for _, x := range list {
		if x == n {
			return true
		}
	}
	return false
}
