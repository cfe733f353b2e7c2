package fleet

import (
	"context"
	"errors"
	"io"
	"net/http"
)

// errAnswerTooLarge ends the read of an answer longer than the limit its
// request's context carries (withAnswerLimit).
var errAnswerTooLarge = errors.New("answer longer than the limit of an optimistic read")

type answerLimitKey struct{}

// withAnswerLimit returns ctx with a limit of n bytes on the (decoded)
// answer of each request made with it.
func withAnswerLimit(ctx context.Context, n int64) context.Context {
	return context.WithValue(ctx, answerLimitKey{}, n)
}

// limitRoundTripper ends the body of an answer past the limit its request's
// context carries, with errAnswerTooLarge: client_golang reads an answer
// whole into memory before it decodes it, and a read whose size is not
// known in advance must not hold more than the limit. Requests without a
// limit pass unchanged.
type limitRoundTripper struct{ base http.RoundTripper }

func (t limitRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if n, ok := r.Context().Value(answerLimitKey{}).(int64); ok && err == nil && resp.Body != nil {
		resp.Body = &limitedBody{rc: resp.Body, left: n}
	}
	return resp, err
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errAnswerTooLarge
	}
	// One byte past the limit tells an answer of exactly the limit from a
	// longer one.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, errAnswerTooLarge
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
