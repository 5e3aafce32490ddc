// Package flexbench is the machinery of flexblock's benchmarks: it builds
// the binaries, installs drivers the way the installer does, calls them the
// way kubelet does, reads the driver's own log to split a call's time into
// "inside the external tools" and "the driver itself", and makes loop
// devices, private mount namespaces and no-op tools.
//
// Everything here needs root (loop devices, mounts) except the builds and
// the init benchmark. See BENCHMARKS.md for what is measured and why.
package flexbench

import (
	"bytes"
	"fmt"
	"github.com/flexblock/flexblock/test/testkit"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Env is one benchmark run's binaries and scratch space.
type Env struct {
	Repo     string // module root
	Src      string // the snapshot of Repo's working tree everything is built from
	Snapshot time.Time
	Work     string // scratch dir on a disk filesystem (sparse files live here)
	ProdBin  string // production build: -trimpath -ldflags '-s -w'
	TestBin  string // same flags plus -tags flexblocktest (adds the loop backend)
	SpawnBin string // the kubelet-like caller (bench/internal/cmd/spawn)
	StubBin  string // mount/umount stand-in (bench/internal/cmd/mountstub)
	HelloBin string // a Go program that only prints init's answer
	Baseline string // bench/baseline/example-driver.sh
}

// ProdBuildFlags are the production build's flags (Makefile `build`, minus
// the version stamp, which does not change the binary's behaviour).
var ProdBuildFlags = []string{"-trimpath", "-tags", testkit.ProdTags, "-ldflags", "-s -w"}

// TestBuildFlags build the test binary (loop backend) the same way.
var TestBuildFlags = []string{"-trimpath", "-tags", testkit.ProdTags + ",flexblocktest", "-ldflags", "-s -w"}

// Setup snapshots the working tree (other people may be editing it: every
// binary of a run comes from the same snapshot) and builds everything into
// work/bin. work must exist. A snapshot that does
// not build (an edit caught half-way) is retaken, up to three times.
func Setup(work string) (*Env, error) {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		var e *Env
		if e, err = setup(work); err == nil {
			return e, nil
		}
		time.Sleep(15 * time.Second)
	}
	return nil, err
}

func setup(work string) (*Env, error) {
	e := &Env{Repo: testkit.Root(), Work: work, Src: filepath.Join(work, "src"), Snapshot: time.Now()}
	if err := os.RemoveAll(e.Src); err != nil {
		return nil, err
	}
	if err := copyTree(e.Repo, e.Src); err != nil {
		return nil, err
	}
	bin := filepath.Join(work, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return nil, err
	}
	e.ProdBin = filepath.Join(bin, "flexblock")
	e.TestBin = filepath.Join(bin, "flexblock-test")
	e.SpawnBin = filepath.Join(bin, "spawn")
	e.StubBin = filepath.Join(bin, "mountstub")
	e.HelloBin = filepath.Join(bin, "gohello")
	e.Baseline = filepath.Join(e.Src, "bench", "baseline", "example-driver.sh")
	benchSrc := filepath.Join(e.Src, "bench") // the helpers' module
	builds := []struct {
		dir, out string
		args     []string
		pkg      string
	}{
		{e.Src, e.ProdBin, ProdBuildFlags, "."},
		{e.Src, e.TestBin, TestBuildFlags, "."},
		{benchSrc, e.SpawnBin, ProdBuildFlags, "./internal/cmd/spawn"},
		{benchSrc, e.StubBin, ProdBuildFlags, "./internal/cmd/mountstub"},
		{benchSrc, e.HelloBin, ProdBuildFlags, "./internal/cmd/gohello"},
	}
	for _, b := range builds {
		if err := testkit.GoBuild(b.dir, b.out, b.pkg, b.args...); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// FileSize is the size of path in bytes (0 when missing).
func FileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// Machine describes the host for the report.
type Machine struct {
	NProc     int
	CPU       string
	Kernel    string
	Go        string
	Mke2fs    string
	MkfsXFS   string
	UtilLinux string
	Load      string // /proc/loadavg at the time of the call
	DiskFS    string // filesystem type under Work (sparse images live there)
	Commit    string
}

// Describe collects the machine details.
func (e *Env) Describe() Machine {
	m := Machine{NProc: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	m.Kernel = firstLine(output("uname", "-sr"))
	m.Go = firstLine(output("go", "version"))
	m.Mke2fs = firstLine(output("mke2fs", "-V"))
	m.MkfsXFS = firstLine(output("mkfs.xfs", "-V"))
	m.UtilLinux = firstLine(output("mount", "--version"))
	m.Load = LoadAvg()
	m.DiskFS = firstLine(output("findmnt", "-n", "-o", "FSTYPE", "-T", e.Work))
	commit := firstLine(output("git", "-C", e.Repo, "rev-parse", "--short", "HEAD"))
	if dirty := output("git", "-C", e.Repo, "status", "--porcelain"); strings.TrimSpace(dirty) != "" {
		commit += fmt.Sprintf(" plus the working tree's uncommitted changes as of %s (snapshot)", e.Snapshot.UTC().Format("15:04:05 UTC"))
	}
	m.Commit = commit
	return m
}

// LoadAvg is the first three fields of /proc/loadavg.
func LoadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func output(name string, args ...string) string {
	var buf bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	_ = cmd.Run()
	return buf.String()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(s)
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

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
