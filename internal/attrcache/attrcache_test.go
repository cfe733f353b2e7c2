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
	c.Delete([2]string{"a", "b"})
	if _, ok := c.Get([2]string{"a", "b"}); ok {
		t.Fatal("deleted key still present")
	}
	if c.Len() != 0 {
		t.Fatalf("Len = %d after delete", c.Len())
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
	if c.Len() != 3 {
		t.Fatalf("Len = %d, want 3", c.Len())
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
					c.Delete(k)
				}
			}
		}(g)
	}
	wg.Wait()
	if n := c.Len(); n > 100 {
		t.Fatalf("Len = %d over limit", n)
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
