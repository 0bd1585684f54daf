// Package pki creates what mutual TLS on the cluster port needs: a CA
// dedicated to one cluster and certificates for its nodes, as PEM. Keys are
// ECDSA P-256 in PKCS#8, which every TLS 1.3 stack and openssl read. It
// only creates; files and flags are the CLI's (cmd/kvnode tls).
//
// The cluster trusts "signed by the cluster CA" and checks no host names
// (cluster/tls.go), so a node certificate serves both ends of a connection
// (server and client usage) and its SANs are for other tools.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

var (
	// ErrNotCA is a certificate given as the CA that may not sign others.
	ErrNotCA = errors.New("not a CA certificate")
	// ErrExpired is a CA that has expired or expires before a new certificate would start.
	ErrExpired = errors.New("CA certificate has expired")
)

// clockSkew backdates new certificates so that a peer whose clock is a
// little behind accepts them at once.
const clockSkew = time.Minute

// Pair is a certificate and its private key, PEM encoded.
type Pair struct {
	Cert, Key []byte
	// NotAfter is when the certificate expires.
	NotAfter time.Time
}

// NewCA creates a self-signed CA valid from now for validity. Its name
// carries a random suffix so two clusters' CAs are told apart in logs. It
// signs node certificates only (path length zero).
func NewCA(validity time.Duration, now time.Time) (Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return Pair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "kvnode cluster CA " + serial.Text(16)[:8]},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	return sign(tmpl, tmpl, key, key)
}

// CA is a loaded CA that issues node certificates.
type CA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// LoadCA reads a CA certificate and its key (PKCS#8, EC or PKCS#1), and
// checks that they belong together and that the certificate is a CA.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate and key: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%w: %q", ErrNotCA, cert.Subject.CommonName)
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: its key cannot sign", ErrNotCA)
	}
	return &CA{cert: cert, key: key}, nil
}

// Issue creates a certificate for node, valid from now for validity but
// never beyond the CA, with node and hosts (DNS names or IP addresses) as
// its subject alternative names.
func (ca *CA) Issue(node string, hosts []string, validity time.Duration, now time.Time) (Pair, error) {
	if !now.Before(ca.cert.NotAfter) {
		return Pair{}, fmt.Errorf("%w on %s", ErrExpired, ca.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, fmt.Errorf("generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return Pair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: node},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              minTime(now.Add(validity), ca.cert.NotAfter),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range append([]string{node}, hosts...) {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return sign(tmpl, ca.cert, key, ca.key)
}

func sign(tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, signer crypto.Signer) (Pair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return Pair{}, fmt.Errorf("sign certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Pair{}, fmt.Errorf("encode key: %w", err)
	}
	return Pair{
		Cert:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		NotAfter: tmpl.NotAfter,
	}, nil
}

// newSerial is a random 128-bit serial number.
func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	// At least 2^124, so its hex form has 32 digits (NewCA names the CA
	// after the first 8) and it is never zero.
	return n.SetBit(n, 124, 1), nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
