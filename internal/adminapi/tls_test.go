package adminapi

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/testcerts"
)

// startTLS starts a fixture serving HTTPS with the test certificates and,
// if mutual, requiring a client certificate signed by the test CA.
func startTLS(t *testing.T, pki testcerts.Files, mutual bool) *fixture {
	t.Helper()
	clientCA := ""
	if mutual {
		clientCA = pki.CA
	}
	tlsCfg, err := LoadTLS(pki.ServerCert, pki.ServerKey, clientCA)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.TLS = tlsCfg })
	if err := f.srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.srv.Stop(context.Background()) })
	return f
}

// httpsClient trusts the test CA and, with cert and key, presents them.
func httpsClient(t *testing.T, pki testcerts.Files, cert, key string) *http.Client {
	return testcerts.Client(t, pki.CA, cert, key)
}

// getClients asks for GET /v1/clients with the test token.
func getClients(c *http.Client, url string) (int, error) {
	req, _ := http.NewRequest("GET", url+"/v1/clients", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func TestTLSServes(t *testing.T) {
	pki := testcerts.Write(t)
	f := startTLS(t, pki, false)
	client := httpsClient(t, pki, "", "")

	status, err := getClients(client, "https://"+f.srv.Addr())
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET over HTTPS: %d %v, want 200", status, err)
	}
	// The token is still required over TLS.
	resp, err := client.Get("https://" + f.srv.Addr() + "/v1/clients")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET without a token over HTTPS = %d, want 401", resp.StatusCode)
	}
	// Plain HTTP to the TLS port gets no answer from the API.
	plain := &http.Client{Transport: &http.Transport{}}
	if status, err := getClients(plain, "http://"+f.srv.Addr()); err == nil && status == http.StatusOK {
		t.Error("plain HTTP to the HTTPS port was answered 200")
	}
	// A client that does not trust the CA refuses the server.
	if _, err := getClients(&http.Client{Transport: &http.Transport{}}, "https://"+f.srv.Addr()); err == nil {
		t.Error("a client without the private CA accepted the server's certificate")
	}
}

// A Config that allows TLS 1.0 is raised to TLS 1.2.
func TestTLSMinVersion(t *testing.T) {
	pki := testcerts.Write(t)
	tlsCfg, err := LoadTLS(pki.ServerCert, pki.ServerKey, "")
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg.MinVersion = tls.VersionTLS10
	f := newFixture(t, func(c *Config) { c.TLS = tlsCfg })
	if err := f.srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.srv.Stop(context.Background()) })
	client := httpsClient(t, pki, "", "")
	client.Transport.(*http.Transport).TLSClientConfig.MaxVersion = tls.VersionTLS11
	if _, err := getClients(client, "https://"+f.srv.Addr()); err == nil {
		t.Error("a TLS 1.1 client was served")
	}
}

func TestMutualTLS(t *testing.T) {
	pki := testcerts.Write(t)
	f := startTLS(t, pki, true)
	url := "https://" + f.srv.Addr()

	_, err := getClients(httpsClient(t, pki, "", ""), url)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client without a certificate: %v, want a handshake error", err)
	}
	// A client certificate another CA signed.
	other := testcerts.Write(t)
	if _, err := getClients(httpsClient(t, pki, other.ClientCert, other.ClientKey), url); err == nil {
		t.Error("a client certificate from another CA was accepted")
	}
	status, err := getClients(httpsClient(t, pki, pki.ClientCert, pki.ClientKey), url)
	if err != nil || status != http.StatusOK {
		t.Fatalf("a client with the CA-signed certificate: %d %v, want 200", status, err)
	}
}

func TestLoadTLSErrors(t *testing.T) {
	pki := testcerts.Write(t)
	tests := []struct {
		cert, key, ca string
		want          string
	}{
		{"/nonexistent.pem", pki.ServerKey, "", "events: tls /nonexistent.pem"},
		{pki.ServerCert, pki.OtherKey, "", "private key does not match public key"},
		{pki.ServerKey, pki.ServerKey, "", "events: tls"},
		{pki.ServerCert, pki.ServerKey, "/nonexistent.pem", "events: client_ca"},
		{pki.ServerCert, pki.ServerKey, pki.ServerKey, "holds no PEM certificate"},
	}
	for _, tc := range tests {
		_, err := LoadTLS(tc.cert, tc.key, tc.ca)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "events: ") {
			t.Errorf("LoadTLS(%s, %s, %q) = %v, want an error with %q", tc.cert, tc.key, tc.ca, err, tc.want)
		}
	}
	if _, err := NewServer(Config{Addr: "127.0.0.1:0", Backend: newFakeBackend(), TLS: &tls.Config{}}); err == nil {
		t.Error("NewServer accepted TLS without a certificate")
	}
}
