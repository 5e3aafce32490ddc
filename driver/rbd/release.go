package rbd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/state"
	"github.com/flexblock/flexblock/driver/volume"
)

// Release unmaps the device from the state record alone: `rbd unmap` needs
// no credentials. The mapping is found in sysfs: a device that is gone, or
// now maps another image (it was unmapped and its number reused), counts
// as released. A record without data (the driver died inside Acquire) is
// matched by the image its ID names, in this version's IDs and in the
// previous version's.
func (b *Backend) Release(ctx context.Context, env *volume.Env, rec *state.Record) error {
	m, ok := recorded(rec)
	if !ok {
		if len(rec.Data) > 0 {
			env.Log.Warn("unreadable rbd data in the state record and an ID that names no image", "id", rec.ID)
		}
		return nil // not ours to interpret: nothing was mapped
	}
	list, err := b.kernelMappings()
	if err != nil {
		return err
	}
	var errs []error
	for _, k := range list {
		if k.is(m) && (m.Device == "" || k.device() == m.Device) && sameImage(k.ImageID, m.ImageID) {
			errs = append(errs, b.unmap(ctx, env, k.device()))
		}
	}
	return errors.Join(errs...)
}

// unmap runs `rbd unmap DEV` (with -o force only when the config allows
// it). "Not mapped", or the device gone from sysfs after a failure, count
// as success.
func (b *Backend) unmap(ctx context.Context, env *volume.Env, dev string) error {
	args := []string{"unmap", dev}
	if env.Config.RBD.AllowForceUnmap {
		args = append(args, "-o", "force")
	}
	_, err := env.Run.Run(ctx, runner.Cmd{Name: "rbd", Args: args})
	if err == nil {
		env.Log.Info("unmapped", "device", dev)
		return nil
	}
	var ee *runner.ExitError
	if errors.As(err, &ee) && (strings.Contains(ee.Stderr, "not a mapped image") || strings.Contains(ee.Stderr, "not mapped")) {
		return nil
	}
	if _, mapped := b.byDevice(dev); !mapped {
		return nil
	}
	hint := ""
	if strings.Contains(err.Error(), "(16) Device or resource busy") {
		hint = " (still open: a mount or a process uses it; rbd.allowForceUnmap in the driver config forces it)"
	}
	return fmt.Errorf("unmap %s: %w%s", dev, err, hint)
}

// Expand grows the image when it is smaller than newSize, with node-local
// credentials (expandfs gets no Secret), then waits until the kernel
// device shows the new size. The core grows the filesystem afterwards.
func (v *Volume) Expand(ctx context.Context, env *volume.Env, rec *state.Record, newSize int64) error {
	if cur := v.b.kernelSize(rec.Device); cur >= newSize {
		return nil // already grown (maybe by the operator): just the filesystem
	}
	auth, done, err := v.auth(env, true)
	if err != nil {
		return fmt.Errorf("grow %s to %d bytes: %w; or grow the image yourself (rbd resize --size %dM %s) and retry", v.ImageSpec(), newSize, err, mib(newSize), v.imageOnly())
	}
	defer done()
	info, err := v.info(ctx, env, auth)
	if err != nil {
		return err
	}
	if info.Size < newSize {
		args := []string{"resize", v.imageOnly(), "--size", strconv.FormatInt(mib(newSize), 10) + "M"}
		if _, err := v.rbd(ctx, env, auth, false, args...); err != nil {
			return fmt.Errorf("grow %s: %w", v.ImageSpec(), v.cephError(err, auth))
		}
		env.Log.Info("resized image", "image", v.ImageSpec(), "bytes", newSize)
	}
	return v.b.waitKernelSize(ctx, rec.Device, newSize)
}

// mib rounds bytes up to whole MiB (rbd's --size unit "M").
func mib(n int64) int64 { return (n + (1 << 20) - 1) >> 20 }

// kernelSize is the mapped device's size in bytes from sysfs (0 if unknown).
func (b *Backend) kernelSize(dev string) int64 {
	if dev == "" {
		return 0
	}
	raw, err := os.ReadFile(filepath.Join(b.SysBlock, filepath.Base(dev), "size"))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	return n * 512
}

// waitKernelSize waits for krbd to pick up the new size: the resize
// notifies it through the header watch, asynchronously.
func (b *Backend) waitKernelSize(ctx context.Context, dev string, want int64) error {
	deadline := b.Now().Add(10 * time.Second)
	for b.kernelSize(dev) < want {
		if b.Now().After(deadline) {
			return fmt.Errorf("%s still shows %d bytes 10s after the resize to %d", dev, b.kernelSize(dev), want)
		}
		if err := b.Sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}
