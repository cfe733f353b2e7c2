package prometheus

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// authenticator checks the credential of a request.
type authenticator interface {
	// ok reports whether r carries the expected credential.
	ok(r *http.Request) bool
	// challenge is the WWW-Authenticate value of a 401 response.
	challenge() string
}

// Credentials are compared as SHA-256 digests with
// subtle.ConstantTimeCompare: the time taken depends neither on where the
// first differing byte is nor on the length of the expected value.
type digest = [sha256.Size]byte

func equalDigest(got string, want digest) bool {
	g := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(g[:], want[:]) == 1
}

type bearerAuth struct{ token digest }

func newBearerAuth(token string) bearerAuth {
	return bearerAuth{token: sha256.Sum256([]byte(token))}
}

func (a bearerAuth) ok(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	// The scheme is case-insensitive (RFC 9110 §11.1).
	const scheme = "bearer "
	if len(h) < len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return false
	}
	return equalDigest(h[len(scheme):], a.token)
}

func (bearerAuth) challenge() string { return `Bearer realm="metrics"` }

type basicAuth struct{ user, password digest }

func newBasicAuth(user, password string) basicAuth {
	return basicAuth{user: sha256.Sum256([]byte(user)), password: sha256.Sum256([]byte(password))}
}

func (a basicAuth) ok(r *http.Request) bool {
	user, password, ok := r.BasicAuth()
	// Both comparisons always run, so a wrong user takes as long as a wrong
	// password.
	u := equalDigest(user, a.user)
	p := equalDigest(password, a.password)
	return ok && u && p
}

func (basicAuth) challenge() string { return `Basic realm="metrics", charset="UTF-8"` }

// allowedMethods is the Allow header of a 405 response.
const allowedMethods = "GET, HEAD"

// guard serves next only to GET and HEAD requests that carry the configured
// credential: others get 401 Unauthorized (checked first, so that an
// unauthenticated client learns nothing else) or 405 Method Not Allowed.
func guard(next http.Handler, auth authenticator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth != nil && !auth.ok(r) {
			w.Header().Set("WWW-Authenticate", auth.challenge())
			http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", allowedMethods)
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}
