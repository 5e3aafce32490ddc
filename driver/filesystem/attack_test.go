package filesystem

import (
	"strings"
	"testing"
)

// lastE reads args as mke2fs's getopt loop does (optstring of e2fsprogs
// 1.47) and returns the -E value it keeps: the last one.
func lastE(t *testing.T, args []string) string {
	t.Helper()
	const withArg = "bdeEgGiIJlLmMNoOrRsTtUCz"
	e := ""
	for i := 0; i < len(args); i++ {
		w := args[i]
		if !strings.HasPrefix(w, "-") || w == "-" {
			continue // the device (getopt permutes it to the end)
		}
		for j := 1; j < len(w); j++ {
			if !strings.ContainsRune(withArg, rune(w[j])) {
				continue
			}
			v := w[j+1:]
			if v == "" {
				i++
				v = args[i]
			}
			if w[j] == 'E' {
				e = v
			}
			break
		}
	}
	return e
}

// A volume's -E, in any spelling, must not drop the defaults' -E items
// (mke2fs keeps only the last -E): losing nodiscard made mke2fs discard
// the whole device, losing lazy init made formats O(size).
func TestUserExtendedOptionsKeepTheDefaults(t *testing.T) {
	for _, name := range []string{"ext4", "ext3"} {
		fs := Lookup(name)
		for _, in := range []string{"-E stride=4", "-Estride=4", "-qE stride=4", "-qEstride=4,stripe_width=8", "-L x -E resize=100000"} {
			words, err := fs.ParseMkfs(in)
			if err != nil {
				t.Fatalf("%s %q: %v", name, in, err)
			}
			e := lastE(t, fs.MkfsArgs(words, "/dev/x"))
			for _, want := range []string{"nodiscard", "lazy_itable_init=1", "lazy_journal_init=1", "stride=4"} {
				if want == "stride=4" && !strings.Contains(in, "stride") {
					continue
				}
				if !strings.Contains(","+e+",", ","+want+",") {
					t.Errorf("%s mkfsOptions %q: mke2fs gets -E %q, which lacks %s", name, in, e, want)
				}
			}
		}
		// A sub-option the user names is the user's: last wins inside the list.
		words, _ := fs.ParseMkfs("-E lazy_itable_init=0")
		if e := lastE(t, fs.MkfsArgs(words, "/dev/x")); !strings.HasSuffix(e, "lazy_itable_init=0") || strings.Contains(e, "lazy_itable_init=1") {
			t.Errorf("%s: user's lazy_itable_init=0 not in effect: -E %q", name, e)
		}
	}
}

// Defaults and user flags both reach the tool, the device last.
func TestMkfsArgsOrder(t *testing.T) {
	fs := Lookup("xfs")
	words, err := fs.ParseMkfs("-qL data -d su=64k,sw=4")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(fs.MkfsArgs(words, "/dev/x"), " ")
	if got != "-f -K -qL data -d su=64k,sw=4 /dev/x" {
		t.Fatalf("args %q", got)
	}
}

// A format writes metadata only (README: "no discard"): a volume cannot
// ask mke2fs to discard the whole device, which zeroes whatever lies
// outside the regions the blank check reads and takes O(size) on thin
// storage.
func TestMkfsNeverDiscards(t *testing.T) {
	for _, name := range []string{"ext4", "ext3"} {
		for _, in := range []string{"-E discard", "-Ediscard", "-E stride=4,discard", "-qE nodiscard,discard"} {
			if _, err := Lookup(name).ParseMkfs(in); err == nil {
				t.Errorf("%s accepted mkfsOptions %q", name, in)
			}
		}
	}
}
