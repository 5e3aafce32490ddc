// Package options turns kubelet's options JSON into typed, validated values.
// Everything is checked before anything runs; every error names the option
// and says how to fix it.
package options

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/flexblock/flexblock/driver/errkind"
)

// Keys kubelet sets.
const (
	KeyFSType      = "kubernetes.io/fsType"
	KeyReadWrite   = "kubernetes.io/readwrite"
	KeyVolumeName  = "kubernetes.io/pvOrVolumeName"
	KeyPodName     = "kubernetes.io/pod.name"
	KeyPodNS       = "kubernetes.io/pod.namespace"
	KeyPodUID      = "kubernetes.io/pod.uid"
	KeySA          = "kubernetes.io/serviceAccount.name"
	KeyFSGroup     = "kubernetes.io/mounterArgs.FsGroup"
	KeyFSGroupOld  = "kubernetes.io/fsGroup"
	SecretPrefix   = "kubernetes.io/secret/"
	kubeletPrefix  = "kubernetes.io/"
	maxJSONBytes   = 256 << 10
	maxValueBytes  = 64 << 10
	maxOptionCount = 256
)

// Options is the decoded JSON object: every value is a string.
type Options map[string]string

// Error is a validation failure of one option.
type Error struct {
	Field   string
	Problem string
	Fix     string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("option %q %s", e.Field, e.Problem)
	if e.Fix != "" {
		msg += ": " + e.Fix
	}
	return msg
}

// Is makes every option error count as errkind.Invalid: the caller's input
// is wrong, and retrying the same call cannot help.
func (e *Error) Is(target error) bool { return target == errkind.Invalid }

// Errorf builds an *Error.
func Errorf(field, fix, format string, a ...any) error {
	return &Error{Field: field, Problem: fmt.Sprintf(format, a...), Fix: fix}
}

// Decode parses kubelet's options argument strictly.
func Decode(text string) (Options, error) {
	if len(text) > maxJSONBytes {
		return nil, fmt.Errorf("options JSON is %d bytes, more than the %d allowed", len(text), maxJSONBytes)
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("options are not a JSON object of strings: %v", err)
	}
	if raw == nil {
		return nil, errors.New("options are not a JSON object of strings: got null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("options JSON has trailing data after the object")
	}
	if len(raw) > maxOptionCount {
		return nil, fmt.Errorf("options JSON has %d keys, more than the %d allowed", len(raw), maxOptionCount)
	}
	o := make(Options, len(raw))
	for k, v := range raw {
		s, ok := v.(string)
		if !ok {
			return nil, Errorf(k, `write the value in quotes, for example "true" or "1"`, "must be a string (FlexVolume options are all strings), got %s", jsonKind(v))
		}
		if len(s) > maxValueBytes {
			return nil, Errorf(k, "shorten it", "is %d bytes long, more than %d", len(s), maxValueBytes)
		}
		if !validKey(k) {
			return nil, Errorf(printable(k), "use letters, digits and . _ - / only", "is not a valid option name")
		}
		o[k] = s
	}
	return o, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return "another type"
}

func validKey(k string) bool {
	if k == "" || len(k) > 253 {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-/", r)) {
			return false
		}
	}
	return true
}

// printable makes a hostile string safe to put in a message.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strconv.QuoteToASCII(s)[1 : len(strconv.QuoteToASCII(s))-1]
}

// Common is what every backend gets from kubelet's keys.
type Common struct {
	FSType       string
	ReadOnly     bool
	FSGroup      *int64
	VolumeName   string
	PodUID       string
	MountOptions []string
	MkfsOptions  []string
	// Secrets holds the decoded Secret data, by key.
	Secrets map[string]string
	Raw     Options
}

// Known lists the non-kubelet option names every backend accepts.
var commonKeys = []string{"mountOptions", "mkfsOptions", "fsType", "readOnly"}

