package filesystem

import (
	"sort"
	"strings"
)

// flag is one mkfs option flexblock lets a volume pass. Anything not
// listed is refused: notably the flags that read host files into the new
// filesystem (-d, --rootdir, -p), write elsewhere on the node (-z undo
// files, -l bad block lists), name another device (journal or log devices),
// set a UUID (a duplicate one defeats identity checks), or make mkfs exit
// without formatting (-V, -n, -N, --help).
type flag struct {
	short byte   // 0: no short form
	long  string // "": no long form (only mkfs.btrfs has them)
	// At most one of these says what the argument is; none: no argument.
	arg   *value           // a single value
	sub   map[string]value // a comma list of name[=value] sub-options
	feats map[string]value // a comma list of features, each may start with ^
}

type flagSet []flag

func (f *flag) takesArg() bool { return f.arg != nil || f.sub != nil || f.feats != nil }

func (f *flag) String() string {
	if f.short != 0 {
		return "-" + string(f.short)
	}
	return "--" + f.long
}

// ParseMkfs checks space-separated extra mkfs arguments the way the mkfs
// tool's getopt would read them: grouped short flags ("-qF"), a value
// attached ("-Ldata") or in the next word ("-L data"), long options
// ("--label=data" or "--label data") and sub-option lists ("-E a=b,c").
// Each flag, sub-option and value must be on this filesystem's list; no
// value may hold '/'; a word that is not a flag or a flag's value is
// refused, since mkfs would take it as the device or the size.
func (fs *FS) ParseMkfs(v string) ([]string, error) {
	words := strings.Fields(v)
	seen := map[string]bool{}
	for i := 0; i < len(words); i++ {
		opts, used, err := fs.mkfs.word(words, i)
		if oe, ok := err.(*OptionError); ok && oe.Problem == notAllowedFlag {
			oe.Problem += " for " + fs.Name
		}
		if err != nil {
			return nil, err
		}
		for _, o := range opts {
			f := o.f
			if seen[f.String()] {
				return nil, &OptionError{Item: f.String(), Problem: "is given twice", Allowed: fs.mkfs.list()}
			}
			seen[f.String()] = true
		}
		i += used
	}
	return words, nil
}

// given is one flag as parsed from a word, with its value ("" when it
// takes none).
type given struct {
	f   *flag
	val string
}

// word parses words[i] and returns the flags it holds and how many of the
// following words it consumed as a value.
func (s flagSet) word(words []string, i int) ([]given, int, error) {
	w := words[i]
	switch {
	case w == "--":
		return nil, 0, &OptionError{Item: w, Problem: "ends the options, so mkfs would take what follows as the device", Allowed: s.list()}
	case strings.HasPrefix(w, "--"):
		return s.long(words, i)
	case strings.HasPrefix(w, "-") && len(w) > 1:
		return s.shorts(words, i)
	}
	return nil, 0, &OptionError{Item: w, Problem: "is not a flag or a flag's value: mkfs would take it as the device or the size", Allowed: s.list()}
}

// long parses "--name", "--name=value" or "--name value". getopt_long also
// accepts unambiguous abbreviations; they are refused here, since only the
// exact names are listed.
func (s flagSet) long(words []string, i int) ([]given, int, error) {
	name, val, hasVal := strings.Cut(words[i][2:], "=")
	f := s.find(func(f *flag) bool { return f.long != "" && f.long == name })
	if f == nil {
		return nil, 0, &OptionError{Item: "--" + name, Problem: notAllowedFlag, Allowed: s.list()}
	}
	if !f.takesArg() {
		if hasVal {
			return nil, 0, &OptionError{Item: words[i], Problem: "takes no value", Allowed: s.list()}
		}
		return []given{{f: f}}, 0, nil
	}
	used := 0
	if !hasVal {
		if i+1 >= len(words) {
			return nil, 0, &OptionError{Item: words[i], Problem: "needs a value", Allowed: s.list()}
		}
		val, used = words[i+1], 1
	}
	return []given{{f, val}}, used, f.checkArg(val)
}

// shorts parses a group of short flags; as in getopt, the first flag that
// takes a value takes the rest of the word, or the next word when the rest
// is empty (even if that word starts with '-').
func (s flagSet) shorts(words []string, i int) ([]given, int, error) {
	w := words[i]
	var out []given
	for j := 1; j < len(w); j++ {
		c := w[j]
		f := s.find(func(f *flag) bool { return f.short == c })
		if f == nil {
			return nil, 0, &OptionError{Item: "-" + string(c), Problem: notAllowedFlag, Allowed: s.list()}
		}
		if !f.takesArg() {
			out = append(out, given{f: f})
			continue
		}
		if j+1 < len(w) {
			return append(out, given{f, w[j+1:]}), 0, f.checkArg(w[j+1:])
		}
		if i+1 >= len(words) {
			return nil, 0, &OptionError{Item: w, Problem: "needs a value", Allowed: s.list()}
		}
		return append(out, given{f, words[i+1]}), 1, f.checkArg(words[i+1])
	}
	return out, 0, nil
}

