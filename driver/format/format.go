// Package format decides, safely, whether a device may be formatted, and
// formats and checks it. The rule: format only a device that blkid finds
// blank AND whose first and last MiB can be read AND that is used read-write.
// Everything else is a refusal: data loss is never the fallback.
package format

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

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
	// ReadCheck checks the device can be read; tests replace it.
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
			return false, fmt.Errorf("device %s is blank and the volume is read-only: flexblock never formats a read-only volume; mount it read-write once to format it", dev)
		}
		// blkid also says "blank" when it cannot read: only a probe
		// followed by a good read of both ends, in the same attempt, is
		// trusted, so a retry re-probes too.
		err = f.readCheck(dev)
		if err == nil {
			if err := f.Mkfs(ctx, dev, fsType, mkfsOpts); err != nil {
				return false, err
			}
			return true, nil
		}
		if attempt == readAttempts {
			return false, fmt.Errorf("device %s looks blank but cannot be read (%v, %d attempts): refusing to format it, since an unreadable device always looks blank", dev, err, attempt)
		}
		if err := f.sleep(ctx, time.Duration(attempt)*500*time.Millisecond); err != nil {
			return false, err
		}
	}
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
		return fmt.Errorf("device %s holds a %s partition table: flexblock does not format or mount partitioned devices; wipe it (wipefs -a) only if its data is not needed", dev, p.PTType)
	case p.Type == "":
		return fmt.Errorf("device %s holds a signature blkid cannot name: refusing to format or mount it", dev)
	case p.Type != fsType:
		return fmt.Errorf("device %s holds %s but the volume asks for fsType %s: set fsType to %s, or wipe the device (wipefs -a) only if its data is not needed", dev, p.Type, fsType, p.Type)
	}
	return nil
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
		return Probe{}, fmt.Errorf("device %s has more than one signature (blkid: ambivalent result): refusing to format or mount it", dev)
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
	return ReadEnds(dev)
}

const mib = 1 << 20

// ReadEnds reads the first and the last MiB of dev.
func ReadEnds(dev string) error {
	fd, err := os.Open(dev)
	if err != nil {
		return err
	}
	defer fd.Close()
	size, err := fd.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if size == 0 {
		return errors.New("device size is 0")
	}
	buf := make([]byte, mib)
	for _, off := range []int64{0, max(0, size-mib)} {
		n := min(int64(mib), size)
		if _, err := fd.ReadAt(buf[:n], off); err != nil {
			return fmt.Errorf("read at %d: %w", off, err)
		}
	}
	return nil
}

// mkfsArgs are the defaults: lazy init and no discard make formatting
// O(1) in the device size (a 1 TiB thin image formats in well under a second).
// For ext4, -G 256 packs the metadata of 256 block groups together instead
// of 16, which cuts what a big format writes. (sparse_super2 would cut more,
// but the kernel cannot grow such a filesystem online: expandfs needs that.)
var mkfsArgs = map[string][]string{
	"ext4":  {"-F", "-m0", "-G", "256", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1"},
	"ext3":  {"-F", "-m0", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1"},
	"xfs":   {"-f", "-K"},
	"btrfs": {"-f", "-K"},
}

// Mkfs formats dev. Only Prepare should call it: it does no checks.
func (f *Formatter) Mkfs(ctx context.Context, dev, fsType string, extra []string) error {
	base, ok := mkfsArgs[fsType]
	if !ok {
		return fmt.Errorf("cannot format %s: unsupported fsType %q", dev, fsType)
	}
	args := append(append(append([]string{}, base...), extra...), dev)
	if _, err := f.Run.Run(ctx, runner.Cmd{Name: "mkfs." + fsType, Args: args}); err != nil {
		return fmt.Errorf("format %s as %s: %w", dev, fsType, err)
	}
	return nil
}

// Fsck repairs what is safe to repair on an ext filesystem before a
// read-write mount; exit status 4 and above means errors left: no mount.
func (f *Formatter) Fsck(ctx context.Context, dev, fsType string) error {
	if fsType != "ext4" && fsType != "ext3" {
		return nil // xfs and btrfs check themselves at mount time
	}
	_, err := f.Run.Run(ctx, runner.Cmd{Name: "fsck", Args: []string{"-a", dev}, Quiet: true})
	if code := runner.ExitCode(err); err != nil && (code < 0 || code >= 4) {
		return fmt.Errorf("filesystem on %s has errors fsck -a could not fix, not mounting it: run fsck on it by hand: %w", dev, err)
	}
	return nil
}
