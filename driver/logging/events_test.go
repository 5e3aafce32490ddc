package logging

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Every event a script or benchmark selects on (jq's .msg == "X", or a Go
// parser's case "X") must be one the driver names: a renamed message
// would otherwise silently empty a benchmark column or pass a scenario.
func TestParsedEventsAreNamed(t *testing.T) {
	root := filepath.Join("..", "..")
	jq := regexp.MustCompile(`\.msg == "([^"]+)"`)
	found := map[string]string{}
	for _, dir := range []string{"scripts", "bench"} {
		_ = filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".sh") || strings.HasSuffix(p, ".go")) {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, m := range jq.FindAllStringSubmatch(string(b), -1) {
				found[m[1]] = p
			}
			return nil
		})
	}
	if len(found) == 0 {
		t.Fatal("no parsed events found: the scan is broken")
	}
	for ev, where := range found {
		if !slices.Contains(Events(), ev) {
			t.Errorf("%s selects log event %q, which the driver does not name (driver/logging/events.go)", where, ev)
		}
	}
}
