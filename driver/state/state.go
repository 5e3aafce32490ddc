// Package state keeps one small JSON record per volume in use on the node,
// so unmount and unmountdevice can work without options, secrets or the API
// server. The default directory is on tmpfs (/run): records live exactly as
// long as the kernel mappings they describe.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Modes of a record.
const (
	// ModePod: attach:false; flexblock owns the global mount and the binds.
	ModePod = "pod"
	// ModeDevice: attach:true; kubelet owns the deviceMountPath and binds.
	ModeDevice = "device"
)

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
	// before its bind. PodsRecorded marks records written by a driver that
	// records every bind: only for those may unmount count the remaining
	// users from Pods (checked with statx) instead of reading the whole
	// mount table.
	Pods         []string  `json:"pods,omitempty"`
	PodsRecorded bool      `json:"podsRecorded,omitempty"`
	Updated      time.Time `json:"updated"`
}

// Store is a directory of records, one subdirectory per backend.
type Store struct{ Dir string }

func (s Store) path(backend, id string) string {
	return filepath.Join(s.Dir, "volumes", backend, id+".json")
}

// Load returns the record, or nil when there is none.
func (s Store) Load(backend, id string) (*Record, error) {
	b, err := os.ReadFile(s.path(backend, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	r := &Record{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("state record %s is corrupt: %w", s.path(backend, id), err)
	}
	return r, nil
}

// Save writes r atomically: temp file, fsync, rename, fsync of the dir.
func (s Store) Save(r *Record) error {
	r.Version = 1
	r.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(s.path(r.Backend, r.ID), b, 0o600)
}

// Delete removes the record; a missing record is not an error.
func (s Store) Delete(backend, id string) error {
	err := os.Remove(s.path(backend, id))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete state: %w", err)
	}
	return nil
}

// List returns all records of a backend ("" for every backend).
func (s Store) List(backend string) ([]*Record, error) {
	pattern := filepath.Join(s.Dir, "volumes", "*", "*.json")
	if backend != "" {
		pattern = filepath.Join(s.Dir, "volumes", backend, "*.json")
	}
	files, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, f := range files {
		id := strings.TrimSuffix(filepath.Base(f), ".json")
		r, err := s.Load(filepath.Base(filepath.Dir(f)), id)
		if err != nil {
			return nil, err
		}
		if r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// WriteFileAtomic writes data to path so readers see the old or the new
// content, never a mix: a dot-named temp file in the same directory, fsync,
// rename, fsync of the directory.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
