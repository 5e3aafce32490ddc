package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMissingFileGivesDefaults(t *testing.T) {
	c, err := Load(filepath.Join(t.TempDir(), "nope.json"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Attach || !*c.FSGroup || !*c.SELinuxRelabel || c.LogFile != DefaultLogFile || c.StateDir != DefaultStateDir || c.DefaultFSType != "ext4" {
		t.Fatalf("defaults: %+v", c)
	}
	if c.Timeout("rbd") != 90*time.Second || c.Timeout("whatever") != 60*time.Second {
		t.Fatal("default timeouts")
	}
}

func TestValues(t *testing.T) {
	c, err := Load(write(t, `{"attach":true,"fsGroup":false,"timeouts":{"rbd":"5s","default":"7s"},"rbd":{"keyring":"/etc/ceph/k"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Attach || *c.FSGroup || !*c.SELinuxRelabel || c.Timeout("rbd") != 5*time.Second || c.Timeout("other") != 7*time.Second || c.Timeout("mkfs.ext4") != 10*time.Minute || c.RBD.Keyring != "/etc/ceph/k" {
		t.Fatalf("%+v", c)
	}
}

func TestBadConfigNamesFileAndField(t *testing.T) {
	cases := map[string]string{
		`{"atach":true}`:                         `unknown field "atach"`,
		`{"attach":"yes"}`:                       `field "attach"`,
		`{"timeouts":{"rbd":"soon"}}`:            `"soon" is not a positive duration`,
		`{"timeouts":{"rbd":"-1s"}}`:             "positive duration",
		`{"logFile":"relative/log"}`:             `field "logFile"`,
		`{"stateDir":"/run/../etc"}`:             `field "stateDir"`,
		`{"iscsi":{"recordsDir":"var/lib/x"}}`:   `field "iscsi.recordsDir"`,
		`{"defaultFSType":"ntfs"}`:               `field "defaultFSType"`,
		`{"logMaxBytes":-5}`:                     `field "logMaxBytes"`,
		`{"attach":true} {}`:                     "trailing data",
		`{"attach":`:                             "config",
		`{"rbd":{"keyring":"k"}}`:                `field "rbd.keyring"`,
		`{"iscsi":{"deviceTimeout":"never"}}`:    "duration",
		`{"callDeadline":"5s"}`:                  `field "callDeadline"`,
		`{"callDeadline":"31m"}`:                 `field "callDeadline"`,
		`{"callDeadline":"soon"}`:                "duration",
		`{"rbd":{"keyringDirs":["ceph"]}}`:       `field "rbd.keyringDirs"`,
		`{"rbd":{"keyringDirs":["/etc/ceph/"]}}`: `field "rbd.keyringDirs"`,
		`{"rbd":{"keyringDirs":["/"]}}`:          `field "rbd.keyringDirs"`,
	}
	for body, want := range cases {
		p := write(t, body)
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err = %v, want file and %q", body, err, want)
		}
	}
}

func TestForExecutable(t *testing.T) {
	if got := ForExecutable("/x/flexblock~rbd/rbd"); got != "/x/flexblock~rbd/flexblock.json" {
		t.Fatal(got)
	}
}

// The call deadline: 5 minutes unless set, and the bounds it is kept in.
func TestCallDeadline(t *testing.T) {
	c, err := Load(filepath.Join(t.TempDir(), "nope.json"))
	if err != nil || c.CallDeadline() != 5*time.Minute {
		t.Fatalf("default: %v %v", c, err)
	}
	for _, d := range []string{"10s", "2m", "30m"} {
		c, err := Load(write(t, `{"callDeadline":"`+d+`"}`))
		want, _ := time.ParseDuration(d)
		if err != nil || c.CallDeadline() != want {
			t.Fatalf("%s: %v %v", d, c.CallDeadline(), err)
		}
	}
	_, err = Load(write(t, `{"callDeadline":"9s"}`))
	if err == nil || !strings.Contains(err.Error(), "between 10s and 30m") {
		t.Fatalf("err = %v", err)
	}
	var nilCfg *Config
	if nilCfg.CallDeadline() != DefaultCallDeadline {
		t.Fatal("nil config")
	}
}

func TestKeyringDirs(t *testing.T) {
	c, err := Load(write(t, `{"rbd":{"keyringDirs":["/etc/ceph","/var/lib/ceph-keys"]}}`))
	if err != nil || len(c.RBD.KeyringDirs) != 2 || c.RBD.KeyringDirs[1] != "/var/lib/ceph-keys" {
		t.Fatalf("%+v %v", c, err)
	}
}
