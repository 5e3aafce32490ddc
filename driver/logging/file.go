package logging

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// File is an append-only log file that keeps at most one ".1" backup: when
// the file passes maxBytes it is renamed and a new one started. Every write
// goes through the Masker.
type File struct {
	mu       sync.Mutex
	path     string
	maxBytes int64
	f        *os.File
	size     int64
	mask     *Masker
}

// Open opens (creating 0600, with its directory 0700) the log file.
func Open(path string, maxBytes int64, mask *Masker) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	lf := &File{path: path, maxBytes: maxBytes, mask: mask}
	if err := lf.open(); err != nil {
		return nil, err
	}
	return lf, nil
}

func (lf *File) open() error {
	f, err := os.OpenFile(lf.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	lf.f, lf.size = f, st.Size()
	return nil
}

// Write masks p and appends it, rotating first when the file is full.
// Each slog record arrives as one Write, so a line is never split.
func (lf *File) Write(p []byte) (int, error) {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.maxBytes > 0 && lf.size+int64(len(p)) > lf.maxBytes {
		lf.rotate()
	}
	masked := []byte(lf.mask.Mask(string(p)))
	n, err := lf.f.Write(masked)
	lf.size += int64(n)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// rotate renames the file to ".1" (replacing the old backup). When another
// driver process rotated already (the path is a new file), we only reopen,
// so a fresh log is never renamed over the backup.
func (lf *File) rotate() {
	onDisk, err1 := os.Stat(lf.path)
	ours, err2 := lf.f.Stat()
	if err1 == nil && err2 == nil && os.SameFile(onDisk, ours) {
		_ = os.Rename(lf.path, lf.path+".1")
	}
	lf.f.Close()
	if err := lf.open(); err != nil {
		lf.f, _ = os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
}

// Fd exposes the descriptor so stray process output can be sent here.
func (lf *File) Fd() uintptr { return lf.f.Fd() }

// Close closes the file.
func (lf *File) Close() error { return lf.f.Close() }

// New returns a JSON slog logger writing to w (io.Discard when nil).
func New(w io.Writer) *slog.Logger {
	if w == nil {
		w = io.Discard
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
