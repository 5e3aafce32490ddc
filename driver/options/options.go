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
	"github.com/flexblock/flexblock/driver/filesystem"
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

// Decode parses kubelet's options argument strictly: one JSON object of
// string values, each key once. It reads token by token because
// encoding/json keeps the last of two equal keys silently, and a second
// "fsType" must not quietly override the first.
func Decode(text string) (Options, error) {
	if len(text) > maxJSONBytes {
		return nil, fmt.Errorf("options JSON is %d bytes, more than the %d allowed", len(text), maxJSONBytes)
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	if err := openObject(dec); err != nil {
		return nil, err
	}
	o := Options{}
	for dec.More() {
		k, v, err := member(dec)
		if err != nil {
			return nil, err
		}
		if _, dup := o[k]; dup {
			return nil, Errorf(printable(k), "give each option once", "is given twice in the options JSON")
		}
		if len(o) == maxOptionCount {
			return nil, fmt.Errorf("options JSON has more than the %d keys allowed", maxOptionCount)
		}
		o[k] = v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, notObject(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("options JSON has trailing data after the object")
	}
	return o, nil
}

func notObject(err error) error {
	return fmt.Errorf("options are not a JSON object of strings: %v", err)
}

// openObject reads the opening brace.
func openObject(dec *json.Decoder) error {
	t, err := dec.Token()
	switch {
	case err != nil:
		return notObject(err)
	case t == nil:
		return errors.New("options are not a JSON object of strings: got null")
	case t != json.Delim('{'):
		return notObject(fmt.Errorf("got %s", jsonKind(t)))
	}
	return nil
}

// member reads one "key": "value" pair and checks both.
func member(dec *json.Decoder) (string, string, error) {
	kt, err := dec.Token()
	if err != nil {
		return "", "", notObject(err)
	}
	k, ok := kt.(string)
	if !ok { // the decoder yields string keys only; stay safe if that changes
		return "", "", notObject(fmt.Errorf("key is %s", jsonKind(kt)))
	}
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return "", "", notObject(err)
	}
	s, isString := raw.(string)
	switch {
	case !isString:
		return "", "", Errorf(printable(k), `write the value in quotes, for example "true" or "1"`, "must be a string (FlexVolume options are all strings), got %s", jsonKind(raw))
	case len(s) > maxValueBytes:
		return "", "", Errorf(printable(k), "shorten it", "is %d bytes long, more than %d", len(s), maxValueBytes)
	case !validKey(k):
		return "", "", Errorf(printable(k), "use letters, digits and . _ - / only", "is not a valid option name")
	}
	return k, s, nil
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
	case json.Delim:
		return "an array" // the only other opening token where an object is expected
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
	fs, err := fsType(o, defaultFS)
	if err != nil {
		return nil, err
	}
	c.FSType = fs.Name
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
	// The allowed mount and mkfs options depend on the filesystem, so they
	// are checked once fsType is known.
	if c.MountOptions, err = MountOptions(fs, o["mountOptions"]); err != nil {
		return nil, err
	}
	if c.MkfsOptions, err = MkfsOptions(fs, o["mkfsOptions"]); err != nil {
		return nil, err
	}
	if c.Secrets, err = secrets(o); err != nil {
		return nil, err
	}
	return c, nil
}

// kubeletKeys are the keys kubelet sets that flexblock reads.
var kubeletKeys = []string{KeyFSType, KeyReadWrite, KeyVolumeName, KeyPodName, KeyPodNS, KeyPodUID, KeySA, KeyFSGroup, KeyFSGroupOld}

// caseVariants refuses a key that differs only in case from a key flexblock
// reads ("FsType", "kubernetes.io/FSType"): it would be ignored, or taken
// for a typo of the real one, while the reader believes it is in effect.
func caseVariants(o Options, known map[string]bool) error {
	for k := range o {
		if known[k] {
			continue
		}
		for _, want := range kubeletKeys {
			if k != want && strings.EqualFold(k, want) {
				return Errorf(printable(k), "spell it "+want, "differs only in case from %q", want)
			}
		}
		for want := range known {
			if strings.EqualFold(k, want) {
				return Errorf(printable(k), "spell it "+want, "differs only in case from %q", want)
			}
		}
	}
	return nil
}

func checkKnown(o Options, backendKeys []string) error {
	known := map[string]bool{}
	for _, k := range append(append([]string{}, commonKeys...), backendKeys...) {
		known[k] = true
	}
	if err := caseVariants(o, known); err != nil {
		return err
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

// fsType returns the filesystem the volume asks for: the user's fsType
// wins over kubelet's, and the default applies when neither is set.
func fsType(o Options, def string) (*filesystem.FS, error) {
	v, field := o[KeyFSType], KeyFSType
	if u, ok := o["fsType"]; ok {
		v, field = u, "fsType"
	}
	if v == "" {
		v, field = def, "defaultFSType (config)"
	}
	if fs := filesystem.Lookup(v); fs != nil {
		return fs, nil
	}
	return nil, Errorf(field, "use one of "+strings.Join(filesystem.Names(), ", "), "is %q, which flexblock does not support", printable(v))
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
