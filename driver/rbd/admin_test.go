package rbd

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/flexblock/flexblock/driver/errkind"
	"github.com/flexblock/flexblock/driver/runner"
)

// Admin runs the caller's verb with the node calls' credentials and
// timeouts: the key only in a 0600 file that is gone afterwards, the
// client timeouts before the credentials, and refusals explained.
func TestAdminUsesTheKeyfileAndExplainsRefusals(t *testing.T) {
	f := newFixture(t, "")
	v := f.mustParse(t, "monitors", "10.0.0.1", "pool", "kube", "image", "img", "user", "client.prov",
		"kubernetes.io/secret/key", base64.StdEncoding.EncodeToString([]byte(key)))
	var keyfile string
	f.script.OnFunc("rbd image-meta list kube/img", func(c runner.Cmd) (runner.Result, error) {
		keyfile = strings.TrimPrefix(c.Args[len(c.Args)-1], "--keyfile=")
		st, err := os.Stat(keyfile)
		b, _ := os.ReadFile(keyfile)
		if err != nil || st.Mode().Perm() != 0o600 || string(b) != key {
			t.Errorf("keyfile %s: %v %v", keyfile, err, st)
		}
		return runner.Result{Stdout: []byte("{}")}, nil
	})
	res, err := v.Admin(context.Background(), f.env, true, "image-meta", "list", v.ImageSpec(), "--format", "json")
	if err != nil || string(res.Stdout) != "{}" {
		t.Fatalf("Admin: %q %v", res.Stdout, err)
	}
	want := "rbd image-meta list kube/img --format json --client_mount_timeout=10 --rados_mon_op_timeout=10 --id prov -m 10.0.0.1:6789 --conf=/dev/null --keyfile="
	if l := f.script.Lines()[0]; !strings.HasPrefix(l, want) {
		t.Errorf("ran %q, want prefix %q", l, want)
	}
	if _, err := os.Stat(keyfile); !os.IsNotExist(err) {
		t.Errorf("keyfile left: %v", err)
	}

	f.script.OnFunc("rbd rm", exitErr(1, "rbd: couldn't connect to the cluster!"))
	if _, err := v.Admin(context.Background(), f.env, false, "rm", v.ImageSpec()); err == nil || !strings.Contains(err.Error(), `refused user "prov"`) {
		t.Errorf("refusal not explained: %v", err)
	}
	f.script.OnFunc("rbd info", exitErr(2, "rbd: error opening image img: (2) No such file or directory"))
	if _, err := v.Admin(context.Background(), f.env, true, "info", v.ImageSpec()); !IsNotFound(err) {
		t.Errorf("IsNotFound(%v) = false", err)
	}
	f.script.OnFunc("rbd create", exitErr(17, "rbd: create error: (17) File exists"))
	if _, err := v.Admin(context.Background(), f.env, false, "create", v.ImageSpec()); !IsExists(err) {
		t.Errorf("IsExists(%v) = false", err)
	}

	// No credentials at all: refused before anything runs.
	n := len(f.script.Calls)
	bare := f.mustParse(t, "monitors", "10.0.0.1", "image", "img")
	if _, err := bare.Admin(context.Background(), f.env, false, "info", bare.ImageSpec()); !errors.Is(err, errkind.Denied) || len(f.script.Calls) != n {
		t.Errorf("no credentials: %v, ran %v", err, f.script.Lines()[n:])
	}
}
