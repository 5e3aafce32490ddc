package options

import (
	"errors"
	"net"
	"strconv"
	"strings"

	"github.com/flexblock/flexblock/driver/filesystem"
	"github.com/flexblock/flexblock/driver/internal/lazyre"
)

var nameRE = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Name checks a name used in paths and tool arguments: letters, digits and
// . _ - only, starting with a letter or digit (so never "..", never "-opt").
func Name(field, v string, max int) error {
	if v == "" {
		return Errorf(field, "set it", "is empty")
	}
	if len(v) > max {
		return Errorf(field, "use at most "+strconv.Itoa(max)+" characters", "is %d characters long", len(v))
	}
	if !nameRE.MatchString(v) {
		return Errorf(field, "use letters, digits, '.', '_' and '-' only, starting with a letter or digit", "is %q, which has characters that are not allowed", printable(v))
	}
	return nil
}

// MountOptions checks a comma-separated list of mount options against
// what fs allows (the filesystem table's list): each item on its own, so a
// value cannot smuggle in another option.
func MountOptions(fs *filesystem.FS, v string) ([]string, error) {
	out, err := fs.ParseMount(v)
	return out, tableError("mountOptions", fs, err)
}

// MkfsOptions checks space-separated extra mkfs arguments as fs's mkfs tool
// would parse them, against what the filesystem table allows.
func MkfsOptions(fs *filesystem.FS, v string) ([]string, error) {
	out, err := fs.ParseMkfs(v)
	return out, tableError("mkfsOptions", fs, err)
}

// tableError turns the table's refusal into an error naming the field,
// the item and what is allowed instead.
func tableError(field string, fs *filesystem.FS, err error) error {
	var oe *filesystem.OptionError
	if !errors.As(err, &oe) {
		return err
	}
	return Errorf(field, "remove it or use what "+fs.Name+" allows: "+oe.Allowed, "item %q %s", printable(oe.Item), oe.Problem)
}

// HostPort checks "host[:port]" (IPv4, bracketed IPv6 or a DNS name) and
// returns it with the default port added.
func HostPort(field, v string, defPort int) (string, error) {
	fix := "write host[:port], for example 10.0.0.5:6789 or [fd00::5]:6789 or mon1.example.com"
	if v == "" || len(v) > 261 {
		return "", Errorf(field, fix, "is %q", printable(v))
	}
	host, port := v, strconv.Itoa(defPort)
	if h, p, err := net.SplitHostPort(v); err == nil {
		host, port = h, p
	} else if strings.Count(v, ":") > 1 || strings.HasPrefix(v, "[") {
		return "", Errorf(field, fix, "is %q", printable(v))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", Errorf(field, fix, "has an invalid port in %q", printable(v))
	}
	if net.ParseIP(host) == nil && !validDNSName(host) {
		return "", Errorf(field, fix, "has an invalid host in %q", printable(v))
	}
	return net.JoinHostPort(host, port), nil
}

var dnsLabelRE = lazyre.New(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

func validDNSName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if !dnsLabelRE.MatchString(l) {
			return false
		}
	}
	return true
}

// Bool parses "true"/"false" with a default for "".
func Bool(o Options, field string, def bool) (bool, error) {
	v, ok := o[field]
	if !ok || v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, Errorf(field, `use "true" or "false"`, "is %q", printable(v))
	}
	return b, nil
}

// OneOf checks v against a fixed list, with a default for "".
func OneOf(field, v, def string, allowed ...string) (string, error) {
	if v == "" {
		return def, nil
	}
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", Errorf(field, "use one of "+strings.Join(allowed, ", "), "is %q", printable(v))
}
