package logging

import (
	"encoding/json"
	"strings"
	"testing"
)

// A Secret made with --from-file ends in a newline; the backends use the
// value without it (rbd trims the cephx key) and tools print it without
// it. The masker must find that form too.
func TestMaskSecretWithoutItsTrailingNewline(t *testing.T) {
	for _, secret := range []string{"QVFCbTJnTnJqTVlpQXhBQU1lNExJT2dML25zUzFOM3JxWnNydWc9PQ==\n", "hunter2\r\n", "ab\n"} {
		m := &Masker{}
		m.Add(secret)
		bare := strings.TrimRight(secret, "\r\n")
		for _, line := range []string{"auth: key " + bare + " rejected", `{"stderr":"` + bare + `"}`, bare} {
			if got := m.Mask(line); strings.Contains(got, bare) {
				t.Errorf("secret %q: %q masked as %q", secret, line, got)
			}
		}
	}
}

// Secrets full of regex and JSON metacharacters, of every length, in a
// tool's stderr as the runner logs it (raw and JSON-encoded): the secret
// between "password " and " rejected" is gone in both.
func TestMaskMetacharacterSecrets(t *testing.T) {
	for _, secret := range []string{`.*`, `\`, `"`, `a"b\c`, `$1`, `(?i)`, `<&>`, `\u0041`, `%s%d`, `]]`, "é", "€uro", `*`, `***`, "\t"} {
		m := &Masker{}
		m.Add(secret)
		esc, _ := json.Marshal(secret)
		raw := "login failed: password " + secret + " rejected"
		enc, _ := json.Marshal(raw)
		for _, c := range []struct{ line, form string }{{raw, secret}, {string(enc), string(esc[1 : len(esc)-1])}} {
			if got := m.Mask(c.line); strings.Contains(got, "password "+c.form+" ") && c.form != "***" {
				t.Errorf("secret %q: %q masked as %q", secret, c.line, got)
			}
		}
	}
}
