// Package state keeps one small JSON record per volume in use on the node,
// so unmount and unmountdevice can work without options, secrets or the API
// server. The default directory is on tmpfs (/run): records live exactly as
// long as the kernel mappings they describe.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Modes of a record.
const (
	// ModePod: attach:false; flexblock owns the global mount and the binds.
	ModePod = "pod"
	// ModeDevice: attach:true; kubelet owns the deviceMountPath and binds.
	ModeDevice = "device"
)

// Version is the record format this driver writes and the only one it
// reads: a record of another version is set aside, never guessed at.
const Version = 1

// Record describes one volume the node uses.
type Record struct {
	Version     int             `json:"version"`
	Backend     string          `json:"backend"`
	ID          string          `json:"id"`
	Mode        string          `json:"mode"`
	Device      string          `json:"device,omitempty"`
	FSType      string          `json:"fsType,omitempty"`
	ReadOnly    bool            `json:"readOnly"`
	GlobalMount string          `json:"globalMount,omitempty"`
	Locks       []string        `json:"locks,omitempty"` // extra lock keys (iSCSI target)
	Data        json.RawMessage `json:"data,omitempty"`  // backend's own, for release
	// Pods are the pod dirs bound to GlobalMount (ModePod), each recorded
	// before its bind, so the last unmount counts the remaining users with
	// statx on these paths instead of reading the whole mount table.
	Pods    []string  `json:"pods,omitempty"`
	Updated time.Time `json:"updated"`
}

// ErrCorrupt marks a record that cannot be read or is not valid.
var ErrCorrupt = errors.New("corrupt state record")

// nameRE is what a backend name or volume id may be (a file name): a
// letter or digit, then at most 252 of letters, digits and . _ ~ : -.
// Hand-written, not a regexp: a bounded repetition compiles to a large
// program at every process start, and every kubelet call is a start.
var nameRE = plainName{}

type plainName struct{}

func (plainName) MatchString(s string) bool {
	if len(s) == 0 || len(s) > 253 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && !strings.ContainsRune("._~:-", rune(c)) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// Validate checks what every record must hold, whatever the backend: a
// known version and mode, and names that are safe as file names. Where
// the paths in it may point is checked by the lifecycle, which knows the
// kubelet root.
func (r *Record) Validate() error {
	switch {
	case r.Version != Version:
		return fmt.Errorf("%w: version %d, this driver reads version %d", ErrCorrupt, r.Version, Version)
	case !nameRE.MatchString(r.Backend) || !nameRE.MatchString(r.ID):
		return fmt.Errorf("%w: backend %q or id %q is not a plain name", ErrCorrupt, r.Backend, r.ID)
	case r.Mode != ModePod && r.Mode != ModeDevice:
		return fmt.Errorf("%w: mode %q", ErrCorrupt, r.Mode)
	}
	return nil
}

// Store is a directory of records, one subdirectory per backend. A record
// that cannot be read or fails Validate is moved to the quarantine dir
// (and reported to Quarantined), so one bad file never blocks the node.
type Store struct {
	Dir string
	// Quarantined, when set, hears of every record set aside.
	Quarantined func(file string, err error)
	// Inspect makes the store read-only: a bad record is an error and
	// stays where it is (for readers that act on nothing, like uninstall).
	Inspect bool
}

func (s Store) layout() Layout { return Layout{Dir: s.Dir} }

func (s Store) path(backend, id string) string {
	return filepath.Join(s.layout().Volumes(), backend, id+".json")
}

// Load returns the record, or nil when there is none (or it was corrupt
// and has been set aside).
func (s Store) Load(backend, id string) (*Record, error) {
	if !nameRE.MatchString(backend) || !nameRE.MatchString(id) {
		return nil, fmt.Errorf("state record name %q/%q is not a plain name", backend, id)
	}
	file := s.path(backend, id)
	b, err := ReadSmallFile(file, maxRecordBytes)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case errors.Is(err, ErrCorrupt):
		return nil, s.quarantine(file, err)
	case err != nil:
		return nil, err
	}
	r, err := decode(b, backend, id, file)
	if err != nil {
		return nil, s.quarantine(file, err)
	}
	return r, nil
}

