package kubelet

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment of the suite (README.md): the defaults run on the host with
// the test-only loop backend; the real-kernel VM sets them for rbd/iscsi.
const (
	// envDriver is the flexblock executable to install. Default: built
	// from the repo (../..) with -tags flexblocktest.
	envDriver = "FLEXBLOCK_CONFORMANCE_DRIVER"
	// envBackend is the backend under test: loop (default), rbd, iscsi.
	envBackend = "FLEXBLOCK_CONFORMANCE_BACKEND"
	// envOptions is a JSON object of the volume's options (strings), for
	// any backend but loop (loop gets a fresh loop device per volume).
	envOptions = "FLEXBLOCK_CONFORMANCE_OPTIONS"
	// envSecret is a JSON object of the Secret's data (strings). Default:
	// two made-up keys (loop ignores them).
	envSecret = "FLEXBLOCK_CONFORMANCE_SECRET"
	// envFSType is the volume's fsType (default ext4).
	envFSType = "FLEXBLOCK_CONFORMANCE_FSTYPE"
	// envInstallArgs are extra flags for flexblock install, split on
	// white space (for example --rbd-keyring /etc/ceph/keyring, which
	// the attach mode needs for rbd).
	envInstallArgs = "FLEXBLOCK_CONFORMANCE_INSTALL_ARGS"
	// envWrapStderr=1 replaces every installed driver by a wrapper that
	// writes one line to stderr before exec'ing the real one: a
	// deliberately broken driver, to see the suite fail with kubelet's
	// own parse error.
	envWrapStderr = "FLEXBLOCK_CONFORMANCE_WRAP_STDERR"
)

// suiteConfig is the environment, read once.
type suiteConfig struct {
	backend     string
	options     map[string]string // nil for loop
	secret      map[string][]byte
	fsType      string
	installArgs []string
	wrapStderr  bool
}

var (
	cfgOnce sync.Once
	cfg     *suiteConfig
	cfgErr  error
)

func config(t *testing.T) *suiteConfig {
	t.Helper()
	cfgOnce.Do(func() { cfg, cfgErr = readConfig() })
	if cfgErr != nil {
		t.Fatalf("conformance environment: %v", cfgErr)
	}
	return cfg
}

func readConfig() (*suiteConfig, error) {
	c := &suiteConfig{backend: suiteBackend(), fsType: "ext4", installArgs: strings.Fields(os.Getenv(envInstallArgs))}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("the suite mounts real block devices: run it as root")
	}
	if v := os.Getenv(envFSType); v != "" {
		c.fsType = v
	}
	c.wrapStderr = os.Getenv(envWrapStderr) == "1"
	switch {
	case c.backend == "loop" && os.Getenv(envOptions) != "":
		return nil, fmt.Errorf("%s is not used with the loop backend (each volume gets a fresh loop device)", envOptions)
	case c.backend != "loop":
		if err := decodeStrings(os.Getenv(envOptions), &c.options); err != nil || len(c.options) == 0 {
			return nil, fmt.Errorf("backend %s needs %s, a JSON object of the volume's options (strings): %v", c.backend, envOptions, err)
		}
	}
	secret := map[string]string{"username": "user-" + randomHex(6), "token": "tok-" + randomHex(12)}
	if v := os.Getenv(envSecret); v != "" {
		secret = nil
		if err := decodeStrings(v, &secret); err != nil {
			return nil, fmt.Errorf("%s: %v", envSecret, err)
		}
	}
	c.secret = map[string][]byte{}
	for k, v := range secret {
		c.secret[k] = []byte(v)
	}
	return c, nil
}

func decodeStrings(s string, into *map[string]string) error {
	if s == "" {
		return fmt.Errorf("not set")
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return fmt.Errorf("not a JSON object of strings: %v", err)
	}
	return nil
}

// driverName is what pods write in flexVolume.driver.
func (c *suiteConfig) driverName() string { return "flexblock/" + c.backend }

// The driver executable, built once per run unless given.
var (
	driverOnce sync.Once
	driverPath string
	driverErr  error
	buildDir   string
)

// driverBinary returns the flexblock executable the installer installs.
func driverBinary(t *testing.T) string {
	t.Helper()
	driverOnce.Do(func() { driverPath, driverErr = findOrBuildDriver() })
	if driverErr != nil {
		t.Fatalf("driver executable: %v", driverErr)
	}
	return driverPath
}

func findOrBuildDriver() (string, error) {
	if p := os.Getenv(envDriver); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		if st, err := os.Stat(abs); err != nil || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s=%s is not an executable file (%v)", envDriver, p, err)
		}
		return abs, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", fmt.Errorf("%v; set %s to a flexblock executable (a test build, -tags flexblocktest, for the loop backend)", err, envDriver)
	}
	if buildDir, err = os.MkdirTemp("", "flexblock-conformance-build-"); err != nil {
		return "", err
	}
	out := filepath.Join(buildDir, "flexblock")
	start := time.Now()
	cmd := exec.Command("go", "build", "-tags", "flexblocktest", "-o", out, ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -tags flexblocktest in %s: %v\n%s", root, err, b)
	}
	fmt.Printf("conformance: built the driver (-tags flexblocktest) in %s\n", time.Since(start).Round(100*time.Millisecond))
	return out, nil
}

// repoRoot is the driver module's root: the nearest parent of the working
// directory (go test runs in test/kubelet) whose go.mod is flexblock's.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/flexblock/flexblock\n")) {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no flexblock source tree above %s to build the driver from", dir)
		}
	}
}

func cleanupSuite() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// kubeletRelease is the k8s.io/kubernetes release required in go.mod
// (test binaries carry no module list to read it from; TestReleasePinned
// keeps the two equal).
const kubeletRelease = "v1.34.4"

// TestReleasePinned checks kubeletRelease against go.mod and that every
// k8s.io staging module is pinned to the matching v0 release.
func TestReleasePinned(t *testing.T) {
	b, err := os.ReadFile("go.mod")
	if err != nil {
		t.Skipf("no go.mod here (a test binary run elsewhere): %v", err)
	}
	mod := string(b)
	if !strings.Contains(mod, "\tk8s.io/kubernetes "+kubeletRelease+"\n") {
		t.Errorf("go.mod does not require k8s.io/kubernetes %s", kubeletRelease)
	}
	staging := "v0." + strings.TrimPrefix(kubeletRelease, "v1.")
	n := 0
	for _, line := range strings.Split(mod, "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[1] == "=>" && strings.HasPrefix(f[0], "k8s.io/") {
			n++
			if f[2] != f[0] || f[3] != staging {
				t.Errorf("go.mod: %s, want %s => %s %s", strings.TrimSpace(line), f[0], f[0], staging)
			}
		}
	}
	if n < 30 {
		t.Errorf("go.mod pins %d staging modules; k8s.io/kubernetes %s lists 31", n, kubeletRelease)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
