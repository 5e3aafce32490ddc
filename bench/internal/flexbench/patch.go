package flexbench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Proposal is a driver change, kept as a patch under bench/proposals, that
// the benchmarks build and measure next to the current driver.
type Proposal struct {
	Patch string // file name under bench/proposals ("" for a build-flag-only variant)
	// Transform, when set, makes the change on the copied tree instead of
	// the patch: for mechanical changes to files others keep editing.
	Transform func(src string) error
	Tags      string // extra build tags
	Pkg       string // main package to build ("" for the module root); others get no test build
	Name      string
	ProdBin   string // built production binary ("" when it did not apply or build)
	TestBin   string // built test binary (loop backend)
	Err       string // why it was not built
}

// BuildProposal copies the run's snapshot of the working tree to dir,
// applies the patch (or the transform) and builds both binaries. A patch that no longer applies is reported, not fatal.
func (e *Env) BuildProposal(dir string, p *Proposal) {
	src := filepath.Join(dir, "src")
	if err := copyTree(e.Src, src); err != nil {
		p.Err = err.Error()
		return
	}
	if p.Transform != nil {
		if err := p.Transform(src); err != nil {
			p.Err = "transform: " + err.Error()
			return
		}
	} else if p.Patch != "" {
		cmd := exec.Command("git", "apply", filepath.Join(e.Repo, "bench", "proposals", p.Patch))
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			p.Err = fmt.Sprintf("patch does not apply to this tree: %v: %s", err, strings.TrimSpace(string(out)))
			return
		}
	}
	tags := []string{}
	if p.Tags != "" {
		tags = []string{"-tags", p.Tags}
	}
	prod := filepath.Join(dir, "flexblock")
	pkg := p.Pkg
	if pkg == "" {
		pkg = "."
	}
	if err := GoBuild(src, prod, pkg, append(tags, ProdBuildFlags...)...); err != nil {
		p.Err = err.Error()
		return
	}
	if pkg != "." {
		p.ProdBin = prod
		return
	}
	testTags := "flexblocktest"
	if p.Tags != "" {
		testTags += "," + p.Tags
	}
	test := filepath.Join(dir, "flexblock-test")
	if err := GoBuild(src, test, ".", append([]string{"-tags", testTags}, ProdBuildFlags...)...); err != nil {
		p.Err = err.Error()
		return
	}
	p.ProdBin, p.TestBin = prod, test
}

// copyTree copies the files git knows of (tracked and untracked, ignored
// ones left out) from a git work tree, or every regular file from a plain
// directory (a snapshot).
func copyTree(src, dst string) error {
	var files []string
	if _, err := os.Stat(filepath.Join(src, ".git")); err == nil {
		out, err := exec.Command("git", "-C", src, "ls-files", "-co", "--exclude-standard", "-z").Output()
		if err != nil {
			return fmt.Errorf("git ls-files: %w", err)
		}
		files = strings.Split(string(out), "\x00")
	} else {
		err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				rel, _ := filepath.Rel(src, path)
				files = append(files, rel)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		st, err := os.Lstat(filepath.Join(src, f))
		if err != nil || !st.Mode().IsRegular() {
			continue // deleted in the working tree, or not a file
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, f)), 0o755); err != nil {
			return err
		}
		if err := copyFile(filepath.Join(src, f), filepath.Join(dst, f), st.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}