// ParseCommon validates kubelet's keys and the common user keys.
// backendKeys lists the backend's own option names; any other name not
// under kubernetes.io/ is rejected so a typo does not go unnoticed.
func ParseCommon(o Options, defaultFS string, backendKeys []string) (*Common, error) {
	if err := checkKnown(o, backendKeys); err != nil {
		return nil, err
	}
	c := &Common{Raw: o, Secrets: map[string]string{}}
	var err error
	if c.FSType, err = fsType(o, defaultFS); err != nil {
		return nil, err
	}
	if c.ReadOnly, err = readOnly(o); err != nil {
		return nil, err
	}
	if c.FSGroup, err = fsGroup(o); err != nil {
		return nil, err
	}
	if c.VolumeName, err = optionalName(o, KeyVolumeName); err != nil {
		return nil, err
	}
	if c.PodUID, err = optionalName(o, KeyPodUID); err != nil {
		return nil, err
	}
	if c.MountOptions, err = MountOptions(o["mountOptions"]); err != nil {
		return nil, err
	}
	if c.MkfsOptions, err = MkfsOptions(o["mkfsOptions"]); err != nil {
		return nil, err
	}
	if c.Secrets, err = secrets(o); err != nil {
		return nil, err
	}
	return c, nil
}

func checkKnown(o Options, backendKeys []string) error {
	known := map[string]bool{}
	for _, k := range append(append([]string{}, commonKeys...), backendKeys...) {
		known[k] = true
	}
	var unknown []string
	for k := range o {
		if !strings.HasPrefix(k, kubeletPrefix) && !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	all := append(append([]string{}, commonKeys...), backendKeys...)
	sort.Strings(all)
	return Errorf(unknown[0], "known options are: "+strings.Join(all, ", "), "is not a known option")
}

var fsTypes = []string{"ext4", "ext3", "xfs", "btrfs"}

// FSTypes lists the filesystems flexblock formats and mounts.
func FSTypes() []string { return append([]string(nil), fsTypes...) }

func fsType(o Options, def string) (string, error) {
	v, field := o[KeyFSType], KeyFSType
	if u, ok := o["fsType"]; ok {
		v, field = u, "fsType"
	}
	if v == "" {
		return def, nil
	}
	for _, t := range fsTypes {
		if v == t {
			return v, nil
		}
	}
	return "", Errorf(field, "use one of "+strings.Join(fsTypes, ", "), "is %q, which flexblock does not support", printable(v))
}

func readOnly(o Options) (bool, error) {
	ro := false
	switch v := o[KeyReadWrite]; v {
	case "", "rw":
	case "ro":
		ro = true
	default:
		return false, Errorf(KeyReadWrite, `kubelet sends "ro" or "rw"`, "is %q", printable(v))
	}
	if v, ok := o["readOnly"]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, Errorf("readOnly", `use "true" or "false"`, "is %q", printable(v))
		}
		ro = ro || b // a volume marked read-only anywhere stays read-only
	}
	return ro, nil
}

func fsGroup(o Options) (*int64, error) {
	for _, k := range []string{KeyFSGroup, KeyFSGroupOld} {
		v, ok := o[k]
		if !ok || v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > 1<<32-1 {
			return nil, Errorf(k, "set the pod's securityContext.fsGroup to a group ID between 0 and 4294967295", "is %q, not a group ID", printable(v))
		}
		return &n, nil
	}
	return nil, nil
}

func optionalName(o Options, key string) (string, error) {
	v := o[key]
	if v == "" {
		return "", nil
	}
	if err := Name(key, v, 253); err != nil {
		return "", err
	}
	return v, nil
}

func secrets(o Options) (map[string]string, error) {
	out := map[string]string{}
	for k, v := range o {
		if !strings.HasPrefix(k, SecretPrefix) {
			continue
		}
		name := strings.TrimPrefix(k, SecretPrefix)
		if err := Name(k, name, 253); err != nil {
			return nil, err
		}
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, Errorf(k, "kubelet base64-encodes Secret data; store the raw value in the Secret's data (base64) or stringData (plain)", "is not valid base64")
		}
		if bytes.ContainsAny(b, "\x00\n\r") && !isKeyringText(b) {
			return nil, Errorf(k, "store the value without newlines or NUL bytes (kubectl create secret generic --from-literal)", "holds a newline or NUL byte")
		}
		out[name] = string(b)
	}
	return out, nil
}

// isKeyringText allows one trailing newline, which `--from-file` adds.
func isKeyringText(b []byte) bool {
	t := bytes.TrimRight(b, "\n")
	return !bytes.ContainsAny(t, "\x00\n\r")
}
