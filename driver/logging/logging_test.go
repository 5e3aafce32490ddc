package logging

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMaskerForms(t *testing.T) {
	m := &Masker{}
	m.Add(`pa"ss\word`)
	m.Add("ab") // too short to mask safely
	for _, s := range []string{`pa"ss\word`, base64.StdEncoding.EncodeToString([]byte(`pa"ss\word`)), `pa\"ss\\word`} {
		if got := m.Mask("x " + s + " y"); got != "x *** y" {
			t.Errorf("Mask(%q) = %q", s, got)
		}
	}
	if m.Mask("ab cd") != "ab cd" {
		t.Error("short secret masked")
	}
	var nilMask *Masker
	if nilMask.Mask("s") != "s" {
		t.Error("nil masker")
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
