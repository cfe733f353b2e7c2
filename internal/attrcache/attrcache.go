// Package attrcache keeps, per label tuple, the pre-built measurement options
// that the OTel SDK needs, so that recording with string labels allocates
// nothing once a tuple has been seen.
//
// Reads are lock-free: they load an immutable map through an atomic pointer.
// New tuples go to a mutex-guarded dirty map that is merged into a fresh read
// map once it has cost as many misses as it holds entries, the amortisation
// sync.Map uses, but with typed keys so that a lookup does not box its key.
package attrcache

import (
	"sync"
	"sync/atomic"
)

// Cache maps keys to values built once by the caller. It holds at most Limit
// entries; past that, Get reports a miss and the caller builds the value per
// call, so a label explosion cannot grow the cache without bound.
type Cache[K comparable, V any] struct {
	read  atomic.Pointer[map[K]V]
	mu    sync.Mutex
	dirty map[K]V
	miss  int
	size  int
	limit int
}

// New returns a cache holding at most limit entries; limit <= 0 means no
// bound.
func New[K comparable, V any](limit int) *Cache[K, V] {
	c := &Cache[K, V]{limit: limit}
	m := map[K]V{}
	c.read.Store(&m)
	return c
}

// Get returns the value cached for k.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	if v, ok := (*c.read.Load())[k]; ok {
		return v, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.dirty[k]
	if ok {
		c.missLocked()
	}
	return v, ok
}

// Put stores v for k unless the cache is full or k is present; it returns
// the value now cached for k (the earlier one if another goroutine won) and
// whether a value is cached.
func (c *Cache[K, V]) Put(k K, v V) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := (*c.read.Load())[k]; ok {
		return old, true
	}
	if old, ok := c.dirty[k]; ok {
		return old, true
	}
	if c.limit > 0 && c.size >= c.limit {
		return v, false
	}
	if c.dirty == nil {
		c.dirty = map[K]V{}
	}
	c.dirty[k] = v
	c.size++
	c.missLocked()
	return v, true
}

// Delete removes k.
func (c *Cache[K, V]) Delete(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.dirty[k]; ok {
		delete(c.dirty, k)
		c.size--
		return
	}
	read := *c.read.Load()
	if _, ok := read[k]; !ok {
		return
	}
	next := make(map[K]V, len(read))
	for rk, rv := range read {
		if rk != k {
			next[rk] = rv
		}
	}
	c.read.Store(&next)
	c.size--
}

// Full reports whether the cache holds as many entries as its limit, so
// that a Put of a new key would not be cached.
func (c *Cache[K, V]) Full() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limit > 0 && c.size >= c.limit
}

// Range calls f for every cached entry, in no particular order, until f
// returns false. It holds the cache's lock throughout, so that an entry being
// promoted to the read map is seen exactly once: f must not call back into
// the cache. Get of a key already in the read map is not blocked.
func (c *Cache[K, V]) Range(f func(K, V) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range *c.read.Load() {
		if !f(k, v) {
			return
		}
	}
	for k, v := range c.dirty {
		if !f(k, v) {
			return
		}
	}
}

// Len returns the number of cached entries.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

// missLocked records a lookup that needed the lock and promotes the dirty
// map once misses have paid for the copy.
func (c *Cache[K, V]) missLocked() {
	c.miss++
	if c.miss < len(c.dirty) {
		return
	}
	read := *c.read.Load()
	next := make(map[K]V, len(read)+len(c.dirty))
	for k, v := range read {
		next[k] = v
	}
	for k, v := range c.dirty {
		next[k] = v
	}
	c.read.Store(&next)
	c.dirty = nil
	c.miss = 0
}
