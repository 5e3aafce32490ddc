package installer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"
)

// Serve installs, then keeps the install in place until ctx ends: every
// interval it compares the installed files with what it wrote (inode, size,
// mode, mtime) and installs again when one was removed or changed. Meanwhile
// it copies the driver log (logFile, "" for none) to out, tail -F style,
// so `kubectl logs` shows driver activity. The first install's error is
// returned; later ones are reported on out and retried.
func Serve(ctx context.Context, o Options, logFile string, out io.Writer, interval time.Duration) error {
	out = &lockedWriter{w: out}
	res, err := Install(o)
	if err != nil {
		return err
	}
	Report(out, res)
	fmt.Fprintf(out, "installer: watching %s every %s; following %s\n", o.PluginDir, interval, logFile)
	var wg sync.WaitGroup
	if logFile != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			Follow(ctx, logFile, out, 500*time.Millisecond)
		}()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	lastFull := time.Now()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			fmt.Fprintln(out, "installer: stopping; the drivers stay installed (volumes in use need them)")
			return nil
		case <-t.C:
		}
		// Cheap stat checks each tick; a full check (hashes) every
		// fullCheck, in case a change kept size, mtime and inode.
		if !failing && unchanged(res) && time.Since(lastFull) < fullCheck {
			continue
		}
		lastFull = time.Now()
		res2, err := Install(o)
		if err != nil {
			fmt.Fprintf(out, "installer: ERROR: re-install failed (retrying every %s): %v\n", interval, err)
			failing = true
			continue
		}
		failing = false
		if res2.Changed() {
			fmt.Fprintln(out, "installer: installed files were removed or changed; restored them")
			for _, f := range res2.Files {
				if f.Action != Unchanged {
					fmt.Fprintf(out, "installer: %-9s %s\n", f.Action, f.Path)
				}
			}
		}
		res = res2
	}
}

// Report prints what an install did, one line per file.
func Report(w io.Writer, res *Result) {
	for _, f := range res.Files {
		fmt.Fprintf(w, "installer: %-9s %s\n", f.Action, f.Path)
	}
}

type fileID struct {
	exists          bool
	dev, ino        uint64
	size, mtimeNano int64
	mode            fs.FileMode
}

// fullCheck is how often the running installer re-hashes everything.
const fullCheck = time.Minute

// unchanged tells whether every file still has the identity it had right
// after the install wrote or verified it.
func unchanged(res *Result) bool {
	for _, f := range res.Files {
		if now := statID(f.Path); !now.exists || now != f.id {
			return false
		}
	}
	return true
}

func statID(path string) fileID {
	st, err := os.Lstat(path)
	if err != nil {
		return fileID{}
	}
	id := fileID{exists: true, size: st.Size(), mtimeNano: st.ModTime().UnixNano(), mode: st.Mode()}
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(s.Dev), s.Ino
	}
	return id
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Follow copies what is appended to path to out until ctx ends, like
// tail -F: it starts at the current end, waits for a missing file, and
// after a rotation (the file renamed to .1 and a new one created) drains
// the old file and continues with the new one from its start. A truncated
// file is read again from its start.
func Follow(ctx context.Context, path string, out io.Writer, poll time.Duration) {
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	if g, err := os.Open(path); err == nil {
		if _, err := g.Seek(0, io.SeekEnd); err == nil {
			f = g
		} else {
			g.Close()
		}
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if f == nil {
			if g, err := os.Open(path); err == nil {
				f = g
			}
		}
		if f != nil {
			copyAvailable(f, out)
			onDisk, err1 := os.Stat(path)
			ours, err2 := f.Stat()
			switch {
			case err1 != nil && errors.Is(err1, fs.ErrNotExist):
				// Renamed away and not yet recreated: keep reading the old
				// file until the new one appears.
			case err1 == nil && err2 == nil && !os.SameFile(onDisk, ours):
				copyAvailable(f, out) // the rest of the rotated file
				f.Close()
				f = nil
				if g, err := os.Open(path); err == nil {
					f = g
					copyAvailable(f, out)
				}
			case err2 == nil:
				if pos, err := f.Seek(0, io.SeekCurrent); err == nil && ours.Size() < pos {
					_, _ = f.Seek(0, io.SeekStart) // truncated
					copyAvailable(f, out)
				}
			}
		}
		select {
		case <-ctx.Done():
			if f != nil {
				copyAvailable(f, out)
			}
			return
		case <-t.C:
		}
	}
}

func copyAvailable(f *os.File, out io.Writer) {
	_, _ = io.Copy(out, f)
}
