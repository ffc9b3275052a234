package cipvalidate

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/coretest"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
	"github.com/coredns-cip/coredns-cip/internal/testcerts"
)

func TestParseEventsTLS(t *testing.T) {
	pki := testcerts.Write(t)
	cfg, err := parseString(t, fmt.Sprintf("cipvalidate {\n api_key k\n events 127.0.0.1:0 tls %s %s client_ca %s\n}", pki.ServerCert, pki.ServerKey, pki.CA))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.eventsAccess.TLS == nil || len(cfg.eventsAccess.TLS.Certificates) != 1 || cfg.eventsAccess.TLS.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("events tls: %+v, want the certificate and client certificates required", cfg.eventsAccess.TLS)
	}
	cfg, err = parseString(t, fmt.Sprintf("cipvalidate {\n api_key k\n events 127.0.0.1:0 tls %s %s\n}", pki.ServerCert, pki.ServerKey))
	if err != nil || cfg.eventsAccess.TLS == nil || cfg.eventsAccess.TLS.ClientAuth != tls.NoClientCert {
		t.Fatalf("events tls without client_ca: %v %+v", err, cfg)
	}

	tests := []struct {
		tail string
		want string
	}{
		{"tls /nonexistent/cert.pem " + pki.ServerKey, "events: tls /nonexistent/cert.pem"},
		{"tls " + pki.ServerCert + " /nonexistent/key.pem", "/nonexistent/key.pem"},
		{"tls " + pki.ServerCert + " " + pki.OtherKey, "private key does not match public key"},
		{"tls " + pki.ServerCert + " " + pki.ServerKey + " client_ca /nonexistent/ca.pem", "events: client_ca"},
		{"tls " + pki.ServerCert + " " + pki.ServerKey + " client_ca " + pki.ServerKey, "holds no PEM certificate"},
		{"tls " + pki.ServerCert, "events: tls takes 2 values, got 1; syntax is events ADDRESS [tokens PATH] [token_file PATH] [tls CERT KEY [client_ca CA]]"},
		{"client_ca " + pki.CA, "events: client_ca needs tls CERT KEY"},
	}
	for _, tc := range tests {
		_, err := parseString(t, "cipvalidate {\n api_key k\n events 127.0.0.1:0 "+tc.tail+"\n}")
		if err == nil || !strings.Contains(err.Error(), "Testfile:3 - Error during parsing: events: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("events 127.0.0.1:0 %s: %v, want %q on line 3", tc.tail, err, tc.want)
		}
	}
}

// A Corefile with `events ... tls ... client_ca ...` serves the API over
// mutual TLS: a client without a certificate is refused in the handshake,
// one with the CA-signed certificate and the token tags a client.
func TestEventsMutualTLSE2E(t *testing.T) {
	RegisterDirective()
	pki := testcerts.Write(t)
	_, apiURL := fakeapitest.Start(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tls-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CIP_TLS_KEY", fakeapitest.Key)
	coretest.Start(t, fmt.Sprintf(`.:0 {
    cipvalidate {
        api_key {$CIP_TLS_KEY}
        api_url %s
        events 127.0.0.1:0 token_file %s tls %s %s client_ca %s
    }
}
`, apiURL, tokenFile, pki.ServerCert, pki.ServerKey, pki.CA))
	var base string
	instances.Range(func(_, v any) bool {
		base = "https://" + v.(*CIPValidate).api.Addr()
		return false
	})

	post := func(c *http.Client) (int, string, error) {
		req, _ := http.NewRequest("POST", base+"/v1/events", strings.NewReader(`{"client":"10.7.7.7","type":"edr.malware"}`))
		req.Header.Set("Authorization", "Bearer tls-token")
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), nil
	}
	if _, _, err := post(testcerts.Client(t, pki.CA, "", "")); err == nil {
		t.Error("a client without a certificate was served")
	}
	status, body, err := post(testcerts.Client(t, pki.CA, pki.ClientCert, pki.ClientKey))
	if err != nil || status != http.StatusAccepted {
		t.Fatalf("POST /v1/events with the client certificate: %d %s %v, want 202", status, body, err)
	}
}
