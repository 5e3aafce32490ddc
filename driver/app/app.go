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
	"sort"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/flexvol"
	"github.com/flexblock/flexblock/driver/format"
	"github.com/flexblock/flexblock/driver/logging"
	"github.com/flexblock/flexblock/driver/mount"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/state"
	"github.com/flexblock/flexblock/driver/volume"
)

// backends maps a driver name to its constructor. Test builds add to it.
var backends = map[string]func() volume.Backend{}

// Register adds a backend (called from init of the backend wiring).
func Register(name string, newBackend func() volume.Backend) { backends[name] = newBackend }

// Backends lists the registered backend names.
func Backends() []string {
	var out []string
	for n := range backends {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// IsBackend tells whether name is a registered backend.
func IsBackend(name string) bool { _, ok := backends[name]; return ok }

// Call is one driver invocation.
type Call struct {
	Backend    string
	ConfigPath string
	Args       []string // kubelet's argv after argv[0]
	// Isolate sends the process's own stdout and stderr to the log for the
	// duration of the call (kubelet calls), so stray output can never
	// corrupt the answer.
	Isolate bool
}

// Run performs c and writes the answer to out. It never fails: every
// problem is a Failure answer.
func Run(c Call, out io.Writer) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	start := time.Now()
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
	log := logging.New(writerOf(logFile)).With("backend", c.Backend, "call", callName(c.Args), "volume", flexvol.VolumeOf(c.Args), "pid", os.Getpid())
	var res flexvol.Result
	if cfgErr != nil {
		res = flexvol.Failure(cfgErr)
	} else {
		d := build(c.Backend, cfg, mask, log)
		res = flexvol.Run(ctx, d, c.Args, func(v any, stack []byte) {
			log.Error("panic", "value", fmt.Sprint(v), "stack", string(stack))
		})
	}
	res.Message = mask.Mask(res.Message)
	level := slog.LevelInfo
	if res.Status == flexvol.StatusFailure {
		level = slog.LevelWarn
	}
	log.Log(ctx, level, "call done", "status", res.Status, "message", res.Message, "device", res.Device, "ms", float64(time.Since(start).Microseconds())/1000)
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
	answerFd, err := unix.Dup(int(f.Fd()))
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

// build wires a backend's driver to the real runner.
func build(backend string, cfg *config.Config, mask *logging.Masker, log *slog.Logger) flexvol.Driver {
	run := &runner.Exec{Timeout: cfg.Timeout, Nsenter: cfg.Nsenter, Log: log, Mask: mask}
	return NewDriver(backend, cfg, run, mask, log)
}

// NewDriver wires a backend's driver to a runner (tests pass a scripted
// one) and the mounter and formatter that use it.
func NewDriver(backend string, cfg *config.Config, run runner.Runner, mask *logging.Masker, log *slog.Logger) *volume.Driver {
	mounter := &mount.Tools{Run: run}
	if cfg.Nsenter {
		mounter.MountInfo = "/proc/1/mountinfo"
	}
	env := &volume.Env{Config: cfg, Run: run, Mask: mask, Log: log, Layout: state.Layout{Dir: cfg.StateDir, RecordsDir: cfg.ISCSI.RecordsDir}}
	return &volume.Driver{
		Backend: backends[backend](),
		Env:     env,
		Mounter: mounter,
		Format:  &format.Formatter{Run: run},
		State:   state.Store{Dir: cfg.StateDir},
	}
}
