package lazyre

import "testing"

func TestCompilesOnFirstUse(t *testing.T) {
	r := New(`^a+$`)
	if r.re != nil {
		t.Fatal("compiled at New")
	}
	if !r.MatchString("aaa") || r.MatchString("b") || r.FindStringSubmatch("aa")[0] != "aa" {
		t.Fatal("wrong answers")
	}
}
