package stats

// ring is a FIFO queue in a circular buffer that grows up to a limit of
// elements it is expected to hold, so a full ring wastes no capacity.
type ring[T any] struct {
	buf   []T
	head  int
	n     int
	limit int
}

func (r *ring[T]) len() int { return r.n }

// at returns the i-th element from the oldest; 0 <= i < len.
func (r *ring[T]) at(i int) *T { return &r.buf[(r.head+i)%len(r.buf)] }

func (r *ring[T]) push(v T) {
	if r.n == len(r.buf) {
		size := max(4, 2*r.n)
		if r.limit > 0 {
			size = max(min(size, r.limit), r.n+1)
		}
		buf := make([]T, size)
		for i := range r.n {
			buf[i] = *r.at(i)
		}
		r.buf, r.head = buf, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = v
	r.n++
}

func (r *ring[T]) pop() T {
	var zero T
	v := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return v
}

// search returns the smallest i in [0, len) for which f(at(i)) is true,
// or len if there is none; f must be false then true along the ring.
func (r *ring[T]) search(f func(*T) bool) int {
	lo, hi := 0, r.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if !f(r.at(m)) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}
