package prometheus_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
)

// serve sends one request to h and returns the response.
func serve(h http.Handler, method string, header http.Header) *http.Response {
	req := httptest.NewRequest(method, "/metrics", nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestOnlyGetAndHead(t *testing.T) {
	c, exp := newCollector(t)
	recordKnownValues(t, c)
	testCases := []struct {
		method string
		want   int
	}{
		{http.MethodGet, http.StatusOK},
		{http.MethodHead, http.StatusOK},
		{http.MethodPost, http.StatusMethodNotAllowed},
		{http.MethodPut, http.StatusMethodNotAllowed},
		{http.MethodPatch, http.StatusMethodNotAllowed},
		{http.MethodDelete, http.StatusMethodNotAllowed},
		{http.MethodOptions, http.StatusMethodNotAllowed},
		{http.MethodTrace, http.StatusMethodNotAllowed},
		{"PROPFIND", http.StatusMethodNotAllowed},
	}
	for _, tc := range testCases {
		t.Run(tc.method, func(t *testing.T) {
			resp := serve(exp.Handler(), tc.method, nil)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want {
				t.Fatalf("%s: %d, want %d", tc.method, resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusMethodNotAllowed {
				if got := resp.Header.Get("Allow"); got != "GET, HEAD" {
					t.Errorf("Allow = %q, want %q", got, "GET, HEAD")
				}
				if strings.Contains(string(body), "orchestrator_") {
					t.Error("a refused request got metrics")
				}
			}
		})
	}
}

func TestBearerToken(t *testing.T) {
	c, exp := newCollector(t, prometheus.WithBearerToken("s3cret-token"))
	recordKnownValues(t, c)
	testCases := []struct {
		name          string
		authorization string
		method        string
		want          int
	}{
		{"no header", "", http.MethodGet, http.StatusUnauthorized},
		{"wrong token", "Bearer s3cret-tokem", http.MethodGet, http.StatusUnauthorized},
		{"prefix of token", "Bearer s3cret", http.MethodGet, http.StatusUnauthorized},
		{"token plus suffix", "Bearer s3cret-token2", http.MethodGet, http.StatusUnauthorized},
		{"basic scheme", "Basic czNjcmV0LXRva2Vu", http.MethodGet, http.StatusUnauthorized},
		{"no scheme", "s3cret-token", http.MethodGet, http.StatusUnauthorized},
		{"wrong token on POST", "Bearer nope", http.MethodPost, http.StatusUnauthorized},
		{"right token", "Bearer s3cret-token", http.MethodGet, http.StatusOK},
		{"scheme is case-insensitive", "bearer s3cret-token", http.MethodGet, http.StatusOK},
		{"right token, HEAD", "Bearer s3cret-token", http.MethodHead, http.StatusOK},
		{"right token, POST", "Bearer s3cret-token", http.MethodPost, http.StatusMethodNotAllowed},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.authorization != "" {
				h.Set("Authorization", tc.authorization)
			}
			resp := serve(exp.Handler(), tc.method, h)
			if resp.StatusCode != tc.want {
				t.Fatalf("%d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestBasicAuth(t *testing.T) {
	c, exp := newCollector(t, prometheus.WithBasicAuth("prom", "pa:ss"))
	recordKnownValues(t, c)
	testCases := []struct {
		name           string
		user, password string
		set            bool
		want           int
	}{
		{"none", "", "", false, http.StatusUnauthorized},
		{"wrong password", "prom", "pa:sS", true, http.StatusUnauthorized},
		{"wrong user", "Prom", "pa:ss", true, http.StatusUnauthorized},
		{"empty password", "prom", "", true, http.StatusUnauthorized},
		{"swapped", "pa:ss", "prom", true, http.StatusUnauthorized},
		{"right", "prom", "pa:ss", true, http.StatusOK},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			if tc.set {
				req.SetBasicAuth(tc.user, tc.password)
			}
			rec := httptest.NewRecorder()
			exp.Handler().ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("%d, want %d", rec.Code, tc.want)
			}
			if tc.want == http.StatusUnauthorized && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("WWW-Authenticate = %q", rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

func TestEndpointOptionErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	testCases := []struct {
		name string
		opts []prometheus.Option
		want string
	}{
		{"empty token", []prometheus.Option{prometheus.WithBearerToken("")}, "empty token"},
		{"empty user", []prometheus.Option{prometheus.WithBasicAuth("", "p")}, "empty user"},
		{"empty password", []prometheus.Option{prometheus.WithBasicAuth("u", "")}, "empty user or password"},
		{"token and basic", []prometheus.Option{prometheus.WithBearerToken("t"), prometheus.WithBasicAuth("u", "p")}, "at most one"},
		{"TLS without server", []prometheus.Option{prometheus.WithTLS(garbage, garbage)}, "needs WithServer"},
		{"TLS empty names", []prometheus.Option{prometheus.WithServer("127.0.0.1:0"), prometheus.WithTLS("", "")}, "empty certificate"},
		{"TLS missing file", []prometheus.Option{prometheus.WithServer("127.0.0.1:0"), prometheus.WithTLS(missing, missing)}, "loading TLS certificate"},
		{"TLS garbage", []prometheus.Option{prometheus.WithServer("127.0.0.1:0"), prometheus.WithTLS(garbage, garbage)}, "loading TLS certificate"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			exp, err := prometheus.New(tc.opts...)
			if err == nil {
				_ = exp.Shutdown(context.Background())
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// writeSelfSigned writes a self-signed ECDSA certificate for 127.0.0.1 and
// its key as PEM files and returns their paths and a pool trusting it.
func writeSelfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "orchestrator-otel test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLSWithBearerToken(t *testing.T) {
	certFile, keyFile, pool := writeSelfSigned(t)
	c, exp := newCollector(t, prometheus.WithServer("127.0.0.1:0"), prometheus.WithTLS(certFile, keyFile),
		prometheus.WithBearerToken("tok"))
	recordKnownValues(t, c)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	get := func(url, token string) (*http.Response, string, error) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b), nil
	}
	url := "https://" + exp.Addr() + "/metrics"
	resp, body, err := get(url, "tok")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "orchestrator_tokens_used_total") {
		t.Fatalf("HTTPS scrape: %d %s", resp.StatusCode, body)
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("not TLS 1.2+: %+v", resp.TLS)
	}
	if resp, _, err := get(url, "wrong"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token over TLS: %v %v", resp, err)
	}
	// Plain HTTP to the TLS port gets no metrics.
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + exp.Addr() + "/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(b), "orchestrator_") {
			t.Fatalf("plain HTTP got %d %s", resp.StatusCode, b)
		}
	}
	// A client that does not trust the certificate fails the handshake.
	untrusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	if _, err := untrusting.Get(url); err == nil {
		t.Fatal("a client without the CA completed the handshake")
	}
}

func TestHeaderSizeLimit(t *testing.T) {
	_, exp := newCollector(t, prometheus.WithServer("127.0.0.1:0"))
	req, _ := http.NewRequest(http.MethodGet, "http://"+exp.Addr()+"/metrics", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB header: %d, want 431", resp.StatusCode)
	}
}

// slowloris opens n connections to addr, each sending one header line every
// 100 ms and never finishing its request, until the server closes it or
// stop is closed. Each connection reports, on the returned channel, how
// long it lived and whether the server (rather than stop or the test's own
// bound) ended it. It returns once every connection is open.
func slowloris(t *testing.T, addr string, n int, bound time.Duration, stop <-chan struct{}, wg *sync.WaitGroup) chan slowResult {
	t.Helper()
	results := make(chan slowResult, n)
	for i := range n {
		// Taken before the dial, so before the server can start any timer
		// for this connection.
		opened := time.Now()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A bound on the test, not an assertion: a connection still
			// open then counts as not cut by the server.
			_ = conn.SetDeadline(opened.Add(bound))
			closed := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, conn)
				closed <- err
			}()
			_, err := fmt.Fprintf(conn, "GET /metrics HTTP/1.1\r\nHost: %s\r\n", addr)
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for k := 0; err == nil; k++ {
				select {
				case err = <-closed:
					var ne net.Error
					byServer := !(errors.As(err, &ne) && ne.Timeout())
					results <- slowResult{lived: time.Since(opened), byServer: byServer}
					conn.Close()
					return
				case <-stop:
					conn.Close()
					<-closed
					results <- slowResult{lived: time.Since(opened)}
					return
				case <-tick.C:
					_, err = fmt.Fprintf(conn, "X-Slow-%d-%d: x\r\n", i, k)
				}
			}
			// A write failed: the server has closed the connection, unless
			// the test's own deadline expired.
			var ne net.Error
			byServer := !(errors.As(err, &ne) && ne.Timeout())
			conn.Close()
			<-closed
			results <- slowResult{lived: time.Since(opened), byServer: byServer}
		}()
	}
	return results
}

type slowResult struct {
	lived    time.Duration
	byServer bool
}

// TestSlowlorisDoesNotBlockScrapes checks both halves of the slowloris
// protection without timing any scrape:
//
//   - held: 128 connections trickle header lines while 10 normal scrapes
//     run; every scrape must answer 200 with the series, and all 128 slow
//     connections must still be open when the last scrape has answered (the
//     header timeout is 5 minutes here, longer than the scrapes' own
//     client timeouts add up to, so only a server that stopped serving
//     other connections while slow ones are held fails this);
//   - cut: with the header timeout at 1 s, the server itself must close
//     every one of 128 such connections (a connection the test's 60 s
//     bound has to end counts as a failure), and none earlier than the
//     header timeout after it was opened.
func TestSlowlorisDoesNotBlockScrapes(t *testing.T) {
	const slowConns = 128

	t.Run("held", func(t *testing.T) {
		c, exp := newCollector(t, prometheus.WithServer("127.0.0.1:0"), prometheus.WithReadHeaderTimeout(5*time.Minute))
		recordKnownValues(t, c)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		// The connections' own bound (4 min) and the header timeout (5 min)
		// are both longer than the 10 scrapes' client timeouts add up to.
		results := slowloris(t, exp.Addr(), slowConns, 4*time.Minute, stop, &wg)

		tr := &http.Transport{DisableKeepAlives: true}
		t.Cleanup(tr.CloseIdleConnections)
		client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
		var worst time.Duration
		for range 10 {
			t0 := time.Now()
			resp, err := client.Get("http://" + exp.Addr() + "/metrics")
			if err != nil {
				close(stop)
				wg.Wait()
				t.Fatalf("scrape while %d slow connections are held: %v", slowConns, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			worst = max(worst, time.Since(t0))
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "orchestrator_tokens_used_total") {
				t.Errorf("scrape while slow connections are held: %d", resp.StatusCode)
			}
		}
		// Every slow connection is still open: none has reported.
		held := slowConns - len(results)
		close(stop)
		wg.Wait()
		t.Logf("10 scrapes while %d of %d slow connections were held; slowest scrape %v (logged, not asserted)", held, slowConns, worst)
		if held != slowConns {
			t.Errorf("only %d of %d slow connections were still open after the scrapes", held, slowConns)
		}
	})

	t.Run("cut", func(t *testing.T) {
		const headerTimeout = time.Second
		_, exp := newCollector(t, prometheus.WithServer("127.0.0.1:0"), prometheus.WithReadHeaderTimeout(headerTimeout))
		var wg sync.WaitGroup
		results := slowloris(t, exp.Addr(), slowConns, 60*time.Second, nil, &wg)
		wg.Wait()
		close(results)
		var cut int
		var shortest, longest time.Duration
		for r := range results {
			if r.byServer {
				cut++
			}
			if shortest == 0 || r.lived < shortest {
				shortest = r.lived
			}
			longest = max(longest, r.lived)
		}
		t.Logf("server cut %d of %d slow connections; they lived %v to %v (header timeout %v)", cut, slowConns, shortest, longest, headerTimeout)
		if cut != slowConns {
			t.Errorf("the server cut %d of %d slow connections", cut, slowConns)
		}
		// The server's timer starts after the test's dial, so no
		// connection can be cut sooner than this: an earlier cut is not
		// the header timeout.
		if shortest < headerTimeout {
			t.Errorf("a slow connection was cut after %v, before the header timeout %v", shortest, headerTimeout)
		}
	})
}

// readStatus reads the status line of a raw HTTP response.
func readStatus(conn net.Conn) (string, error) {
	return bufio.NewReader(conn).ReadString('\n')
}

// TestUnknownPathIs404 checks that the built-in server serves nothing but
// its path.
func TestUnknownPathIs404(t *testing.T) {
	_, exp := newCollector(t, prometheus.WithServer("127.0.0.1:0"))
	conn, err := net.Dial("tcp", exp.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /debug/pprof/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	line, err := readStatus(conn)
	if err != nil || !strings.Contains(line, " 404 ") {
		t.Fatalf("status %q %v, want 404", line, err)
	}
}
