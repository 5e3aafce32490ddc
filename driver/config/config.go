// Package config loads the per-driver configuration file that the installer
// writes next to the executable (for example flexblock~rbd/flexblock.json).
// It is read on every call, so a changed file takes effect without a restart.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/flexblock/flexblock/driver/filesystem"
	"github.com/flexblock/flexblock/driver/state"
)

// FileName is the name of the config file in the driver's directory.
const FileName = "flexblock.json"

// Duration is a time.Duration written as a Go duration string ("90s").
type Duration time.Duration

// UnmarshalJSON accepts strings like "30s" or "2m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("must be a duration string such as \"30s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return fmt.Errorf("%q is not a positive duration such as \"30s\"", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// Config is the driver configuration. Zero values mean "use the default".
type Config struct {
	// Attach switches kubelet to the attach/detach flow (waitforattach,
	// mountdevice, unmountdevice) instead of mount/unmount only.
	Attach bool `json:"attach"`
	// FSGroup and SELinuxRelabel are reported to kubelet in init.
	FSGroup        *bool `json:"fsGroup,omitempty"`
	SELinuxRelabel *bool `json:"selinuxRelabel,omitempty"`

	LogFile     string `json:"logFile,omitempty"`
	LogMaxBytes int64  `json:"logMaxBytes,omitempty"`
	StateDir    string `json:"stateDir,omitempty"`
	// KubeletRoot, when set, is the only kubelet root directory accepted in
	// paths kubelet passes. Empty means: derive it from the path's shape.
	KubeletRoot   string `json:"kubeletRoot,omitempty"`
	DefaultFSType string `json:"defaultFSType,omitempty"`

	// Timeouts per external tool (by program name, e.g. "rbd", "mkfs.ext4"),
	// plus "default" for any other tool and "lock" for the per-volume lock.
	Timeouts map[string]Duration `json:"timeouts,omitempty"`

	// callDeadline bounds one whole driver call (default 5 min, kept
	// between 10 s and 30 min): the per-tool timeouts above live inside it,
	// because every tool's context derives from the call's, so a tool gets
	// the smaller of its own bound and what is left of the call's.
	// (Go name Deadline: the method CallDeadline reads it.)
	Deadline Duration `json:"callDeadline,omitempty"`

	// Nsenter runs every tool in the host's mount namespace
	// (nsenter --mount=/proc/1/ns/mnt) for a containerized kubelet.
	Nsenter bool `json:"nsenter,omitempty"`

	RBD   RBD   `json:"rbd"`
	ISCSI ISCSI `json:"iscsi"`
}

// RBD holds node-local settings of the RBD backend.
type RBD struct {
	DefaultMonitors string `json:"defaultMonitors,omitempty"`
	// Keyring is the node-local keyring used when no Secret is given
	// (always in attach mode: kubelet passes no secret to waitforattach).
	Keyring         string `json:"keyring,omitempty"`
	User            string `json:"user,omitempty"`
	AllowForceUnmap bool   `json:"allowForceUnmap,omitempty"`
	// KeyringDirs are the only directories the volume option "keyring" may
	// name a file directly inside. Empty: the option is refused (a pod's
	// author must not pick any file of the node for rbd to read).
	KeyringDirs []string `json:"keyringDirs,omitempty"`
}

// ISCSI holds node-local settings of the iSCSI backend.
type ISCSI struct {
	// CredentialsFile is a JSON file of CHAP keys (the Secret's keys) used
	// when kubelet passes no Secret (attach mode).
	CredentialsFile string   `json:"credentialsFile,omitempty"`
	DeviceTimeout   Duration `json:"deviceTimeout,omitempty"`
	// RecordsDir keeps the markers of the open-iscsi node, discovery and
	// iface records flexblock created. Those records live on disk and
	// survive a reboot, so their markers must too (the state dir does
	// not): after a reboot the last user of a target still deletes the
	// record, and the CHAP secret in it, that flexblock made.
	RecordsDir string `json:"recordsDir,omitempty"`
}

// Defaults.
const (
	DefaultLogFile     = "/var/log/flexblock/flexblock.log"
	DefaultLogMaxBytes = 10 << 20
	DefaultStateDir    = "/run/flexblock"
	DefaultRecordsDir  = "/var/lib/flexblock/iscsi"
	DefaultFSType      = "ext4"
	// DefaultCallDeadline is well under kubelet's patience with a driver.
	DefaultCallDeadline = 5 * time.Minute
	minCallDeadline     = 10 * time.Second
	maxCallDeadline     = 30 * time.Minute
)

