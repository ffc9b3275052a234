package fakeapitest_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/fakeapi"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
)

func get(t *testing.T, baseURL, key string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, baseURL+fakeapi.ReportPath+"?ip=45.83.0.10&full=true", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-api-key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestStartServesTheEmbeddedFixturesWithTheKey(t *testing.T) {
	fake, url := fakeapitest.Start(t)
	if got := get(t, url, fakeapitest.Key); got != http.StatusOK {
		t.Errorf("with Key: HTTP %d, want 200", got)
	}
	if got := get(t, url, "another-key"); got != http.StatusUnauthorized {
		t.Errorf("with another key: HTTP %d, want 401", got)
	}
	if n := fake.CallsFor("45.83.0.10"); n != 2 {
		t.Errorf("%d calls counted, want 2", n)
	}
}

func TestWithKey(t *testing.T) {
	_, url := fakeapitest.Start(t, fakeapitest.WithKey(""))
	if got := get(t, url, "any-key"); got != http.StatusOK {
		t.Errorf(`WithKey(""): any key gets HTTP %d, want 200`, got)
	}
	_, url = fakeapitest.Start(t, fakeapitest.WithKey("other"))
	if got := get(t, url, fakeapitest.Key); got != http.StatusUnauthorized {
		t.Errorf(`WithKey("other"): Key gets HTTP %d, want 401`, got)
	}
}
