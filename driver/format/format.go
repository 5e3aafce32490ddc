// Package format decides, safely, whether a device may be formatted, and
// formats and checks it. The rule: format only a device that blkid finds
// blank AND that reads as zeros everywhere CheckZeros looks AND that is
// used read-write. Everything else is a refusal: data loss is never the
// fallback.
package format

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/filesystem"
	"github.com/flexblock/flexblock/driver/internal/wait"
	"github.com/flexblock/flexblock/driver/runner"
)

// Probe is what blkid found on a device.
type Probe struct {
	Blank  bool
	Type   string // filesystem or other signature (crypto_LUKS, LVM2_member, ...)
	PTType string // partition table
}

// Formatter formats and checks devices through the runner.
type Formatter struct {
	Run runner.Runner
	// ReadCheck checks the device reads as zeros (CheckZeros); tests
	// replace it. A *NonZeroError is a refusal, any other error a read
	// failure worth a retry.
	ReadCheck func(dev string) error
	// Sleep waits between read attempts; tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error
}

// readAttempts bounds how often a blank probe plus read check is tried.
// A fresh path (a multipath map being assembled over new LUN paths, a
// device just mapped) can fail a read transiently; a device that keeps
// failing is refused.
const readAttempts = 3

// Prepare makes dev ready to mount as fsType: it probes, formats a blank
// read-write device, refuses anything else that is not fsType, and runs
// fsck before a read-write ext mount. It returns whether it formatted.
func (f *Formatter) Prepare(ctx context.Context, dev, fsType string, readOnly bool, mkfsOpts []string) (bool, error) {
	for attempt := 1; ; attempt++ {
		p, err := f.Probe(ctx, dev)
		if err != nil {
			return false, err
		}
		if !p.Blank {
			return false, f.prepareExisting(ctx, p, dev, fsType, readOnly)
		}
		if readOnly {
			return false, errkind.Errorf(errkind.Mismatch, "device %s is blank and the volume is read-only: flexblock never formats a read-only volume; mount it read-write once to format it", dev)
		}
		// blkid also says "blank" when it cannot read, and when it does
		// not recognise what is there: only a probe followed by a good
		// read of zeros, in the same attempt, is trusted, so a retry
		// re-probes too.
		err = f.readCheck(dev)
		var nz *NonZeroError
		if errors.As(err, &nz) {
			return false, notBlank(dev, nz)
		}
		if err == nil {
			if err := f.Mkfs(ctx, dev, fsType, mkfsOpts); err != nil {
				return false, err
			}
			return true, nil
		}
		if attempt == readAttempts {
			return false, errkind.Errorf(errkind.NotBlank, "device %s looks blank but cannot be read (%v, %d attempts): refusing to format it, since an unreadable device always looks blank", dev, err, attempt)
		}
		if err := f.sleep(ctx, time.Duration(attempt)*500*time.Millisecond); err != nil {
			return false, err
		}
	}
}

// notBlank is the refusal of data blkid does not recognise, with the way
// forward: only the operator can tell a damaged filesystem from scratch.
func notBlank(dev string, nz *NonZeroError) error {
	return errkind.Errorf(errkind.NotBlank, "device %s is not blank (%v) and holds no filesystem blkid recognises: flexblock will not format it; inspect it (blkid -p, file -s, hexdump), and if it really is scratch, wipe it (wipefs -a / blkdiscard) first", dev, nz)
}

// prepareExisting checks a device that holds a signature and runs fsck
// before a read-write mount.
func (f *Formatter) prepareExisting(ctx context.Context, p Probe, dev, fsType string, readOnly bool) error {
	if err := p.check(dev, fsType); err != nil {
		return err
	}
	if !readOnly {
		return f.Fsck(ctx, dev, fsType)
	}
	return nil
}

func (f *Formatter) sleep(ctx context.Context, d time.Duration) error {
	if f.Sleep != nil {
		return f.Sleep(ctx, d)
	}
	return wait.Sleep(ctx, d)
}