var defaultTimeouts = map[string]time.Duration{
	"default":    60 * time.Second,
	"lock":       60 * time.Second,
	"fencing":    35 * time.Second, // a dead client's watch lingers ~30 s
	"rbd":        90 * time.Second,
	"rbdConnect": 10 * time.Second, // Ceph client_mount_timeout/rados_mon_op_timeout of each rbd call
	"iscsiadm":   60 * time.Second,
	"blkid":      30 * time.Second,
	"mount":      60 * time.Second,
	"umount":     60 * time.Second,
	"fsck":       10 * time.Minute,
	"mkfs.ext4":  10 * time.Minute,
	"mkfs.ext3":  10 * time.Minute,
	"mkfs.xfs":   10 * time.Minute,
	"mkfs.btrfs": 10 * time.Minute,
	"resize2fs":  10 * time.Minute,
	"xfs_growfs": 10 * time.Minute,
}

// maxConfigBytes bounds the config file (a real one is well under 4 KiB).
const maxConfigBytes = 1 << 20

// Load reads path. A missing file gives the defaults; any other problem is an
// error that names the file and, where possible, the field.
func Load(path string) (*Config, error) {
	c := &Config{}
	// Bounded, non-blocking, no symlink: a FIFO or /dev/zero planted as the
	// config must fail the call, not hang it or exhaust memory.
	b, err := state.ReadSmallFile(path, maxConfigBytes)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return c.withDefaults(), nil
	case err != nil:
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if err := decodeStrict(b, c); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return c.withDefaults(), nil
}

// ForExecutable is the config path for a driver executable: next to it.
func ForExecutable(exe string) string {
	return filepath.Join(filepath.Dir(exe), FileName)
}

func decodeStrict(b []byte, c *Config) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return explainJSON(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON object: the file must hold exactly one object")
	}
	return nil
}

func explainJSON(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Errorf("field %q: must be a %s, got %s", te.Field, te.Type, te.Value)
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, err)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("%s: remove it or fix its spelling", strings.TrimPrefix(err.Error(), "json: "))
	}
	return fmt.Errorf("invalid config: %w", err)
}

func (c *Config) validate() error {
	for _, p := range []struct{ field, val string }{
		{"logFile", c.LogFile}, {"stateDir", c.StateDir}, {"kubeletRoot", c.KubeletRoot},
		{"rbd.keyring", c.RBD.Keyring}, {"iscsi.credentialsFile", c.ISCSI.CredentialsFile},
		{"iscsi.recordsDir", c.ISCSI.RecordsDir},
	} {
		if p.val != "" && (!filepath.IsAbs(p.val) || filepath.Clean(p.val) != p.val) {
			return fmt.Errorf("field %q: %q must be an absolute, clean path", p.field, p.val)
		}
	}
	if c.DefaultFSType != "" && filesystem.Lookup(c.DefaultFSType) == nil {
		return fmt.Errorf("field \"defaultFSType\": %q is not one of %s", c.DefaultFSType, strings.Join(filesystem.Names(), ", "))
	}
	if err := checkKeyringDirs(c.RBD.KeyringDirs); err != nil {
		return err
	}
	if d := time.Duration(c.Deadline); d != 0 && (d < minCallDeadline || d > maxCallDeadline) {
		return fmt.Errorf("field \"callDeadline\": %s is out of range: set a duration between 10s and 30m", d)
	}
	if c.LogMaxBytes < 0 {
		return fmt.Errorf("field \"logMaxBytes\": must not be negative")
	}
	return nil
}

func checkKeyringDirs(dirs []string) error {
	for _, d := range dirs {
		if !filepath.IsAbs(d) || filepath.Clean(d) != d || d == "/" {
			return fmt.Errorf("field \"rbd.keyringDirs\": %q must be an absolute, clean path of a directory other than /", d)
		}
	}
	return nil
}

func (c *Config) withDefaults() *Config {
	t := true
	if c.FSGroup == nil {
		c.FSGroup = &t
	}
	if c.SELinuxRelabel == nil {
		c.SELinuxRelabel = &t
	}
	if c.LogFile == "" {
		c.LogFile = DefaultLogFile
	}
	if c.LogMaxBytes == 0 {
		c.LogMaxBytes = DefaultLogMaxBytes
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.DefaultFSType == "" {
		c.DefaultFSType = DefaultFSType
	}
	if c.ISCSI.DeviceTimeout == 0 {
		c.ISCSI.DeviceTimeout = Duration(30 * time.Second)
	}
	if c.Deadline == 0 {
		c.Deadline = Duration(DefaultCallDeadline)
	}
	if c.ISCSI.RecordsDir == "" {
		c.ISCSI.RecordsDir = DefaultRecordsDir
	}
	return c
}

// Timeout returns the configured bound for an external tool.
func (c *Config) Timeout(tool string) time.Duration {
	if d, ok := c.Timeouts[tool]; ok {
		return time.Duration(d)
	}
	if d, ok := defaultTimeouts[tool]; ok {
		return d
	}
	if d, ok := c.Timeouts["default"]; ok {
		return time.Duration(d)
	}
	return defaultTimeouts["default"]
}

// CallDeadline is the bound of one whole call (nil config: the default,
// so a call whose config failed to load is bounded too).
func (c *Config) CallDeadline() time.Duration {
	if c == nil || c.Deadline == 0 {
		return DefaultCallDeadline
	}
	return time.Duration(c.Deadline)
}
