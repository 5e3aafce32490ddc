// Package fakerbd is a fake Ceph cluster behind a fake `rbd` for tests: a
// runner.Runner that answers the admin verbs the provisioner uses from an
// in-memory set of images, as rbd answers them (JSON output, errno exit
// codes and messages), and checks every call's credentials: the key only
// in a 0600 --keyfile, never on argv.
package fakerbd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/flexblock/flexblock/driver/runner"
)

// Image is one image of the fake cluster.
type Image struct {
	Size     int64
	Features []string
	DataPool string
	Meta     map[string]string
	Watchers []string
}

// Cluster is the fake cluster and the fake rbd in one.
type Cluster struct {
	mu     sync.Mutex
	Images map[string]*Image // by pool[/namespace]/name
	Calls  []runner.Cmd
	// Key is the only key the fake accepts (as the monitors would).
	Key string
	// Fail makes the next call of a verb ("create", "image-meta set", ...)
	// fail with this error.
	Fail map[string]error
	// OnCall is told every verb, in order (tests of ordering).
	OnCall func(verb string)
	// Problems lists what the fake saw wrong about how it was called.
	Problems []string
}

// New returns an empty cluster that accepts key.
func New(key string) *Cluster {
	return &Cluster{Images: map[string]*Image{}, Key: key, Fail: map[string]error{}}
}

// valued are the flags whose value is the next word.
var valued = map[string]bool{"--size": true, "--image-format": true, "--image-feature": true, "--data-pool": true,
	"--format": true, "--expires-at": true, "--id": true, "-m": true}

// Run implements runner.Runner.
func (c *Cluster) Run(_ context.Context, cmd runner.Cmd) (runner.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Calls = append(c.Calls, cmd)
	if cmd.Name != "rbd" {
		return c.fail(cmd, 127, "not rbd")
	}
	var pos []string
	flags := map[string][]string{}
	for i := 0; i < len(cmd.Args); i++ {
		a := cmd.Args[i]
		switch {
		case valued[a] && i+1 < len(cmd.Args):
			flags[a] = append(flags[a], cmd.Args[i+1])
			i++
		case strings.HasPrefix(a, "-"):
			k, v, _ := strings.Cut(a, "=")
			flags[k] = append(flags[k], v)
		default:
			pos = append(pos, a)
		}
	}
	c.checkAuth(cmd, flags)
	if len(pos) == 0 {
		return c.fail(cmd, 22, "rbd: no command")
	}
	verb := pos[0]
	args := pos[1:]
	if (verb == "image-meta" || verb == "trash") && len(pos) > 1 {
		verb, args = pos[0]+" "+pos[1], pos[2:]
	}
	if c.OnCall != nil {
		c.OnCall(verb)
	}
	if err, ok := c.Fail[verb]; ok {
		delete(c.Fail, verb)
		code := 1
		if e, ok := err.(*runner.ExitError); ok {
			code = e.Code
		}
		return runner.Result{ExitCode: code}, err
	}
	if len(args) == 0 {
		return c.fail(cmd, 22, "rbd: image name was not specified")
	}
	spec := args[0]
	img := c.Images[spec]
	missing := func() (runner.Result, error) {
		return c.fail(cmd, 2, "rbd: error opening image "+spec+": (2) No such file or directory")
	}
	switch verb {
	case "info":
		if img == nil {
			return missing()
		}
		return c.json(map[string]any{"size": img.Size, "features": img.Features})
	case "create":
		if img != nil {
			return c.fail(cmd, 17, "rbd: create error: (17) File exists")
		}
		size, err := parseSize(flags["--size"])
		if err != nil {
			return c.fail(cmd, 22, err.Error())
		}
		n := &Image{Size: size, Features: flags["--image-feature"], Meta: map[string]string{}}
		if dp := flags["--data-pool"]; len(dp) > 0 {
			n.DataPool = dp[0]
		}
		c.Images[spec] = n
		return runner.Result{}, nil
	case "image-meta list":
		if img == nil {
			return missing()
		}
		if len(img.Meta) == 0 {
			// As the real rbd (16.2): no pairs, no output, even in JSON.
			return runner.Result{}, nil
		}
		return c.json(img.Meta)
	case "image-meta set":
		if img == nil {
			return missing()
		}
		if len(args) != 3 {
			return c.fail(cmd, 22, "rbd: image-meta set needs a key and a value")
		}
		img.Meta[args[1]] = args[2]
		return runner.Result{}, nil
	case "rename":
		if img == nil {
			return missing()
		}
		if len(args) != 2 {
			return c.fail(cmd, 22, "rbd: rename needs a destination")
		}
		if c.Images[args[1]] != nil {
			return c.fail(cmd, 17, "rbd: rename error: (17) File exists")
		}
		c.Images[args[1]] = img
		delete(c.Images, spec)
		return runner.Result{}, nil
	case "status":
		if img == nil {
			return missing()
		}
		var ws []map[string]string
		for _, w := range img.Watchers {
			ws = append(ws, map[string]string{"address": w})
		}
		return c.json(map[string]any{"watchers": ws})
	case "rm", "trash mv":
		if img == nil {
			return missing()
		}
		if len(img.Watchers) > 0 {
			return c.fail(cmd, 16, "rbd: error: image still has watchers")
		}
		if verb == "trash mv" && len(flags["--expires-at"]) != 1 {
			c.Problems = append(c.Problems, "trash mv without --expires-at")
		}
		delete(c.Images, spec)
		return runner.Result{}, nil
	case "resize":
		if img == nil {
			return missing()
		}
		size, err := parseSize(flags["--size"])
		if err != nil {
			return c.fail(cmd, 22, err.Error())
		}
		if size < img.Size {
			return c.fail(cmd, 22, "rbd: shrinking an image is only allowed with the --allow-shrink flag")
		}
		img.Size = size
		return runner.Result{}, nil
	}
	return c.fail(cmd, 22, "rbd: unknown command "+verb)
}

