// Package logging writes the driver's JSON log lines to a size-bounded file
// and masks every registered secret in everything it writes.
package logging

import (
	"encoding/base64"
	"encoding/json"
	"sort"
	"strings"
	"sync"
)

// Masker replaces registered secrets with "***". It knows each secret in the
// forms it can appear in: raw, base64 (as kubelet passes it) and JSON-escaped.
//
// How a secret is found depends on its length, because a secret of any
// length must be masked (a CHAP password may be a single character) but
// masking every "a" of a log would destroy it:
//   - 4 characters or more: every occurrence, even inside other text.
//   - 1 to 3 characters: every occurrence that stands as a whole value,
//     that is not glued to a letter or digit on either side. That covers
//     where a secret really appears: an argv element equal to it, the value
//     of key=value or "key":"value", a word of a tool's message. The same
//     letters inside a longer word are left alone ("a" in "kubelet").
//
// The price of the second rule is over-masking: with a CHAP password "a",
// the word "a" of every message becomes "***". That is the safe side.
type Masker struct {
	mu sync.RWMutex
	// anywhere are masked as substrings, whole are masked as whole values;
	// both longest first, so a secret containing another is masked whole.
	anywhere []string
	whole    []string
}

// substringMin is the shortest secret masked wherever it appears.
const substringMin = 4

// Add registers a secret (the empty string is no secret). A secret that
// ends in line breaks (a Secret made with --from-file) is also registered
// without them: that is how backends use it and tools print it.
func (m *Masker) Add(secret string) {
	if bare := strings.TrimRight(secret, "\r\n"); bare != secret {
		m.add(bare)
	}
	m.add(secret)
}

func (m *Masker) add(secret string) {
	if secret == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	list := &m.whole
	if len(secret) >= substringMin {
		list = &m.anywhere
	}
	esc, _ := json.Marshal(secret)
	for _, v := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), string(esc[1 : len(esc)-1])} {
		if !contains(*list, v) {
			*list = append(*list, v)
		}
	}
	sort.Slice(*list, func(i, j int) bool { return len((*list)[i]) > len((*list)[j]) })
}

// Mask returns s with every registered secret replaced.
func (m *Masker) Mask(s string) string {
	if m == nil {
		return s
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, v := range m.anywhere {
		s = strings.ReplaceAll(s, v, "***")
	}
	for _, v := range m.whole {
		s = maskWhole(s, v)
	}
	return s
}

// maskWhole replaces the occurrences of v that stand as a whole value.
func maskWhole(s, v string) string {
	if !strings.Contains(s, v) {
		return s
	}
	var b strings.Builder
	i := 0
	for {
		j := strings.Index(s[i:], v)
		if j < 0 {
			break
		}
		j += i
		end := j + len(v)
		if startsValue(s, j) && !isWord(s, end) {
			b.WriteString(s[i:j])
			b.WriteString("***")
			i = end
			continue
		}
		b.WriteString(s[i : j+1])
		i = j + 1
	}
	b.WriteString(s[i:])
	return b.String()
}

// startsValue: nothing word-like is glued before s[i]. A JSON escape
// (\n, \t, \r, \u003c) counts as a separator, so a secret at the start of
// a tool's line is found in the JSON log line too.
func startsValue(s string, i int) bool {
	switch {
	case i == 0 || !isWord(s, i-1):
		return true
	case i >= 2 && s[i-2] == '\\' && strings.IndexByte("ntr", s[i-1]) >= 0:
		return true
	case i >= 6 && s[i-6] == '\\' && s[i-5] == 'u':
		return true
	}
	return false
}

// isWord: s[i] exists and is a letter, a digit or part of a non-ASCII
// character.
func isWord(s string, i int) bool {
	if i >= len(s) {
		return false
	}
	c := s[i]
	return c >= 0x80 || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// MaskAll masks each string of a slice into a new slice.
func (m *Masker) MaskAll(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = m.Mask(s)
	}
	return out
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}
