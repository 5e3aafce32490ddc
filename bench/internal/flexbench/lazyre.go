package flexbench

import (
	"bytes"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// lazyreSource is driver/internal/lazyre as the proposal adds it.
const lazyreSource = `// Package lazyre is a regexp compiled on first use. A package-level
// regexp.MustCompile runs at every process start, and a driver process
// lives for one call: init, kubelet's probe, uses none of them.
package lazyre

import (
	"regexp"
	"sync"
)

// Regexp is compiled on first use. A bad expression panics then, as
// regexp.MustCompile would at init (the tests use every one).
type Regexp struct {
	expr string
	once sync.Once
	re   *regexp.Regexp
}

// New returns the lazily compiled expression.
func New(expr string) *Regexp { return &Regexp{expr: expr} }

// Get compiles (once) and returns the expression.
func (r *Regexp) Get() *regexp.Regexp {
	r.once.Do(func() { r.re = regexp.MustCompile(r.expr) })
	return r.re
}

// MatchString is regexp.Regexp.MatchString.
func (r *Regexp) MatchString(s string) bool { return r.Get().MatchString(s) }

// FindStringSubmatch is regexp.Regexp.FindStringSubmatch.
func (r *Regexp) FindStringSubmatch(s string) []string { return r.Get().FindStringSubmatch(s) }

// FindString is regexp.Regexp.FindString.
func (r *Regexp) FindString(s string) string { return r.Get().FindString(s) }

// ReplaceAllString is regexp.Regexp.ReplaceAllString.
func (r *Regexp) ReplaceAllString(src, repl string) string { return r.Get().ReplaceAllString(src, repl) }

// String is the expression.
func (r *Regexp) String() string { return r.expr }
`

const lazyreTest = `package lazyre

import "testing"

func TestCompilesOnFirstUse(t *testing.T) {
	r := New(` + "`^a+$`" + `)
	if r.re != nil {
		t.Fatal("compiled at New")
	}
	if !r.MatchString("aaa") || r.MatchString("b") || r.FindStringSubmatch("aa")[0] != "aa" {
		t.Fatal("wrong answers")
	}
}
`

const lazyreImport = `"github.com/flexblock/flexblock/driver/internal/lazyre"`

var importBlock = regexp.MustCompile(`(?s)import \((.*?)\n\)`)

// LazyRegexps is the proposal "lazy regexps" as a mechanical change of a
// source tree (bench/proposals/lazy-regexp.patch is its output on one
// snapshot): every regexp.MustCompile in driver/ (tests excepted) becomes
// lazyre.New, *regexp.Regexp becomes *lazyre.Regexp, and the imports follow.
func LazyRegexps(src string) error {
	dir := filepath.Join(src, "driver", "internal", "lazyre")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, body := range map[string]string{"lazyre.go": lazyreSource, "lazyre_test.go": lazyreTest} {
		out, err := format.Source([]byte(body))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), out, 0o644); err != nil {
			return err
		}
	}
	return filepath.WalkDir(filepath.Join(src, "driver"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.HasPrefix(path, dir) {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil || !bytes.Contains(b, []byte("regexp.MustCompile(")) {
			return err
		}
		s := strings.ReplaceAll(string(b), "regexp.MustCompile(", "lazyre.New(")
		s = strings.ReplaceAll(s, "*regexp.Regexp", "*lazyre.Regexp")
		if !strings.Contains(s, "regexp.") {
			s = strings.Replace(s, "\t\"regexp\"\n", "", 1)
		}
		m := importBlock.FindStringSubmatchIndex(s)
		if m == nil {
			return fmt.Errorf("%s: no import block", path)
		}
		groups := strings.Split(s[m[2]:m[3]], "\n\n")
		added := false
		for i, g := range groups {
			if strings.Contains(g, `"github.com/flexblock/flexblock/`) {
				groups[i] = g + "\n\t" + lazyreImport
				added = true
				break
			}
		}
		if !added {
			groups = append(groups, "\t"+lazyreImport)
		}
		s = s[:m[2]] + strings.Join(groups, "\n\n") + s[m[3]:]
		out, err := format.Source([]byte(s))
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return os.WriteFile(path, out, 0o644)
	})
}
