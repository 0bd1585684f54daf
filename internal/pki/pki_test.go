package pki_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/kvnode/kvnode/internal/pki"
)

func parse(t *testing.T, p []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(p)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %q", p)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newCA(t *testing.T, validity time.Duration, now time.Time) (pki.Pair, *pki.CA) {
	t.Helper()
	p, err := pki.NewCA(validity, now)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(p.Cert, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	return p, ca
}

func TestIssue_CertificateChainsToTheCAForBothEnds(t *testing.T) {
	now := time.Now()
	caPair, ca := newCA(t, 5*365*24*time.Hour, now)
	node, err := ca.Issue("node1", []string{"node1-peer", "10.0.0.7", "::1"}, 365*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(node.Cert, node.Key); err != nil {
		t.Fatalf("certificate and key do not load as a TLS pair: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(parse(t, caPair.Cert))
	c := parse(t, node.Cert)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("does not verify for usage %v: %v", usage, err)
		}
	}
	if c.Subject.CommonName != "node1" || !slices.Equal(c.DNSNames, []string{"node1", "node1-peer"}) ||
		len(c.IPAddresses) != 2 || !c.IPAddresses[0].Equal(net.ParseIP("10.0.0.7")) || !c.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("names: CN %q DNS %v IP %v", c.Subject.CommonName, c.DNSNames, c.IPAddresses)
	}
	if c.IsCA || c.NotAfter.Sub(now).Round(time.Hour) != 365*24*time.Hour || !c.NotBefore.Before(now) {
		t.Errorf("IsCA %v, valid %s to %s", c.IsCA, c.NotBefore, c.NotAfter)
	}
	if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", c.PublicKey)
	}
	if b, _ := pem.Decode(node.Key); b == nil || b.Type != "PRIVATE KEY" {
		t.Errorf("key is not PKCS#8 PEM")
	}
}

// A member's certificate cannot mint members: the CA allows no
// intermediate, and a node certificate is no CA.
func TestIssue_ANodeCertificateCannotSignAnother(t *testing.T) {
	now := time.Now()
	caPair, ca := newCA(t, time.Hour, now)
	node, err := ca.Issue("node1", nil, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pki.LoadCA(node.Cert, node.Key); !errors.Is(err, pki.ErrNotCA) {
		t.Fatalf("a node certificate loads as a CA: %v", err)
	}
	// Forge one anyway, with the node's key, and present the node
	// certificate as the intermediate.
	pair, _ := tls.X509KeyPair(node.Cert, node.Key)
	nodeCert := parse(t, node.Cert)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, nodeCert, &key.PublicKey, pair.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := x509.ParseCertificate(der)
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(parse(t, caPair.Cert))
	inter.AddCert(nodeCert)
	if _, err := forged.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
		t.Fatal("a certificate signed by a node certificate verifies")
	}
}

func TestIssue_NeverOutlivesTheCA(t *testing.T) {
	now := time.Now()
	caPair, ca := newCA(t, 24*time.Hour, now)
	node, err := ca.Issue("n", nil, 365*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := parse(t, node.Cert).NotAfter, parse(t, caPair.Cert).NotAfter; !got.Equal(want) || !node.NotAfter.Equal(want) {
		t.Fatalf("node certificate ends %s, CA %s", got, want)
	}
	if _, err := ca.Issue("n", nil, time.Hour, now.Add(25*time.Hour)); !errors.Is(err, pki.ErrExpired) {
		t.Fatalf("issue from an expired CA: %v", err)
	}
}

func TestLoadCA_RefusesAKeyOfAnotherCA(t *testing.T) {
	now := time.Now()
	a, _ := newCA(t, time.Hour, now)
	b, _ := newCA(t, time.Hour, now)
	if _, err := pki.LoadCA(a.Cert, b.Key); err == nil {
		t.Fatal("loaded a CA with another CA's key")
	}
	if parse(t, a.Cert).Subject.CommonName == parse(t, b.Cert).Subject.CommonName {
		t.Fatal("two CAs share a name")
	}
}
