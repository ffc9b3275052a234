// Package fakeapitest starts the fake Criminal IP API for a test: the fixture
// set compiled into package fakeapi, served on a loopback port that closes
// when the test ends. It is the one starter every test uses.
package fakeapitest

import (
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/fakeapi"
)

// Key is the x-api-key a server from Start accepts unless WithKey says
// otherwise.
const Key = "test-key"

// Option configures the server before it serves.
type Option func(*fakeapi.Server)

// WithKey makes key the only x-api-key accepted; "" accepts any non-empty
// key.
func WithKey(key string) Option {
	return func(s *fakeapi.Server) { s.Key = key }
}

// Start serves the embedded fixtures on 127.0.0.1 with Key as the API key,
// changed by opts, and returns the server (for faults and call counts) and
// its base URL. The server stops when the test ends.
func Start(tb testing.TB, opts ...Option) (*fakeapi.Server, string) {
	tb.Helper()
	s, err := fakeapi.Embedded()
	if err != nil {
		tb.Fatal(err)
	}
	s.Key = Key
	for _, opt := range opts {
		opt(s)
	}
	return s, Serve(tb, s)
}

// Serve serves s, loaded by the caller, on a free loopback port until the
// test ends, and returns its base URL.
func Serve(tb testing.TB, s *fakeapi.Server) string {
	tb.Helper()
	baseURL, stop, err := s.Start("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := stop(); err != nil {
			tb.Errorf("stopping the fake API: %v", err)
		}
	})
	return baseURL
}
