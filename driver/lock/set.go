package lock

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/flexblock/flexblock/driver/errkind"
)

// Dir takes sets of locks in one directory.
type Dir struct{ Path string }

// Lock takes every key, in one global order so two calls never deadlock,
// each within wait; on failure it holds none. unlock releases them all.
func (d Dir) Lock(ctx context.Context, keys []string, wait time.Duration) (unlock func(), err error) {
	var held []*Lock
	unlock = func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i].Release()
		}
	}
	for _, k := range sorted(keys) {
		l, err := Acquire(ctx, d.Path, k, wait)
		if err != nil {
			unlock()
			return nil, err
		}
		held = append(held, l)
	}
	return unlock, nil
}

func sorted(keys []string) []string {
	s := slices.Clone(keys)
	slices.Sort(s)
	return slices.Compact(s)
}

// Memory is an in-process lock set with Dir's contract, for fast tests.
// Keys listed in Busy are held by "another call" and never granted.
type Memory struct {
	mu   sync.Mutex
	held map[string]bool
	Busy map[string]bool
	// Taken records every set of keys granted, in order.
	Taken [][]string
}

// Lock implements the lock set without waiting: a key that is held or
// busy fails at once with errkind.Busy (the wait is the real one's job).
func (m *Memory) Lock(_ context.Context, keys []string, wait time.Duration) (func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys = sorted(keys)
	for _, k := range keys {
		if m.held[k] || m.Busy[k] {
			return nil, errkind.Errorf(errkind.Busy, "volume %s is busy with another driver call: %w after %s", k, ErrTimeout, wait)
		}
	}
	if m.held == nil {
		m.held = map[string]bool{}
	}
	for _, k := range keys {
		m.held[k] = true
	}
	m.Taken = append(m.Taken, keys)
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, k := range keys {
			delete(m.held, k)
		}
	}, nil
}

// Held tells whether key is held now.
func (m *Memory) Held(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.held[key]
}

// String lists the held keys (for test messages).
func (m *Memory) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fmt.Sprint(m.held)
}
