package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// A node's identity is its node_id plus an incarnation: a random id
// generated into data_dir on the node's first start. A node that lost its
// data dir comes back under the same node_id but as a new incarnation, and
// the cluster treats it as a new member (DESIGN.md, "Identity"): raft's
// safety assumes a voter never forgets what it acknowledged, and a wiped
// voter answering as its old self could elect a leader that lacks a
// committed write.
//
// The incarnation travels in the node's raft address ("host:port#inc"),
// which the raft configuration, gossip and the leader address carry; the
// cluster port refuses a connection meant for another incarnation (mux.go).

// identityFile is the file in data_dir holding the identity.
const identityFile = "identity.json"

// incarnationSep separates the dialable address from the incarnation.
const incarnationSep = "#"

// identity is what identityFile holds.
type identity struct {
	NodeID string `json:"node_id"`
	// Incarnation is empty for a node whose raft state predates
	// identities: its address stays untagged and it accepts untagged
	// connections, as before.
	Incarnation string    `json:"incarnation"`
	Created     time.Time `json:"created"`
}

// loadIdentity reads the identity in dir, or creates one: a fresh
// incarnation for a node without raft state, an empty (legacy) one for a
// node whose raft state was written before identities existed.
func loadIdentity(dir, nodeID string, hasState bool) (identity, bool, error) {
	path := filepath.Join(dir, identityFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		var id identity
		if err := json.Unmarshal(b, &id); err != nil {
			return identity{}, false, fmt.Errorf("%w: %s: %w", ErrConfig, path, err)
		}
		if id.NodeID != nodeID {
			return identity{}, false, fmt.Errorf("%w: data_dir %s belongs to node %q, not %q: point cluster.data_dir at this node's own directory",
				ErrConfig, dir, id.NodeID, nodeID)
		}
		return id, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return identity{}, false, fmt.Errorf("read %s: %w", path, err)
	}
	id := identity{NodeID: nodeID, Created: time.Now().UTC()}
	if !hasState {
		id.Incarnation = newIncarnation()
	}
	if err := writeIdentity(path, id); err != nil {
		return identity{}, false, err
	}
	return id, true, nil
}

// newIncarnation returns 64 random bits in hex.
func newIncarnation() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// writeIdentity writes id durably: a crash leaves the old file or the new.
func writeIdentity(path string, id identity) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return fmt.Errorf("encode identity: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), identityFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("write identity: %w", err)
	}
	defer func() { _ = os.Remove(f.Name()) }()
	if _, err = f.Write(append(b, '\n')); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("write identity %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err // wrapped by the caller
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// tagAddr returns the raft address of incarnation inc at hostport.
func tagAddr(hostport, inc string) string {
	if inc == "" {
		return hostport
	}
	return hostport + incarnationSep + inc
}

// splitAddr splits a raft address into the address to dial and the
// incarnation expected there ("" when untagged).
func splitAddr(addr string) (hostport, inc string) {
	hostport, inc, _ = strings.Cut(addr, incarnationSep)
	return hostport, inc
}

// DialAddr is a raft address without its incarnation: what to dial, and
// what to show an operator.
func DialAddr(addr string) string {
	hp, _ := splitAddr(addr)
	return hp
}
