package fleet

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// An answer is read whole up to the limit and ends with errAnswerTooLarge
// past it, whatever the reader's buffer size.
func TestLimitedBody(t *testing.T) {
	for _, tc := range []struct {
		size, limit int
		tooLarge    bool
	}{
		{0, 0, false},
		{1, 0, true},
		{10, 10, false},
		{11, 10, true},
		{9, 10, false},
		{100000, 4096, true},
		{4096, 100000, false},
	} {
		for _, buf := range []int{1, 7, 512, 1 << 16} {
			b := &limitedBody{rc: io.NopCloser(strings.NewReader(strings.Repeat("x", tc.size))), left: int64(tc.limit)}
			var got int
			var err error
			p := make([]byte, buf)
			for {
				var n int
				n, err = b.Read(p)
				got += n
				if err != nil {
					break
				}
			}
			if tc.tooLarge {
				if !errors.Is(err, errAnswerTooLarge) || got > tc.limit+1 {
					t.Errorf("size %d, limit %d, buffer %d: read %d, %v; want at most %d bytes and errAnswerTooLarge", tc.size, tc.limit, buf, got, err, tc.limit+1)
				}
				continue
			}
			if err != io.EOF || got != tc.size {
				t.Errorf("size %d, limit %d, buffer %d: read %d, %v; want %d and EOF", tc.size, tc.limit, buf, got, err, tc.size)
			}
		}
	}
}
