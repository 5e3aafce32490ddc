package logging

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMaskerForms(t *testing.T) {
	m := &Masker{}
	m.Add(`pa"ss\word`)
	for _, s := range []string{`pa"ss\word`, base64.StdEncoding.EncodeToString([]byte(`pa"ss\word`)), `pa\"ss\\word`} {
		if got := m.Mask("x " + s + " y"); got != "x *** y" {
			t.Errorf("Mask(%q) = %q", s, got)
		}
	}
	var nilMask *Masker
	if nilMask.Mask("s") != "s" {
		t.Error("nil masker")
	}
}

// A secret of 4 or more characters is masked wherever it appears, even
// glued to other text.
func TestLongSecretMaskedAsSubstring(t *testing.T) {
	m := &Masker{}
	m.Add("abcd")
	if got := m.Mask("xxabcdyy abcd"); got != "xx***yy ***" {
		t.Fatalf("got %q", got)
	}
}

// A secret of 1 to 3 characters (a CHAP password "ab" is legal) is masked
// where it stands as a whole value: an argv element, after "=" or ":", a
// JSON string, a word of a message; but not inside longer words, which
// would destroy every log line (secret "a" in "Mapping a volume").
func TestShortSecretMaskedAsWholeValue(t *testing.T) {
	for _, c := range []struct{ secret, in, want string }{
		{"ab", "--password=ab", "--password=***"},
		{"ab", "-v ab --op", "-v *** --op"},
		{"ab", `{"node.session.auth.password":"ab"}`, `{"node.session.auth.password":"***"}`},
		{"ab", "password: ab\n", "password: ***\n"},
		{"ab", "ab", "***"},
		{"ab", "abc cab xaby", "abc cab xaby"},
		{"a", "Mapping a volume: a=a,b", "Mapping *** volume: ***=***,b"},
		{"a", "label kubelet", "label kubelet"},
		{"x1!", "secret=x1!", "secret=***"},
		{"ab", base64.StdEncoding.EncodeToString([]byte("ab")), "***"},
		{"ab", "key=" + base64.StdEncoding.EncodeToString([]byte("ab")) + ";", "key=***;"},
	} {
		m := &Masker{}
		m.Add(c.secret)
		if got := m.Mask(c.in); got != c.want {
			t.Errorf("secret %q: Mask(%q) = %q, want %q", c.secret, c.in, got, c.want)
		}
		if got := m.MaskAll([]string{"iscsiadm", "-v", c.secret}); got[2] != "***" || got[1] != "-v" {
			t.Errorf("secret %q: argv %q", c.secret, got)
		}
	}
}

func TestEmptySecretIgnored(t *testing.T) {
	m := &Masker{}
	m.Add("")
	if m.Mask("a b") != "a b" {
		t.Fatal("empty secret changed the text")
	}
}

func TestClipKeepsHeadAndTail(t *testing.T) {
	if Clip("short", 100) != "short" {
		t.Fatal("short string changed")
	}
	s := "HEAD" + strings.Repeat("m", 10000) + "TAIL"
	got := Clip(s, 200)
	if len(got) > 200 || !strings.HasPrefix(got, "HEAD") || !strings.HasSuffix(got, "TAIL") || !strings.Contains(got, "bytes cut]") {
		t.Fatalf("len %d: %.80q...%.80q", len(got), got, got[len(got)-80:])
	}
	// Multi-byte runes are never split, whatever the bound.
	u := strings.Repeat("é€😀", 1000)
	for n := 40; n < 80; n++ {
		c := Clip(u, n)
		if len(c) > n || !utf8.ValidString(c) {
			t.Fatalf("n=%d: len %d valid %v", n, len(c), utf8.ValidString(c))
		}
	}
	if len(Clip(s, 3)) > 3 {
		t.Fatal("tiny bound exceeded")
	}
}

func TestFileMasksAndRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "flexblock.log")
	m := &Masker{}
	m.Add("topsecret")
	f, err := Open(path, 400, m)
	if err != nil {
		t.Fatal(err)
	}
	log := New(f)
	for i := 0; i < 10; i++ {
		log.Info("line", "key", "topsecret")
	}
	f.Close()
	cur, _ := os.ReadFile(path)
	old, err := os.ReadFile(path + ".1")
	if err != nil {
		t.Fatalf("no rotation: %v", err)
	}
	if len(cur) > 400 || len(old) > 400 {
		t.Errorf("sizes %d %d exceed the bound", len(cur), len(old))
	}
	all := string(cur) + string(old)
	if strings.Contains(all, "topsecret") || !strings.Contains(all, `"key":"***"`) {
		t.Errorf("masking: %s", all)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
}
