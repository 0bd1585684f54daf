package harness

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kvnode/kvnode/client"
	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/boltdb"
	"github.com/kvnode/kvnode/drivers/memory"
	"github.com/kvnode/kvnode/fsm"
	"github.com/kvnode/kvnode/rpc"
)

// StateDigest is one node's replicated state: the raft index of its
// snapshot and a hash of each storage's content (every key, value and
// deadline; engines.Hash), in hex.
type StateDigest struct {
	Index  uint64
	Hashes map[string]string
}

// maxStateBytes bounds the snapshot FetchState downloads; the harness's
// state is a few MB at most.
const maxStateBytes = 512 << 20

// FetchState downloads a snapshot of node's own state (the admin
// service's SnapshotOpen with Stale, the call behind `kvnode snapshot
// save --stale`), restores it with kvnode's own FSM into fresh engines of
// the storages' drivers in a directory under tmp, and hashes each storage.
// Comparing digests taken at the same index compares the whole content of
// every replicated storage, which key and byte counts cannot.
func FetchState(ctx context.Context, addr, token, tmp string) (StateDigest, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, addr, client.WithPoolSize(1))
	if err != nil {
		return StateDigest{}, err // names the address
	}
	defer func() { _ = cl.Close() }()
	var open rpc.SnapshotOpenReply
	if err := cl.Call(ctx, rpc.MethodSnapshotOpen, rpc.SnapshotOpenArgs{AdminAuth: rpc.AdminAuth{Token: token}, Stale: true}, &open); err != nil {
		return StateDigest{}, fmt.Errorf("snapshot of %s: %w", addr, err)
	}
	if open.Size > maxStateBytes {
		_ = cl.Call(ctx, rpc.MethodSnapshotClose, rpc.SnapshotCloseArgs{AdminAuth: rpc.AdminAuth{Token: token}, ID: open.ID}, nil)
		return StateDigest{}, fmt.Errorf("snapshot of %s: %d bytes, more than the harness reads", addr, open.Size)
	}
	var buf bytes.Buffer
	for i := 0; i <= int(open.Size/rpc.MaxChunk)+1; i++ {
		var r rpc.SnapshotReadReply
		if err := cl.Call(ctx, rpc.MethodSnapshotRead, rpc.SnapshotReadArgs{AdminAuth: rpc.AdminAuth{Token: token}, ID: open.ID, Offset: int64(buf.Len())}, &r); err != nil {
			return StateDigest{}, fmt.Errorf("snapshot of %s at %d: %w", addr, buf.Len(), err)
		}
		buf.Write(r.Data)
		if r.EOF {
			break
		}
	}
	if int64(buf.Len()) != open.Size {
		return StateDigest{}, fmt.Errorf("snapshot of %s: %d bytes of %d", addr, buf.Len(), open.Size)
	}
	hashes, err := hashSnapshot(buf.Bytes(), tmp)
	if err != nil {
		return StateDigest{}, fmt.Errorf("snapshot of %s: %w", addr, err)
	}
	return StateDigest{Index: open.Index, Hashes: hashes}, nil
}

// hashSnapshot restores a snapshot stream into one engine per storage of
// the cluster's configuration (memory_* into the memory engine, boltdb_*
// into boltdb files under tmp) and hashes each.
func hashSnapshot(stream []byte, tmp string) (map[string]string, error) {
	dir, err := os.MkdirTemp(tmp, "state-")
	if err != nil {
		return nil, fmt.Errorf("restore dir: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	engines := map[string]drivers.Engine{}
	defer func() {
		for _, e := range engines {
			_ = e.Close()
		}
	}()
	for _, st := range append(slices.Clone(Storages), BoundedStorage) {
		if strings.HasPrefix(st, "boltdb") {
			e, err := boltdb.Open(boltdb.Config{File: filepath.Join(dir, st+".db")}, nil)
			if err != nil {
				return nil, fmt.Errorf("engine %s: %w", st, err)
			}
			engines[st] = e
		} else {
			engines[st] = memory.New()
		}
	}
	f := fsm.New(engines, nil, fsm.WithSpoolDir(dir))
	if err := f.Restore(io.NopCloser(bytes.NewReader(stream))); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	hs, err := f.Hash()
	if err != nil {
		return nil, fmt.Errorf("hash: %w", err)
	}
	out := make(map[string]string, len(hs))
	for name, h := range hs {
		out[name] = hex.EncodeToString(h)
	}
	return out, nil
}

// errStatesDiffer is a divergence: two nodes at the same index hold
// different content.
var errStatesDiffer = errors.New("different content at the same index")

// CompareStates asks every node for its state digest (fetch) until all
// answer at the same index, at most attempts times, wait apart, and then
// compares every storage's hash. A node that does not answer is retried,
// never taken for agreement. It returns nil when the states are equal, or
// what differs.
func CompareStates(ctx context.Context, nodes []string, fetch func(context.Context, string) (StateDigest, error), attempts int, wait time.Duration) error {
	var last error
	for i := range attempts {
		if i > 0 && !sleepCtx(ctx, wait) {
			return ctx.Err()
		}
		ds := map[string]StateDigest{}
		last = nil
		for _, n := range nodes {
			d, err := fetch(ctx, n)
			if err != nil {
				last = fmt.Errorf("%s did not answer: %w", n, err)
				break
			}
			ds[n] = d
		}
		if last != nil {
			continue
		}
		first := ds[nodes[0]]
		for _, n := range nodes[1:] {
			if ds[n].Index != first.Index {
				last = fmt.Errorf("index %d on %s, %d on %s", first.Index, nodes[0], ds[n].Index, n)
				break
			}
		}
		if last != nil {
			continue
		}
		for _, n := range nodes[1:] {
			for _, st := range slices.Sorted(maps.Keys(first.Hashes)) {
				if h := ds[n].Hashes[st]; h != first.Hashes[st] {
					return fmt.Errorf("%w: %s at index %d: %s on %s, %s on %s", errStatesDiffer, st, first.Index, short(first.Hashes[st]), nodes[0], short(h), n)
				}
			}
			if len(ds[n].Hashes) != len(first.Hashes) {
				return fmt.Errorf("%w: storages %v on %s, %v on %s", errStatesDiffer, slices.Sorted(maps.Keys(first.Hashes)), nodes[0], slices.Sorted(maps.Keys(ds[n].Hashes)), n)
			}
		}
		return nil
	}
	return fmt.Errorf("no common index after %d attempts: %w", attempts, last)
}

func short(h string) string { return h[:min(len(h), 12)] }
