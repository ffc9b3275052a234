package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// apiFlags are the flags of the files a client of the event API reads:
// the bearer token, and for an https:// API (`events ... tls`) the CA to
// trust and the client certificate for mutual TLS (`client_ca`).
type apiFlags struct {
	tokenFile, ca, cert, key *string
}

// addAPIFlags defines apiFlags on fs; prefix starts each help text ("with
// --api: " where the API is optional).
func addAPIFlags(fs *flag.FlagSet, prefix string) apiFlags {
	return apiFlags{
		tokenFile: fs.String("token-file", "", prefix+"bearer token `file`"),
		ca:        fs.String("ca", "", prefix+"PEM `file` of the CA to trust for an https:// API, such as a private CA (default $CIP_CA)"),
		cert:      fs.String("cert", "", prefix+"PEM client certificate `file`, for an API that requires mutual TLS"),
		key:       fs.String("key", "", prefix+"PEM `file` of the key of --cert"),
	}
}

// apiFiles are the values of apiFlags.
type apiFiles struct{ token, ca, cert, key string }

func (f apiFlags) files() apiFiles {
	return apiFiles{token: *f.tokenFile, ca: *f.ca, cert: *f.cert, key: *f.key}
}

// apiTransport is the HTTP transport for the API at a URL of scheme: for
// https, trusting the CA in files.ca (else $CIP_CA, else the system's
// roots) and presenting files.cert and files.key if given. TLS options with
// an http:// URL are an error, rather than a certificate silently unused;
// $CIP_CA, a default for every https:// API, is ignored there.
func apiTransport(scheme string, files apiFiles, getenv func(string) string) (http.RoundTripper, error) {
	if scheme != "https" {
		if files.ca != "" || files.cert != "" || files.key != "" {
			return nil, errors.New("--ca, --cert and --key need an https:// API URL")
		}
		return http.DefaultTransport, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca := firstNonEmpty(files.ca, getenv("CIP_CA")); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("--ca: %v", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca: %s holds no PEM certificate", ca)
		}
	}
	switch {
	case (files.cert == "") != (files.key == ""):
		return nil, errors.New("--cert and --key go together")
	case files.cert != "":
		pair, err := tls.LoadX509KeyPair(files.cert, files.key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	// HTTP/1.1 only: over HTTP/2 a client certificate refused at the end
	// of a TLS 1.3 handshake surfaces as "http2: client conn could not be
	// established", without the server's reason, which tlsHint needs. The
	// CLI sends a handful of requests; HTTP/2 buys it nothing.
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP1(true)
	return tr, nil
}

// tlsHint says what to do about a TLS error of the API, if it is one of
// the usual ones.
func tlsHint(err error) string {
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &unknown):
		return " (a private CA? give it with --ca or $CIP_CA)"
	// The server's alerts are of an unexported type; their text is stable.
	case strings.Contains(err.Error(), "tls: certificate required"), strings.Contains(err.Error(), "tls: bad certificate"):
		return " (the API requires a client certificate signed by its client_ca: --cert and --key)"
	}
	return ""
}