const notAllowedFlag = "is not an allowed flag"

// MkfsArgs is the mkfs argument list for dev: the table's defaults, then
// extra (as ParseMkfs accepted it), so the user's single values win
// (getopt's last). A flag with a sub-option list is different: mke2fs keeps
// only the last -E whole, so a user's "-E stride=4" silently dropped the
// default "-E nodiscard,lazy_itable_init=1" and mke2fs discarded (zeroed)
// the whole device. Such a list given in both is merged into the user's:
// its sub-options plus the defaults' ones it does not name.
func (fs *FS) MkfsArgs(extra []string, dev string) []string {
	defs, user := fs.mkfs.parsed(fs.MkfsDefaults), fs.mkfs.parsed(extra)
	var out []string
	for _, d := range defs {
		if u := findGiven(user, d.f); u != nil && d.f.sub != nil {
			u.val = mergeSubs(d.val, u.val)
			continue
		}
		out = append(out, d.words()...)
	}
	if len(out) == len(render(defs)) { // nothing merged: as given
		return append(append(append([]string{}, fs.MkfsDefaults...), extra...), dev)
	}
	return append(append(out, render(user)...), dev)
}

func render(gs []given) []string {
	var out []string
	for _, g := range gs {
		out = append(out, g.words()...)
	}
	return out
}

// parsed splits an accepted argument list into flags and values; it is
// only called on lists ParseMkfs accepted (or the table's own defaults).
func (s flagSet) parsed(words []string) []given {
	var out []given
	for i := 0; i < len(words); i++ {
		gs, used, _ := s.word(words, i)
		out = append(out, gs...)
		i += used
	}
	return out
}

func findGiven(gs []given, f *flag) *given {
	for i := range gs {
		if gs[i].f == f {
			return &gs[i]
		}
	}
	return nil
}

// words spells g as separate words ("-E", "a=1"), which every getopt
// reads the same way: no accepted value starts with '-'.
func (g given) words() []string {
	if !g.f.takesArg() {
		return []string{g.f.String()}
	}
	return []string{g.f.String(), g.val}
}

// mergeSubs is user's sub-option list plus def's items it does not name.
func mergeSubs(def, user string) string {
	named := map[string]bool{}
	for _, it := range strings.Split(user, ",") {
		name, _, _ := strings.Cut(it, "=")
		named[name] = true
	}
	var keep []string
	for _, it := range strings.Split(def, ",") {
		if name, _, _ := strings.Cut(it, "="); !named[name] {
			keep = append(keep, it)
		}
	}
	return strings.Join(append(keep, user), ",")
}

func (s flagSet) find(match func(*flag) bool) *flag {
	for i := range s {
		if match(&s[i]) {
			return &s[i]
		}
	}
	return nil
}

// checkArg checks the value of f.
func (f *flag) checkArg(v string) error {
	if strings.ContainsRune(v, '/') {
		return &OptionError{Item: f.String() + " " + v, Problem: "names a path; no mkfs value may hold '/'", Allowed: f.describe()}
	}
	switch {
	case f.sub != nil:
		return prefix(f, list(v, f.sub, "sub-option of "+f.String()))
	case f.feats != nil:
		return prefix(f, list(unnegate(v), f.feats, "feature for "+f.String()))
	case !f.arg.ok(v):
		return &OptionError{Item: f.String() + " " + v, Problem: "has a value that is not " + f.arg.desc, Allowed: f.describe()}
	}
	return nil
}

// unnegate drops the '^' that turns a feature off, so that "^quota" is
// checked as "quota" (and "quota,^quota" counts as a duplicate).
func unnegate(v string) string {
	items := strings.Split(v, ",")
	for i, it := range items {
		items[i] = strings.TrimPrefix(it, "^")
	}
	return strings.Join(items, ",")
}

// prefix names the flag in a sub-option's error ("-E root_owner=0:0").
func prefix(f *flag, err error) error {
	if oe, ok := err.(*OptionError); ok {
		oe.Item = f.String() + " " + oe.Item
	}
	return err
}

// describe says what f accepts.
func (f *flag) describe() string {
	names := f.String()
	if f.short != 0 && f.long != "" {
		names += "/--" + f.long
	}
	switch {
	case f.sub != nil:
		return names + " " + listValues(f.sub)
	case f.feats != nil:
		return names + " features (each may start with ^) " + listValues(f.feats)
	case f.arg != nil:
		return names + " <" + f.arg.desc + ">"
	}
	return names
}

// list names every allowed flag, for messages.
func (s flagSet) list() string {
	names := make([]string, 0, len(s))
	for i := range s {
		n := s[i].String()
		if s[i].short != 0 && s[i].long != "" {
			n += "/--" + s[i].long
		}
		if s[i].takesArg() {
			n += " …"
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return bounded(strings.Join(names, ", "))
}
