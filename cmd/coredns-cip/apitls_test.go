package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/coretest"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
	"github.com/coredns-cip/coredns-cip/internal/testcerts"
	"github.com/coredns-cip/coredns-cip/plugin/cipvalidate"
)

// Against a server whose event API requires mutual TLS (events ... tls
// CERT KEY client_ca CA), backtrack --api and blocks list work with --ca,
// --cert and --key, and fail with a hint without them.
func TestAPIClientsMutualTLS(t *testing.T) {
	cipvalidate.RegisterDirective()
	pki := testcerts.Write(t)
	_, fakeURL := fakeapitest.Start(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("mtls-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CIP_MTLS_KEY", fakeapitest.Key)
	events := freeLoopbackAddr(t)
	coretest.Start(t, fmt.Sprintf(`.:0 {
    cipvalidate {
        api_key {$CIP_MTLS_KEY}
        api_url %s
        events %s token_file %s tls %s %s client_ca %s
    }
    whoami
}
`, fakeURL, events, tokenFile, pki.ServerCert, pki.ServerKey, pki.CA))
	base := "https://" + events
	tlsArgs := []string{"--api", base, "--token-file", tokenFile, "--ca", pki.CA, "--cert", pki.ClientCert, "--key", pki.ClientKey}
	noEnv := func(string) string { return "" }

	// backtrack --api makes the server block 45.83.0.21 (Critical score).
	at := time.Now().Add(-time.Second)
	log := filepath.Join(dir, "fw.log")
	if err := os.WriteFile(log, []byte(netfilterLine(at.Add(-time.Minute), "10.9.9.9", "45.83.0.21", 8443)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	btArgs := append([]string{"--log", log, "--format", "netfilter", "--client", "10.9.9.9", "--at", at.Format(time.RFC3339Nano), "--deadline", "1m"}, tlsArgs...)
	if code := backtrack(context.Background(), btArgs, &out, &errb, noEnv); code != exitSuspicious {
		t.Fatalf("backtrack over mutual TLS: exit %d\nstdout:\n%s\nstderr:\n%s", code, &out, &errb)
	}

	out.Reset()
	errb.Reset()
	if code := blocksCmd(context.Background(), append([]string{"list"}, tlsArgs...), &out, &errb, noEnv); code != 0 {
		t.Fatalf("blocks list over mutual TLS: exit %d: %s", code, &errb)
	}
	if !strings.Contains(out.String(), "45.83.0.21") || !strings.Contains(out.String(), "1 active block(s)") {
		t.Errorf("blocks list:\n%s", &out)
	}

	// $CIP_CA stands in for --ca.
	env := func(k string) string { return map[string]string{"CIP_CA": pki.CA}[k] }
	out.Reset()
	if code := blocksCmd(context.Background(), []string{"list", "--api", base, "--token-file", tokenFile, "--cert", pki.ClientCert, "--key", pki.ClientKey}, &out, &errb, env); code != 0 {
		t.Errorf("blocks list with $CIP_CA: exit %d: %s", code, &errb)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--api", base, "--token-file", tokenFile, "--ca", pki.CA}, "--cert and --key"},
		{[]string{"--api", base, "--token-file", tokenFile, "--cert", pki.ClientCert, "--key", pki.ClientKey}, "--ca or $CIP_CA"},
		{[]string{"--api", base, "--token-file", tokenFile, "--ca", pki.CA, "--cert", pki.ClientCert}, "--cert and --key go together"},
		{[]string{"--api", base, "--token-file", tokenFile, "--ca", pki.ServerKey}, "--ca: " + pki.ServerKey + " holds no PEM certificate"},
		{[]string{"--api", "http://" + events, "--token-file", tokenFile, "--ca", pki.CA}, "need an https:// API URL"},
	} {
		errb.Reset()
		if code := blocksCmd(context.Background(), append([]string{"list"}, tc.args...), &out, &errb, noEnv); code != exitError || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("blocks list %v: exit %d, %q; want 2 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
}
