package prometheus

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzCheckPath checks checkPath against the real http.ServeMux: a path it
// accepts must register without a panic and route a request for exactly
// that path to the handler; a path it rejects is never handed to the mux.
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{
		"/metrics", "/", "/a b", "/a\tb", "/{x}", "/{$}", "/a/{x...}", "GET /m", "example.com/m",
		"/a//b", "/a/../b", "/a/./b", "/a/", "/a%20b", "/a?b", "/a#b", "/ü", "", "metrics",
		"/a:b@c", "/a;b=c", "/~user/!$&'()*+,", "/.", "/..", "/a/..",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if checkPath(p) != nil {
			return
		}
		mux := http.NewServeMux()
		hit := false
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("checkPath accepted %q, but ServeMux.Handle panicked: %v", p, r)
				}
			}()
			mux.Handle(p, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = true }))
		}()
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if !hit {
			t.Fatalf("checkPath accepted %q, but a request for it got %d from the mux", p, rec.Code)
		}
	})
}
