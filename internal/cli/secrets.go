package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/kvnode/kvnode/internal/pki"
)

// Default validities, Consul's: the CA outlives several rounds of node
// certificates. Nodes read certificates at start, so renewing one is a
// restart of that node.
const (
	defaultCADays   = 5 * 365
	defaultCertDays = 365
)

const tlsUsage = "ca [--dir DIR] [--days N] | cert NODE [--dir DIR] [--host HOST]... [--days N] [--ca FILE] [--ca-key FILE]"

// certName is what a node certificate may be named: a DNS name (it is one
// of the certificate's names) that is also a safe file name.
var certName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)

// TLS dispatches kvnode tls ca|cert.
func TLS(_ context.Context, args []string, stdout, stderr io.Writer) error {
	sub := ""
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "ca":
		return runTLSCA(args, stdout, stderr)
	case "cert":
		return runTLSCert(args, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stderr, "Usage: kvnode tls "+tlsUsage)
		return flag.ErrHelp
	default:
		fmt.Fprintln(stderr, "Usage: kvnode tls "+tlsUsage)
		return fmt.Errorf("%w: want ca or cert, got %q", ErrUsage, sub)
	}
}

func runTLSCA(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("tls ca", "[--dir DIR] [--days N]: write a new cluster CA as DIR/ca.pem and DIR/ca-key.pem", stderr)
	dir := fs.String("dir", ".", "directory to write into (created if missing)")
	days := fs.Int("days", defaultCADays, "validity in days")
	pos, err := parseVerbArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *days < 1 {
		return usageErr(fs, "want no arguments and --days of at least 1")
	}
	pair, err := pki.NewCA(time.Duration(*days)*24*time.Hour, time.Now())
	if err != nil {
		return err //nolint:wrapcheck // pki's errors say what failed
	}
	cert, key := filepath.Join(*dir, "ca.pem"), filepath.Join(*dir, "ca-key.pem")
	if err := writePair(*dir, cert, key, pair); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (the cluster CA, valid until %s) and %s\n", cert, pair.NotAfter.UTC().Format(time.DateOnly), key)
	fmt.Fprintf(stdout, "copy %s to every node as cluster.tls.ca; keep %s off the nodes: it signs new members\n", cert, key)
	return nil
}

func runTLSCert(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("tls cert", "NODE [--dir DIR] [--host HOST]...: write DIR/NODE.pem and DIR/NODE-key.pem, signed by the cluster CA", stderr)
	dir := fs.String("dir", ".", "directory holding the CA and to write into")
	caFile := fs.String("ca", "", "CA certificate (default DIR/ca.pem)")
	caKeyFile := fs.String("ca-key", "", "CA key (default DIR/ca-key.pem)")
	days := fs.Int("days", defaultCertDays, "validity in days (never beyond the CA's)")
	var hosts StringsFlag
	fs.Var(&hosts, "host", "another DNS name or IP address of the node (repeatable)")
	pos, err := parseVerbArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr(fs, "want exactly one NODE name, got %d arguments", len(pos))
	}
	node := pos[0]
	if !certName.MatchString(node) {
		return usageErr(fs, "NODE %q: want letters, digits, dots and dashes (it names the files and the certificate)", node)
	}
	if *days < 1 {
		return usageErr(fs, "--days %d: want at least 1", *days)
	}
	for _, h := range hosts {
		if !certName.MatchString(h) && !isIP(h) {
			return usageErr(fs, "--host %q: want a DNS name or an IP address", h)
		}
	}
	if *caFile == "" {
		*caFile = filepath.Join(*dir, "ca.pem")
	}
	if *caKeyFile == "" {
		*caKeyFile = filepath.Join(*dir, "ca-key.pem")
	}
	ca, err := loadCA(*caFile, *caKeyFile)
	if err != nil {
		return err
	}
	pair, err := ca.Issue(node, hosts, time.Duration(*days)*24*time.Hour, time.Now())
	if err != nil {
		return fmt.Errorf("%s: %w", *caFile, err)
	}
	cert, key := filepath.Join(*dir, node+".pem"), filepath.Join(*dir, node+"-key.pem")
	if err := writePair(*dir, cert, key, pair); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (valid until %s) and %s: cluster.tls.cert and cluster.tls.key of %s\n",
		cert, pair.NotAfter.UTC().Format(time.DateOnly), key, node)
	return nil
}

func isIP(s string) bool { return net.ParseIP(s) != nil }

func loadCA(certFile, keyFile string) (*pki.CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read the CA certificate (create one with kvnode tls ca): %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read the CA key: %w", err)
	}
	ca, err := pki.LoadCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", certFile, keyFile, err)
	}
	return ca, nil
}

// writePair writes a certificate (0644) and its key (0600) as new files:
// it refuses to replace either, and leaves neither behind on failure.
func writePair(dir, certFile, keyFile string, p pki.Pair) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Lstat(f); err == nil {
			return fmt.Errorf("%s exists: refusing to overwrite it (move it away first)", f)
		}
	}
	if err := writeNew(keyFile, p.Key, 0o600); err != nil {
		return err
	}
	if err := writeNew(certFile, p.Cert, 0o644); err != nil {
		_ = os.Remove(keyFile)
		return err
	}
	return nil
}

// writeNew creates path, failing if anything (a symlink included) is
// already there, and writes data.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	_, werr := f.Write(data)
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Keygen prints a new gossip key: 32 random bytes, base64.
func Keygen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("keygen", ": print a new key for cluster.gossip.encrypt_key (or a file for encrypt_key_file)", stderr)
	if err := ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr(fs, "keygen takes no arguments")
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("random key: %w", err)
	}
	_, err := fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(key))
	return err //nolint:wrapcheck // a failed write to stdout needs no context
}
