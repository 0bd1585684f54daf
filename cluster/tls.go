package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"
)

// tlsPair holds both ends of mutual TLS on the cluster port: every node
// accepts and dials, and each side verifies the other against the CA.
type tlsPair struct {
	server *tls.Config
	client *tls.Config
	// own is this node's certificate and roots the cluster CA, for the
	// start-up check (checkOwn).
	own   *x509.Certificate
	roots *x509.CertPool
}

// expirySoon is how long before its certificate expires a node warns at
// start: a restart with a renewed certificate is due.
const expirySoon = 30 * 24 * time.Hour

// loadTLS reads the PEM files named in c. Trust is "signed by the cluster
// CA": peers are addressed by whatever the operator configured (IPs,
// container names), so host names in certificates are not checked, and the
// CA must be dedicated to this cluster.
func loadTLS(c TLSConfig) (*tlsPair, error) {
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: cluster.tls.cert/key: %w%s", ErrConfig, err, createHint(err))
	}
	pem, err := os.ReadFile(c.CA)
	if err != nil {
		return nil, fmt.Errorf("%w: cluster.tls.ca: %w%s", ErrConfig, err, createHint(err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: cluster.tls.ca: %s holds no PEM certificate", ErrConfig, c.CA)
	}
	verify := verifyPeer(pool)
	return &tlsPair{
		own:   cert.Leaf,
		roots: pool,
		server: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{cert},
			// The chain is verified in VerifyConnection, which accepts any
			// extended key usage: one node certificate serves both ends.
			ClientAuth:       tls.RequireAnyClientCert,
			VerifyConnection: verify,
		},
		client: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{cert},
			// Host names are not part of the trust model (see loadTLS);
			// VerifyConnection checks the chain against the cluster CA.
			InsecureSkipVerify: true, //nolint:gosec // chain verified in VerifyConnection
			VerifyConnection:   verify,
		},
	}, nil
}

func verifyPeer(pool *x509.CertPool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errNoPeerCert
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
			Roots:         pool,
			Intermediates: inter,
			CurrentTime:   time.Now(),
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err != nil {
			return fmt.Errorf("peer certificate %q: %w", cs.PeerCertificates[0].Subject.CommonName, err)
		}
		return nil
	}
}

// createHint tells how to create a missing certificate file.
func createHint(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return " (create the cluster CA and node certificates with kvnode tls ca and kvnode tls cert NODE)"
	}
	return ""
}

// checkOwn logs, at start, a certificate its peers will refuse (another
// CA, expired) and one that expires soon: either stops the cluster when
// every node's certificate was made at the same time.
func (tp *tlsPair) checkOwn(l *slog.Logger, now time.Time) {
	if tp.own == nil {
		return
	}
	_, err := tp.own.Verify(x509.VerifyOptions{Roots: tp.roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	switch {
	case err != nil:
		l.Error("this node's certificate does not verify against cluster.tls.ca: its peers will refuse it",
			"subject", tp.own.Subject.CommonName, "not_after", tp.own.NotAfter, "err", err)
	case tp.own.NotAfter.Sub(now) < expirySoon:
		l.Warn("this node's certificate expires soon: renew it (kvnode tls cert) and restart the node before then",
			"subject", tp.own.Subject.CommonName, "not_after", tp.own.NotAfter)
	}
}
