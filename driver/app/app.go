// Package app runs one FlexVolume call end to end: it loads the config,
// opens the log, builds the backend's driver, dispatches and writes the one
// JSON answer. It owns the process's output: nothing but the answer may
// reach kubelet's pipe.
package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flexblock/flexblock/driver/blockdev"
	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/flexvol"
	"github.com/flexblock/flexblock/driver/format"
	"github.com/flexblock/flexblock/driver/lock"
	"github.com/flexblock/flexblock/driver/logging"
	"github.com/flexblock/flexblock/driver/mount"
	"github.com/flexblock/flexblock/driver/rbd"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/state"
	"github.com/flexblock/flexblock/driver/volume"
)

// Call is one driver invocation.
type Call struct {
	Backend    volume.Backend
	ConfigPath string
	Args       []string // kubelet's argv after argv[0]
	// Isolate sends the process's own stdout and stderr to the log for the
	// duration of the call (kubelet calls), so stray output can never
	// corrupt the answer.
	Isolate bool
	// Observe hears the lifecycle's steps (test builds' crash points).
	Observe func(volume.Step)
}

// Personality tells whether argv0 is an installed driver,
// <plugin dir>/flexblock~NAME/NAME, and which backend it is.
func Personality(argv0 string, all []volume.Backend) (volume.Backend, bool) {
	name := filepath.Base(argv0)
	if filepath.Base(filepath.Dir(argv0)) != "flexblock~"+name {
		return nil, false
	}
	for _, b := range all {
		if b.Name() == name {
			return b, true
		}
	}
	return nil, false
}

// Answer performs c and writes its one answer to out. It never fails: every
// problem is a Failure answer.
func Answer(c Call, out io.Writer) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	start := time.Now()
	name := c.Backend.Name()
	mask := &logging.Masker{}
	cfg, cfgErr := config.Load(c.ConfigPath)
	var logFile *logging.File
	if callName(c.Args) != "init" { // init must stay free of side effects
		logFile = openLog(cfg, mask)
	}
	if logFile != nil {
		defer logFile.Close()
	}
	if c.Isolate {
		out = isolate(out, logFile)
	}
	log := logging.New(writerOf(logFile)).With("backend", name, "call", callName(c.Args), "volume", flexvol.VolumeOf(c.Args), "pid", os.Getpid())
	var res flexvol.Result
	if cfgErr != nil {
		res = flexvol.Failure(cfgErr)
	} else {
		// One deadline for the whole call, well inside kubelet's patience:
		// the per-tool bounds live inside it.
		ctx, cancel := context.WithTimeout(ctx, cfg.CallDeadline())
		defer cancel()
		l := build(c.Backend, cfg, mask, log)
		if callName(c.Args) != "init" {
			// Keys of calls that were killed before they could remove
			// theirs: swept at every call, not only when a key is written.
			if err := rbd.SweepKeys(l.Env.Layout); err != nil {
				log.Warn("key sweep", "error", err.Error())
			}
		}
		l.Observe = c.Observe
		res = flexvol.Handle(ctx, l, c.Args, func(v any, stack []byte) {
			log.Error(logging.EventPanic, "value", fmt.Sprint(v), "stack", logging.Clip(string(stack), logging.MaxAnswer))
		})
	}
	res = res.Bounded(mask.Mask)
	level := slog.LevelInfo
	if res.Status == flexvol.StatusFailure {
		level = slog.LevelWarn
	}
	log.Log(context.Background(), level, logging.EventCallDone, "status", res.Status, "message", res.Message, "device", res.Device, "ms", float64(time.Since(start).Microseconds())/1000)
	_ = flexvol.Write(out, res)
}

func callName(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

func openLog(cfg *config.Config, mask *logging.Masker) *logging.File {
	path, max := config.DefaultLogFile, int64(config.DefaultLogMaxBytes)
	if cfg != nil {
		path, max = cfg.LogFile, cfg.LogMaxBytes
	}
	f, err := logging.Open(path, max, mask)
	if err != nil {
		return nil // the call still works and answers; it is just not logged
	}
	return f
}

func writerOf(f *logging.File) io.Writer {
	if f == nil {
		return nil
	}
	return f
}

// isolate keeps a private copy of the answer's fd and points fds 1 and 2 at
// the log (or /dev/null), so a stray print from anywhere, even a runtime
// fatal error, cannot add bytes to kubelet's pipe.
func isolate(out io.Writer, logFile *logging.File) io.Writer {
	f, ok := out.(*os.File)
	if !ok {
		return out
	}
	// close-on-exec: a tool (or a daemon a tool starts) must never hold
	// kubelet's pipe open after we answer.
	answerFd, err := runner.DupCloexec(int(f.Fd()))
	if err != nil {
		return out
	}
	target := -1
	if logFile != nil {
		target = int(logFile.Fd())
	} else if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
		target = int(null.Fd())
	}
	if target >= 0 {
		_ = unix.Dup2(target, 1)
		_ = unix.Dup2(target, 2)
	}
	return os.NewFile(uintptr(answerFd), "answer")
}

// build wires a backend's lifecycle to the real runner.
func build(b volume.Backend, cfg *config.Config, mask *logging.Masker, log *slog.Logger) *volume.Lifecycle {
	layout := state.Layout{Dir: cfg.StateDir, RecordsDir: cfg.ISCSI.RecordsDir}
	run := &runner.Exec{Timeout: cfg.Timeout, Nsenter: cfg.Nsenter, Log: log, Mask: mask, Dir: layout.Work()}
	return NewLifecycle(b, cfg, run, mask, log)
}

// NewLifecycle wires a backend's lifecycle to a runner (tests pass a
// scripted one) and to the real mounter, formatter, records and locks.
func NewLifecycle(b volume.Backend, cfg *config.Config, run runner.Runner, mask *logging.Masker, log *slog.Logger) *volume.Lifecycle {
	layout := state.Layout{Dir: cfg.StateDir, RecordsDir: cfg.ISCSI.RecordsDir}
	mounter := &mount.Tools{Run: run}
	if cfg.Nsenter {
		mounter.MountInfo = "/proc/1/mountinfo"
	}
	records := state.Store{Dir: layout.Dir, Quarantined: func(file string, err error) {
		log.Warn(logging.EventRecordSetAside, "file", file, "why", err.Error())
	}}
	// The same mount table the mounter reads (the host's in nsenter mode).
	kernel := blockdev.Kernel{Run: run, MountInfo: mounter.MountInfo}
	return &volume.Lifecycle{
		Backend:      b,
		Env:          &volume.Env{Config: cfg, Run: run, Mask: mask, Log: log, Layout: layout},
		Mounter:      mounter,
		Format:       &format.Formatter{Run: run},
		Records:      records,
		Locks:        lock.Dir{Path: layout.Locks()},
		DeviceNumber: blockdev.DeviceNumber,
		Free:         kernel.Free,
	}
}