// checkAuth: the key must come in a 0600 keyfile holding exactly it, and
// never appear on argv.
func (c *Cluster) checkAuth(cmd runner.Cmd, flags map[string][]string) {
	if strings.Contains(cmd.String(), c.Key) {
		c.Problems = append(c.Problems, "key on argv: "+cmd.String())
	}
	kf := flags["--keyfile"]
	if len(kf) != 1 {
		c.Problems = append(c.Problems, "no --keyfile: "+cmd.String())
		return
	}
	st, err := os.Stat(kf[0])
	if err != nil {
		c.Problems = append(c.Problems, "keyfile: "+err.Error())
		return
	}
	b, _ := os.ReadFile(kf[0])
	if st.Mode().Perm() != 0o600 || string(b) != c.Key {
		c.Problems = append(c.Problems, fmt.Sprintf("keyfile %s: mode %o, holds the right key: %v", kf[0], st.Mode().Perm(), string(b) == c.Key))
	}
}

func (c *Cluster) json(v any) (runner.Result, error) {
	b, err := json.Marshal(v)
	return runner.Result{Stdout: b}, err
}

func (c *Cluster) fail(cmd runner.Cmd, code int, stderr string) (runner.Result, error) {
	return runner.Result{ExitCode: code, Stderr: []byte(stderr)}, &runner.ExitError{Cmd: cmd.String(), Code: code, Stderr: stderr}
}

func parseSize(v []string) (int64, error) {
	if len(v) != 1 || !strings.HasSuffix(v[0], "M") {
		return 0, fmt.Errorf("rbd: --size %v: want one value in M", v)
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(v[0], "M"), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("rbd: --size %v: %v", v, err)
	}
	return n << 20, nil
}

// Verbs lists the verbs called, in order.
func (c *Cluster) Verbs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, cmd := range c.Calls {
		var pos []string
		for i := 0; i < len(cmd.Args); i++ {
			a := cmd.Args[i]
			if valued[a] {
				i++
				continue
			}
			if !strings.HasPrefix(a, "-") {
				pos = append(pos, a)
			}
		}
		out = append(out, strings.Join(pos, " "))
	}
	return out
}
