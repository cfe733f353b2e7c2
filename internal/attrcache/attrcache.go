// Package attrcache keeps, per label tuple, the pre-built measurement options
// that the OTel SDK needs, so that recording with string labels allocates
// nothing once a tuple has been seen.
//
// Reads are lock-free: they load an immutable map through an atomic pointer.
// New tuples go to a mutex-guarded dirty map, a superset of the read map,
// which replaces the read map once lookups that needed the lock have
// numbered as many as its entries. This is the amortisation sync.Map uses,
// so adding n tuples costs O(n) in all, but with typed keys, so that a
// lookup does not box its key.
package attrcache

import (
	"sync"
	"sync/atomic"
)

// Cache maps keys to values built once by the caller. It holds at most Limit
// entries; past that, Get reports a miss and the caller builds the value per
// call, so a label explosion cannot grow the cache without bound.
type Cache[K comparable, V any] struct {
	read atomic.Pointer[readOnly[K, V]]
	mu   sync.Mutex
	// dirty, when not nil, holds every entry: those of read and the newer
	// ones. read.amended says that it exists.
	dirty map[K]V
	miss  int
	size  int
	limit int
}

type readOnly[K comparable, V any] struct {
	m       map[K]V
	amended bool // dirty holds keys that m lacks
}

// New returns a cache holding at most limit entries; limit <= 0 means no
// bound.
func New[K comparable, V any](limit int) *Cache[K, V] {
	c := &Cache[K, V]{limit: limit}
	c.read.Store(&readOnly[K, V]{m: map[K]V{}})
	return c
}

// Get returns the value cached for k. It takes no lock when k is in the
// read map or when no entry is pending promotion.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	r := c.read.Load()
	if v, ok := r.m[k]; ok || !r.amended {
		return v, ok
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r = c.read.Load()
	if v, ok := r.m[k]; ok || !r.amended {
		return v, ok
	}
	v, ok := c.dirty[k]
	c.missLocked()
	return v, ok
}

// Put stores v for k unless the cache is full or k is present; it returns
// the value now cached for k (the earlier one if another goroutine won) and
// whether a value is cached.
func (c *Cache[K, V]) Put(k K, v V) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.read.Load()
	if old, ok := r.m[k]; ok {
		return old, true
	}
	if old, ok := c.dirty[k]; ok {
		return old, true
	}
	if c.limit > 0 && c.size >= c.limit {
		return v, false
	}
	if c.dirty == nil {
		c.dirty = make(map[K]V, len(r.m)+1)
		for rk, rv := range r.m {
			c.dirty[rk] = rv
		}
		c.read.Store(&readOnly[K, V]{m: r.m, amended: true})
	}
	c.dirty[k] = v
	c.size++
	return v, true
}

// DeleteFunc removes every entry for which f returns true and calls done
// with each removed value; it copies the read map at most once. f and done
// must not call back into the cache.
func (c *Cache[K, V]) DeleteFunc(f func(K, V) bool, done func(V)) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.read.Load()
	m := r.m
	if c.dirty != nil {
		m = c.dirty
	}
	var n int
	for k, v := range m {
		if f(k, v) {
			n++
			if done != nil {
				done(v)
			}
		}
	}
	if n == 0 {
		return 0
	}
	c.size -= n
	next := make(map[K]V, len(m)-n)
	for k, v := range m {
		if !f(k, v) {
			next[k] = v
		}
	}
	// Every remaining entry is now in the read map.
	c.read.Store(&readOnly[K, V]{m: next})
	c.dirty = nil
	c.miss = 0
	return n
}

// Full reports whether the cache holds as many entries as its limit, so
// that a Put of a new key would not be cached.
func (c *Cache[K, V]) Full() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limit > 0 && c.size >= c.limit
}

// Range calls f for every cached entry, in no particular order, until f
// returns false. It holds the cache's lock throughout, so that an entry
// being promoted to the read map is seen exactly once: f must not call back
// into the cache. Get of a key in the read map is not blocked.
func (c *Cache[K, V]) Range(f func(K, V) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.read.Load().m
	if c.dirty != nil {
		m = c.dirty
	}
	for k, v := range m {
		if !f(k, v) {
			return
		}
	}
}

// missLocked records a lookup that needed the lock and promotes the dirty
// map once such lookups have numbered as many as its entries, which pays
// for the copy Put makes when it next needs a dirty map.
func (c *Cache[K, V]) missLocked() {
	c.miss++
	if c.miss < len(c.dirty) {
		return
	}
	c.read.Store(&readOnly[K, V]{m: c.dirty})
	c.dirty = nil
	c.miss = 0
}
