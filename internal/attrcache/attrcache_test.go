package attrcache

import (
	"fmt"
	"sync"
	"testing"
)

func TestGetPut(t *testing.T) {
	c := New[[2]string, int](0)
	if _, ok := c.Get([2]string{"a", "b"}); ok {
		t.Fatal("empty cache hit")
	}
	if v, ok := c.Put([2]string{"a", "b"}, 1); !ok || v != 1 {
		t.Fatalf("Put = %d, %v", v, ok)
	}
	if v, ok := c.Put([2]string{"a", "b"}, 2); !ok || v != 1 {
		t.Fatalf("second Put = %d, %v; want the first value kept", v, ok)
	}
	for i := 0; i < 5; i++ { // enough lookups to promote to the read map
		if v, ok := c.Get([2]string{"a", "b"}); !ok || v != 1 {
			t.Fatalf("Get = %d, %v", v, ok)
		}
	}
	c.DeleteFunc(func(k [2]string, _ int) bool { return k == [2]string{"a", "b"} }, nil)
	if _, ok := c.Get([2]string{"a", "b"}); ok {
		t.Fatal("deleted key still present")
	}
	if size(c) != 0 {
		t.Fatalf("Len = %d after delete", size(c))
	}
}

func TestLimit(t *testing.T) {
	c := New[string, int](3)
	for i := 0; i < 10; i++ {
		_, ok := c.Put(fmt.Sprint(i), i)
		if want := i < 3; ok != want {
			t.Fatalf("Put #%d cached=%v, want %v", i, ok, want)
		}
	}
	if size(c) != 3 {
		t.Fatalf("Len = %d, want 3", size(c))
	}
}

func TestCacheConcurrentSafe(t *testing.T) {
	c := New[string, int](100)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				k := fmt.Sprint(i % 150)
				if v, ok := c.Get(k); ok && v != i%150 {
					t.Errorf("Get(%s) = %d", k, v)
					return
				}
				c.Put(k, i%150)
				if i%500 == 0 {
					c.DeleteFunc(func(kk string, _ int) bool { return kk == k }, nil)
				}
			}
		}(g)
	}
	wg.Wait()
	if n := size(c); n > 100 {
		t.Fatalf("Len = %d over limit", n)
	}
}

func TestFullAndRange(t *testing.T) {
	c := New[int, int](5)
	for i := 0; i < 5; i++ {
		if c.Full() {
			t.Fatalf("Full after %d of 5", i)
		}
		c.Put(i, i*10)
		if i == 2 {
			for j := 0; j < 10; j++ { // promote the first three
				c.Get(0)
			}
		}
	}
	if !c.Full() {
		t.Fatal("not Full at the limit")
	}
	seen := map[int]int{}
	c.Range(func(k, v int) bool { seen[k] += v + 1; return true })
	if len(seen) != 5 {
		t.Fatalf("Range saw %v, want 5 keys", seen)
	}
	for k, v := range seen {
		if v != k*10+1 {
			t.Fatalf("Range saw key %d %d times or with a wrong value", k, v)
		}
	}
	n := 0
	c.Range(func(int, int) bool { n++; return false })
	if n != 1 {
		t.Fatalf("Range went on after false: %d calls", n)
	}
}

// TestRangeConcurrentSafe checks that Range, racing with Puts and the Gets
// that promote them, sees each entry present before it started exactly once.
func TestRangeConcurrentSafe(t *testing.T) {
	c := New[int, int](0)
	for i := 0; i < 100; i++ {
		c.Put(i, i)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 100; i < 3000; i++ {
			c.Put(i, i)
			c.Get(i)
			c.Get(i - 50)
		}
	}()
	for r := 0; r < 200; r++ {
		seen := map[int]int{}
		c.Range(func(k, _ int) bool { seen[k]++; return true })
		for k := 0; k < 100; k++ {
			if seen[k] != 1 {
				t.Fatalf("round %d: key %d seen %d times", r, k, seen[k])
			}
		}
		for k, n := range seen {
			if n != 1 {
				t.Fatalf("round %d: key %d seen %d times", r, k, n)
			}
		}
	}
	wg.Wait()
}

// BenchmarkPutNew adds new keys, each looked up once more: the pattern of a
// growing set of series. Its cost per op must not grow with the size.
func BenchmarkPutNew(b *testing.B) {
	c := New[int, int](0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Get(i)
		c.Put(i, i)
		c.Get(i)
		i++
	}
}

func BenchmarkGetHit(b *testing.B) {
	c := New[[2]string, int](0)
	k := [2]string{"orch-1", "claude"}
	c.Put(k, 1)
	for i := 0; i < 3; i++ {
		c.Get(k)
	}
	b.ReportAllocs()
	for b.Loop() {
		c.Get(k)
	}
}

// size counts the entries through Range.
func size[K comparable, V any](c *Cache[K, V]) int {
	n := 0
	c.Range(func(K, V) bool { n++; return true })
	return n
}

// TestDeleteFunc: the removed entries' values go to done, their slots are
// free again for new keys, and the others stay readable without the lock.
func TestDeleteFunc(t *testing.T) {
	c := New[int, int](4)
	for i := range 4 {
		c.Put(i, i*10)
	}
	for range 8 { // promote to the read map
		c.Get(0)
	}
	var removed []int
	if n := c.DeleteFunc(func(k, _ int) bool { return k%2 == 0 }, func(v int) { removed = append(removed, v) }); n != 2 || len(removed) != 2 {
		t.Fatalf("DeleteFunc removed %d (%v), want 2", n, removed)
	}
	if _, ok := c.Get(0); ok {
		t.Fatal("deleted key 0 still present")
	}
	if v, ok := c.Get(1); !ok || v != 10 {
		t.Fatalf("kept key 1 = %d, %v", v, ok)
	}
	for _, k := range []int{10, 11} {
		if _, ok := c.Put(k, k); !ok {
			t.Fatalf("Put(%d) after DeleteFunc freed two slots: not cached", k)
		}
	}
	if _, ok := c.Put(12, 12); ok {
		t.Fatal("Put past the limit cached")
	}
	if n := c.DeleteFunc(func(int, int) bool { return false }, nil); n != 0 {
		t.Fatalf("DeleteFunc of nothing = %d", n)
	}
}
