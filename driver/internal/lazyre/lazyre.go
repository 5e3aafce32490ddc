// Package lazyre is a regexp compiled on first use. A package-level
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

// get compiles (once) and returns the expression.
func (r *Regexp) get() *regexp.Regexp {
	r.once.Do(func() { r.re = regexp.MustCompile(r.expr) })
	return r.re
}

// MatchString is regexp.Regexp.MatchString.
func (r *Regexp) MatchString(s string) bool { return r.get().MatchString(s) }

// FindStringSubmatch is regexp.Regexp.FindStringSubmatch.
func (r *Regexp) FindStringSubmatch(s string) []string { return r.get().FindStringSubmatch(s) }
