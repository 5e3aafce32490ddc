package filesystem

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// value is a typed check of one option's value. Every kind below accepts
// only letters, digits and a few separators, so no value can name a path or
// a device.
type value struct {
	desc string            // what is expected, for the error
	ok   func(string) bool // nil: the option takes no value
	bare bool              // the option may also appear without "=value"
}

// OptionError says which item of an option list is refused and what the
// filesystem allows; options turns it into an error naming the field.
type OptionError struct {
	Item    string // the offending flag, sub-option or mount option
	Problem string
	Allowed string // what is allowed instead, bounded in length
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("%q %s; allowed: %s", e.Item, e.Problem, e.Allowed)
}

// maxAllowed bounds the "allowed" list in a message.
const maxAllowed = 900

func bounded(s string) string {
	if len(s) > maxAllowed {
		return s[:maxAllowed] + "..."
	}
	return s
}

func num(min, max int64) value {
	return value{desc: fmt.Sprintf("a number from %d to %d", min, max), ok: func(v string) bool {
		n, err := strconv.ParseInt(v, 10, 64)
		return err == nil && n >= min && n <= max && v == strconv.FormatInt(n, 10)
	}}
}

// size is a byte count with an optional k, m, g or t unit, as the mkfs tools
// and the kernel's option parsers read them.
var size = value{desc: "a size such as 4096, 64k or 1g", ok: func(v string) bool {
	d := strings.TrimRight(v, "kKmMgGtT")
	if len(v)-len(d) > 1 || d == "" || len(d) > 18 {
		return false
	}
	for _, c := range d {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}}

func label(max int) value {
	return value{desc: fmt.Sprintf("a label of at most %d letters, digits, '.', '_' or '-', starting with a letter or digit", max), ok: func(v string) bool {
		if v == "" || len(v) > max || !isAlnum(v[0]) {
			return false
		}
		for i := 0; i < len(v); i++ {
			if !isAlnum(v[i]) && !strings.ContainsRune("._-", rune(v[i])) {
				return false
			}
		}
		return true
	}}
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func enum(vals ...string) value {
	return value{desc: "one of " + strings.Join(vals, ", "), ok: func(v string) bool {
		for _, a := range vals {
			if v == a {
				return true
			}
		}
		return false
	}}
}

// orBare lets an option with a value also appear alone ("lazy_itable_init"
// means "lazy_itable_init=1").
func orBare(v value) value { v.bare = true; return v }

var (
	bare   = value{bare: true}
	bit    = enum("0", "1")
	optBit = orBare(bit)
)

// check validates "name" or "name=val" against the allowed set and returns
// the name, for duplicate detection.
func check(item string, allowed map[string]value, what string) (string, error) {
	name, val, hasVal := strings.Cut(item, "=")
	v, ok := allowed[name]
	if !ok {
		return name, &OptionError{Item: item, Problem: "is not an allowed " + what, Allowed: listValues(allowed)}
	}
	switch {
	case !hasVal && !v.bare:
		return name, &OptionError{Item: item, Problem: "needs a value: " + v.desc, Allowed: listValues(allowed)}
	case hasVal && v.ok == nil:
		return name, &OptionError{Item: item, Problem: "takes no value", Allowed: listValues(allowed)}
	case hasVal && strings.ContainsRune(val, '/'):
		return name, &OptionError{Item: item, Problem: "names a path; no option value may hold '/'", Allowed: listValues(allowed)}
	case hasVal && !v.ok(val):
		return name, &OptionError{Item: item, Problem: "has a value that is not " + v.desc, Allowed: listValues(allowed)}
	}
	return name, nil
}

// list checks a comma-separated list of name[=value] items, refusing empty
// items and any name given twice (which one would win is the tool's
// business, and a hidden second value is how a check gets fooled).
func list(s string, allowed map[string]value, what string) error {
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		if item == "" {
			return &OptionError{Item: s, Problem: "has an empty item; separate items with single commas", Allowed: listValues(allowed)}
		}
		name, err := check(item, allowed, what)
		if err != nil {
			return err
		}
		if seen[name] {
			return &OptionError{Item: item, Problem: "is given twice", Allowed: listValues(allowed)}
		}
		seen[name] = true
	}
	return nil
}

// listValues renders an allowed set as "a, b=<number...>" for messages.
func listValues(allowed map[string]value) string {
	names := make([]string, 0, len(allowed))
	for n, v := range allowed {
		if v.ok != nil {
			n += "=…"
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return bounded(strings.Join(names, ", "))
}

// merge builds one allowed set from several.
func merge(sets ...map[string]value) map[string]value {
	out := map[string]value{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}