func (p Probe) check(dev, fsType string) error {
	switch {
	case p.PTType != "":
		return errkind.Errorf(errkind.Mismatch, "device %s holds a %s partition table: flexblock does not format or mount partitioned devices; wipe it (wipefs -a) only if its data is not needed", dev, p.PTType)
	case p.Type == "":
		return errkind.Errorf(errkind.NotBlank, "device %s holds a signature blkid cannot name: refusing to format or mount it", dev)
	case p.Type == fsType:
		return nil
	case filesystem.Lookup(p.Type) == nil:
		// Never suggest fsType=crypto_LUKS or swap: only a filesystem of
		// the table is a fix.
		return errkind.Errorf(errkind.Mismatch, "device %s holds a %s signature, which is not a filesystem flexblock mounts (%s): flexblock will not format or mount it; inspect it (blkid -p), and wipe it (wipefs -a) only if its data is not needed", dev, p.Type, strings.Join(filesystem.Names(), ", "))
	}
	return errkind.Errorf(errkind.Mismatch, "device %s holds %s but the volume asks for fsType %s: set fsType to %s, or wipe the device (wipefs -a) only if its data is not needed", dev, p.Type, fsType, p.Type)
}

// Probe runs blkid in low-level probe mode (no cache).
func (f *Formatter) Probe(ctx context.Context, dev string) (Probe, error) {
	res, err := f.Run.Run(ctx, runner.Cmd{Name: "blkid", Args: []string{"-p", "-s", "TYPE", "-s", "PTTYPE", "-o", "export", dev}, Quiet: true})
	switch code := runner.ExitCode(err); {
	case err == nil:
		return parseExport(string(res.Stdout)), nil
	case code == 2:
		// No signature, or the device could not be read: the caller checks.
		return Probe{Blank: true}, nil
	case code == 8:
		return Probe{}, errkind.Errorf(errkind.NotBlank, "device %s has more than one signature (blkid: ambivalent result): refusing to format or mount it", dev)
	default:
		return Probe{}, fmt.Errorf("probe %s: %w", dev, err)
	}
}

func parseExport(out string) Probe {
	var p Probe
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "TYPE":
			p.Type = v
		case "PTTYPE":
			p.PTType = v
		}
	}
	return p
}

func (f *Formatter) readCheck(dev string) error {
	if f.ReadCheck != nil {
		return f.ReadCheck(dev)
	}
	return CheckZeros(dev)
}

// Mkfs formats dev with the table's tool and defaults, then extra. Only
// Prepare should call it: it does no checks.
func (f *Formatter) Mkfs(ctx context.Context, dev, fsType string, extra []string) error {
	fs := filesystem.Lookup(fsType)
	if fs == nil {
		return errkind.Errorf(errkind.Invalid, "cannot format %s: unsupported fsType %q", dev, fsType)
	}
	args := fs.MkfsArgs(extra, dev)
	if _, err := f.Run.Run(ctx, runner.Cmd{Name: fs.Mkfs, Args: args}); err != nil {
		return fmt.Errorf("format %s as %s: %w", dev, fsType, err)
	}
	return nil
}

// Fsck repairs what is safe to repair before a read-write mount, for the
// filesystems the table gives a check; an exit status the table does not
// call clean means errors left: no mount.
func (f *Formatter) Fsck(ctx context.Context, dev, fsType string) error {
	fs := filesystem.Lookup(fsType)
	if fs == nil || fs.Fsck == nil {
		return nil // xfs and btrfs check themselves at mount time
	}
	args := append(append([]string{}, fs.Fsck.Args...), dev)
	_, err := f.Run.Run(ctx, runner.Cmd{Name: fs.Fsck.Tool, Args: args, Quiet: true})
	if err != nil && !fs.Fsck.Clean(runner.ExitCode(err)) {
		return fmt.Errorf("filesystem on %s has errors %s could not fix, not mounting it: run fsck on it by hand: %w", dev, fs.Fsck.Tool+" "+strings.Join(fs.Fsck.Args, " "), err)
	}
	return nil
}
