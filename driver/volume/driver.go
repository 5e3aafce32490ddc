package volume

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/flexblock/flexblock/driver/flexvol"
	"github.com/flexblock/flexblock/driver/format"
	"github.com/flexblock/flexblock/driver/lock"
	"github.com/flexblock/flexblock/driver/mount"
	"github.com/flexblock/flexblock/driver/options"
	"github.com/flexblock/flexblock/driver/state"
)

// Driver implements flexvol.Driver for one backend.
type Driver struct {
	Backend Backend
	Env     *Env
	Mounter mount.Mounter
	Format  *format.Formatter
	State   state.Store
}

var _ flexvol.Driver = (*Driver)(nil)

// Init reports the capabilities from config and does nothing else.
func (d *Driver) Init() flexvol.Result {
	c := d.Env.Config
	return flexvol.Result{Status: flexvol.StatusSuccess, Capabilities: &flexvol.Capabilities{
		Attach:           c.Attach,
		SELinuxRelabel:   *c.SELinuxRelabel,
		FSGroup:          *c.FSGroup,
		SupportsMetrics:  false,
		RequiresFSResize: true,
	}}
}

// parse validates kubelet's options into a Spec and registers the secrets
// with the masker before anything can log them.
func (d *Driver) parse(o options.Options) (*options.Common, Spec, error) {
	for k, v := range o {
		if strings.HasPrefix(k, options.SecretPrefix) {
			d.Env.Mask.Add(v)
		}
	}
	c, err := options.ParseCommon(o, d.Env.Config.DefaultFSType, d.Backend.Keys())
	if err != nil {
		return nil, nil, err
	}
	for _, s := range c.Secrets {
		d.Env.Mask.Add(s)
	}
	spec, err := d.Backend.Parse(c, d.Env.Config)
	if err != nil {
		return nil, nil, err
	}
	return c, spec, nil
}

// withVolume parses the options, takes the volume's locks and runs fn: the
// shape of every call that works on one volume.
func (d *Driver) withVolume(ctx context.Context, o options.Options, fn func(*options.Common, Spec) error) flexvol.Result {
	c, spec, err := d.parse(o)
	if err != nil {
		return flexvol.Failure(err)
	}
	unlock, err := d.lock(ctx, d.lockKeys(spec.ID(), spec.LockKeys()))
	if err != nil {
		return flexvol.Failure(err)
	}
	defer unlock()
	if err := fn(c, spec); err != nil {
		return flexvol.Failure(err)
	}
	return flexvol.Success()
}

// lockKeys are the volume's own lock plus the backend's extra ones.
func (d *Driver) lockKeys(id string, extra []string) []string {
	keys := append([]string{d.Backend.Name() + "-vol-" + id}, extra...)
	sort.Strings(keys) // one global order: no deadlock between two calls
	return keys
}

// lock takes every key in order, bounded by the "lock" timeout.
func (d *Driver) lock(ctx context.Context, keys []string) (func(), error) {
	return d.lockWithin(ctx, keys, d.Env.Config.Timeout("lock"))
}

func (d *Driver) lockWithin(ctx context.Context, keys []string, wait time.Duration) (func(), error) {
	var held []*lock.Lock
	unlock := func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i].Release()
		}
	}
	dir := d.Env.Layout.Locks()
	for _, k := range keys {
		l, err := lock.Acquire(ctx, dir, k, wait)
		if err != nil {
			unlock()
			return nil, err
		}
		held = append(held, l)
	}
	return unlock, nil
}

// Attach runs on the control plane: it validates and succeeds. The node
// does the real work in waitforattach, with node-local credentials.
func (d *Driver) Attach(_ context.Context, o options.Options, _ string) flexvol.Result {
	if _, _, err := d.parse(o); err != nil {
		return flexvol.Failure(err)
	}
	return flexvol.Success()
}

// IsAttached is always true: attachment is done on the node.
func (d *Driver) IsAttached(context.Context, options.Options, string) flexvol.Result {
	t := true
	return flexvol.Result{Status: flexvol.StatusSuccess, Attached: &t}
}

// Detach succeeds: unmountdevice on the node releases the device.
func (d *Driver) Detach(context.Context, string, string) flexvol.Result {
	return flexvol.Success()
}

func foreignMount(path string) error {
	return fmt.Errorf("%s is mounted with something flexblock did not mount there; unmount it by hand first", path)
}
