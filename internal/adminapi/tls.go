package adminapi

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// LoadTLS reads the API's certificate chain and key, and, if clientCA is
// not "", the CA certificates whose client certificates it accepts, into a
// server tls.Config for Config.TLS: TLS 1.2 at least, Go's defaults
// otherwise. With clientCA every client must present a certificate one of
// them signed, or the handshake fails before any request is read. The
// files are read once, here, so a Corefile naming a missing file or a key
// that does not match its certificate fails when it is parsed; a renewed
// certificate takes a reload. Errors start with "events: ".
func LoadTLS(certFile, keyFile, clientCA string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("events: tls %s %s: %w", certFile, keyFile, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if clientCA == "" {
		return cfg, nil
	}
	data, err := os.ReadFile(clientCA)
	if err != nil {
		return nil, fmt.Errorf("events: client_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("events: client_ca %s holds no PEM certificate", clientCA)
	}
	cfg.ClientCAs = pool
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	return cfg, nil
}