// decode parses and validates the record file of backend/id.
func decode(b []byte, backend, id, file string) (*Record, error) {
	r := &Record{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if r.Backend != backend || r.ID != id {
		return nil, fmt.Errorf("%w: file %s holds %s/%s", ErrCorrupt, file, r.Backend, r.ID)
	}
	return r, nil
}

// maxRecordBytes bounds a record file: a real one is a few hundred bytes
// (a pod list of thousands stays far below it).
const maxRecordBytes = 1 << 20

// ReadSmallFile reads a file flexblock keeps (a record, a marker, a key)
// without following a symlink, without blocking on a FIFO or device node
// and without reading more than max bytes: a file that is not a regular
// file of at most max bytes is ErrCorrupt, so the caller sets it aside
// instead of hanging or exhausting every later call. A missing file wraps
// fs.ErrNotExist.
func ReadSmallFile(file string, max int64) ([]byte, error) {
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, syscall.ELOOP):
		return nil, fmt.Errorf("%w: %s is a symlink", ErrCorrupt, file)
	case errors.Is(err, fs.ErrNotExist):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", file, err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%w: %s is a %s, not a regular file", ErrCorrupt, file, fi.Mode().Type())
	case fi.Size() > max:
		return nil, fmt.Errorf("%w: %s is %d bytes, more than the %d it can be", ErrCorrupt, file, fi.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: %s grew past %d bytes while read", ErrCorrupt, file, max)
	}
	return b, nil
}

// Quarantine sets r's file aside because of why (found by a caller that
// knows more than Validate: paths outside what flexblock owns).
func (s Store) Quarantine(r *Record, why error) error {
	return s.quarantine(s.path(r.Backend, r.ID), why)
}

// quarantine moves file aside; only a failure to do so is an error.
func (s Store) quarantine(file string, cause error) error {
	if s.Inspect {
		return cause
	}
	dir := s.layout().Quarantine()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%v; and it cannot be set aside: %w", cause, err)
	}
	to := filepath.Join(dir, fmt.Sprintf("%s-%s-%d", filepath.Base(filepath.Dir(file)), filepath.Base(file), time.Now().UnixNano()))
	if err := os.Rename(file, to); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%v; and it cannot be set aside: %w", cause, err)
	}
	if s.Quarantined != nil {
		s.Quarantined(to, cause)
	}
	return nil
}

// Save writes r atomically: temp file, fsync, rename, fsync of the dir.
func (s Store) Save(r *Record) error {
	r.Version = Version
	if err := r.Validate(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(s.path(r.Backend, r.ID), b, 0o600)
}

// Delete removes the record; a missing record is not an error.
func (s Store) Delete(backend, id string) error {
	if !nameRE.MatchString(backend) || !nameRE.MatchString(id) {
		return fmt.Errorf("state record name %q/%q is not a plain name", backend, id)
	}
	err := os.Remove(s.path(backend, id))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete state: %w", err)
	}
	return nil
}

// List returns all valid records of a backend ("" for every backend);
// invalid ones are set aside on the way.
func (s Store) List(backend string) ([]*Record, error) {
	pattern := filepath.Join(s.layout().Volumes(), "*", "*.json")
	if backend != "" {
		pattern = filepath.Join(s.layout().Volumes(), backend, "*.json")
	}
	files, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, f := range files {
		id := strings.TrimSuffix(filepath.Base(f), ".json")
		be := filepath.Base(filepath.Dir(f))
		if !nameRE.MatchString(be) || !nameRE.MatchString(id) {
			if err := s.quarantine(f, fmt.Errorf("%w: file name %s", ErrCorrupt, f)); err != nil {
				return nil, err
			}
			continue
		}
		r, err := s.Load(be, id)
		if err != nil {
			return nil, err
		}
		if r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// TempMarker is in the name of every temp file WriteFileAtomic makes
// (".<name>.tmp-<random>"), so a sweep can find the ones a killed writer left.
const TempMarker = ".tmp-"

// WriteFileAtomic writes data to path so readers (the driver's next call,
// kubelet's prober) see the old file or the new one, never a partial one: a
// dot-named temp file in the same directory, chmod, fsync, rename, fsync of
// the directory. A running old executable keeps its inode ("text file busy"
// never happens). The one atomic write of the project: state, markers and
// the installer all use it.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+TempMarker+"*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Chmod(mode); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes a directory's entries (a rename, a removal) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
