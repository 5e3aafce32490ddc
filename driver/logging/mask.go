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
type Masker struct {
	mu      sync.RWMutex
	secrets []string
}

// minSecretLen avoids masking every "a" of a log when a secret is tiny; such
// secrets are still never logged by the code, this is the safety net.
const minSecretLen = 3

// Add registers a secret.
func (m *Masker) Add(secret string) {
	if len(secret) < minSecretLen {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	esc, _ := json.Marshal(secret)
	for _, v := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), string(esc[1 : len(esc)-1])} {
		if !contains(m.secrets, v) {
			m.secrets = append(m.secrets, v)
		}
	}
	// Longest first, so a secret containing another is masked whole.
	sort.Slice(m.secrets, func(i, j int) bool { return len(m.secrets[i]) > len(m.secrets[j]) })
}

// Mask returns s with every registered secret replaced.
func (m *Masker) Mask(s string) string {
	if m == nil {
		return s
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, v := range m.secrets {
		s = strings.ReplaceAll(s, v, "***")
	}
	return s
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
