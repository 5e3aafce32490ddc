package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func rec(id string) *Record {
	return &Record{Backend: "rbd", ID: id, Mode: ModePod, Device: "/dev/rbd0", Pods: []string{"/p"}}
}

// Both stores keep the same contract: what is saved is loaded (a copy),
// invalid records are refused on save, deletes are idempotent.
func TestStoresContract(t *testing.T) {
	for name, s := range map[string]interface {
		Load(string, string) (*Record, error)
		Save(*Record) error
		Delete(string, string) error
		List(string) ([]*Record, error)
	}{"dir": Store{Dir: t.TempDir()}, "memory": &Memory{}} {
		t.Run(name, func(t *testing.T) {
			r := rec("kube~~img~")
			if err := s.Save(r); err != nil || r.Version != Version {
				t.Fatalf("save: %v version %d", err, r.Version)
			}
			r.Pods[0] = "/changed"
			got, err := s.Load("rbd", "kube~~img~")
			if err != nil || got == nil || got.Device != "/dev/rbd0" || got.Pods[0] != "/p" {
				t.Fatalf("load: %+v %v", got, err)
			}
			for _, bad := range []*Record{{Backend: "rbd", ID: "../x", Mode: ModePod}, {Backend: "rbd", ID: "a", Mode: "weird"}, {Backend: "", ID: "a", Mode: ModePod}} {
				if err := s.Save(bad); !errors.Is(err, ErrCorrupt) {
					t.Errorf("saved invalid %+v: %v", bad, err)
				}
			}
			if l, err := s.List("rbd"); err != nil || len(l) != 1 {
				t.Fatalf("list: %v %v", l, err)
			}
			if l, _ := s.List("iscsi"); len(l) != 0 {
				t.Fatalf("list of another backend: %v", l)
			}
			for i := 0; i < 2; i++ {
				if err := s.Delete("rbd", "kube~~img~"); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := s.Load("rbd", "kube~~img~"); got != nil || err != nil {
				t.Fatalf("after delete: %+v %v", got, err)
			}
		})
	}
}

// A record that cannot be trusted is set aside, never acted on, and never
// blocks the other records.
func TestCorruptRecordsAreSetAside(t *testing.T) {
	dir := t.TempDir()
	var heard []string
	s := Store{Dir: dir, Quarantined: func(file string, err error) { heard = append(heard, filepath.Base(file)+": "+err.Error()) }}
	if err := s.Save(rec("good")); err != nil {
		t.Fatal(err)
	}
	vol := filepath.Join(dir, "volumes", "rbd")
	bad := map[string]string{
		"trunc.json":   `{"version":1,"backend":"rbd","id":"tr`,
		"v9.json":      `{"version":9,"backend":"rbd","id":"v9","mode":"pod"}`,
		"other.json":   `{"version":1,"backend":"rbd","id":"someone-else","mode":"pod"}`,
		"nomode.json":  `{"version":1,"backend":"rbd","id":"nomode"}`,
		"garbage.json": "\x00\x01",
	}
	for f, b := range bad {
		if err := os.WriteFile(filepath.Join(vol, f), []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(vol, ".bad name.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Inspect (uninstall) reports and moves nothing.
	if _, err := (Store{Dir: dir, Inspect: true}).List("rbd"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("inspect: %v", err)
	}
	l, err := s.List("")
	if err != nil || len(l) != 1 || l[0].ID != "good" {
		t.Fatalf("list: %v %v", l, err)
	}
	set, _ := os.ReadDir(filepath.Join(dir, "quarantine"))
	if len(set) != len(bad)+1 || len(heard) != len(bad)+1 {
		t.Fatalf("set aside %d (heard %q), want %d", len(set), heard, len(bad)+1)
	}
	left, _ := os.ReadDir(vol)
	if len(left) != 1 {
		t.Fatalf("left in place: %v", left)
	}
	if _, err := s.Load("rbd", "../../etc/passwd"); err == nil {
		t.Fatal("loaded through a path")
	}
}

func TestQuarantineAndMemory(t *testing.T) {
	dir := t.TempDir()
	s := Store{Dir: dir}
	r := rec("x")
	if err := s.Save(r); err != nil {
		t.Fatal(err)
	}
	if err := s.Quarantine(r, errors.New("global mount outside the kubelet root")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load("rbd", "x"); got != nil {
		t.Fatal("quarantined record still loads")
	}
	m := &Memory{}
	_ = m.Save(rec("y"))
	_ = m.Quarantine(rec("y"), nil)
	if m.Len() != 0 || len(m.Quarantined) != 1 {
		t.Fatal("memory quarantine")
	}
	m.Fail = func(op string, _ *Record) error { return errors.New(op + " failed") }
	if _, err := m.List(""); err == nil || !strings.Contains(err.Error(), "list") {
		t.Fatal("fault injection")
	}
}

func TestWriteFileAtomicLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "f")
	for _, content := range []string{"one", "two"} {
		if err := WriteFileAtomic(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	ents, _ := os.ReadDir(filepath.Dir(p))
	if string(b) != "two" || st.Mode().Perm() != 0o640 || len(ents) != 1 {
		t.Fatalf("content %q mode %v entries %v", b, st.Mode(), ents)
	}
	if err := WriteFileAtomic(filepath.Join(p, "under-a-file"), nil, 0o600); err == nil {
		t.Fatal("wrote below a file")
	}
}

func TestLayoutNamesEveryPath(t *testing.T) {
	l := Layout{Dir: "/run/fb", RecordsDir: "/var/lib/fb"}
	for _, p := range []string{l.Volumes(), l.Locks(), l.Keys(), l.Quarantine(), l.Work(), l.ISCSISessions()} {
		if !strings.HasPrefix(p, "/run/fb/") {
			t.Errorf("%s outside the state dir", p)
		}
	}
	if l.ISCSIRecords() != "/var/lib/fb" {
		t.Error("records dir")
	}
}
