package filesystem

import (
	"strings"
	"testing"
)

// FuzzParseMkfs: whatever a volume asks, an accepted argument list holds
// no '/', no word mkfs would take as the device, and none of the flags that
// read or write node files in their plain spelling (the unit tests cover
// the grouped and attached ones); an accepted mount option list holds no '/'.
func FuzzParseMkfs(f *testing.F) {
	for _, s := range []string{"-L data", "-qF -E stride=4", "--label=x -d dup", "-m crc=1,finobt=1", "-detc", "-- x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, fs := range table {
			words, err := fs.ParseMkfs(in)
			if err != nil {
				continue
			}
			for i, w := range words {
				if strings.ContainsRune(w, '/') {
					t.Fatalf("%s accepted %q: a word holds '/'", fs.Name, in)
				}
				if i == 0 && !strings.HasPrefix(w, "-") {
					t.Fatalf("%s accepted %q: first word is not a flag", fs.Name, in)
				}
				if w == "--" || strings.HasPrefix(w, "--rootdir") || w == "-z" || w == "-p" || w == "-r" {
					t.Fatalf("%s accepted %q (word %q)", fs.Name, in, w)
				}
			}
			if items, err := fs.ParseMount(in); err == nil && strings.Contains(strings.Join(items, ","), "/") {
				t.Fatalf("%s accepted mount options %q", fs.Name, in)
			}
		}
	})
}
