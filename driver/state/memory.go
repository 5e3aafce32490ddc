package state

import (
	"encoding/json"
	"sort"
	"sync"
)

// Memory is an in-memory record store with Store's rules (Validate on
// save), for fast tests of the lifecycle. Records are copied in and out,
// as a file store would, so a caller never shares a record with the store.
type Memory struct {
	mu   sync.Mutex
	recs map[string]*Record
	// Fail, when it returns an error for an operation ("load", "save",
	// "delete", "list"), makes that operation fail (fault injection).
	Fail func(op string, r *Record) error
	// Quarantined holds the records set aside.
	Quarantined []*Record
}

func key(backend, id string) string { return backend + "/" + id }

func clone(r *Record) *Record {
	b, _ := json.Marshal(r)
	c := &Record{}
	_ = json.Unmarshal(b, c)
	return c
}

func (m *Memory) fail(op string, r *Record) error {
	if m.Fail != nil {
		return m.Fail(op, r)
	}
	return nil
}

// Load implements the store.
func (m *Memory) Load(backend, id string) (*Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("load", &Record{Backend: backend, ID: id}); err != nil {
		return nil, err
	}
	if r, ok := m.recs[key(backend, id)]; ok {
		return clone(r), nil
	}
	return nil, nil
}

// Save implements the store.
func (m *Memory) Save(r *Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("save", r); err != nil {
		return err
	}
	r.Version = Version
	if err := r.Validate(); err != nil {
		return err
	}
	if m.recs == nil {
		m.recs = map[string]*Record{}
	}
	m.recs[key(r.Backend, r.ID)] = clone(r)
	return nil
}

// Delete implements the store.
func (m *Memory) Delete(backend, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("delete", &Record{Backend: backend, ID: id}); err != nil {
		return err
	}
	delete(m.recs, key(backend, id))
	return nil
}

// List implements the store, in a stable order.
func (m *Memory) List(backend string) ([]*Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("list", nil); err != nil {
		return nil, err
	}
	var out []*Record
	for _, r := range m.recs {
		if backend == "" || r.Backend == backend {
			out = append(out, clone(r))
		}
	}
	sort.Slice(out, func(i, j int) bool { return key(out[i].Backend, out[i].ID) < key(out[j].Backend, out[j].ID) })
	return out, nil
}

// Len is the number of records held.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.recs)
}

// Quarantine implements the store: the record leaves the set.
func (m *Memory) Quarantine(r *Record, _ error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.recs, key(r.Backend, r.ID))
	m.Quarantined = append(m.Quarantined, clone(r))
	return nil
}
