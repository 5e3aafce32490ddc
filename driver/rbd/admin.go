package rbd

import (
	"context"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/runner"
	"github.com/flexblock/flexblock/driver/volume"
)

// Admin runs `rbd args...` against the volume's cluster as the volume's
// user, for a caller that manages images instead of mapping them (the
// dynamic provisioner: create, image-meta, status, rm, resize). It is the
// node calls' own path: the key goes through a 0600 --keyfile in the
// private key dir of env.Layout, removed after the call; the Ceph client
// timeouts are added; a refusal or a silent monitor is explained as for a
// mount. Options such as --format come after args; a failure is returned
// as cephError made it (runner.ExitError inside, for IsNotFound/IsExists).
func (v *Volume) Admin(ctx context.Context, env *volume.Env, quiet bool, args ...string) (runner.Result, error) {
	auth, done, err := v.auth(env, false)
	if err != nil {
		return runner.Result{}, errkind.Mark(errkind.Denied, err)
	}
	defer done()
	res, err := v.rbd(ctx, env, auth, quiet, args...)
	if err != nil {
		return res, v.cephError(err, auth)
	}
	return res, nil
}

// IsNotFound tells whether a failed rbd call said the image (not the pool)
// does not exist.
func IsNotFound(err error) bool { return isNotFound(err) }

// IsExists tells whether a failed rbd call said the image already exists.
func IsExists(err error) bool { return isExists(err) }
