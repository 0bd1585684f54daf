package backupfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kvnode/kvnode/fsm"
)

const (
	backupMagic   = "KVNBKUP1"
	maxBackupMeta = 64 << 10
)

// ErrNotIntact marks a file that is not an intact backup.
var ErrNotIntact = errors.New("not an intact kvnode backup")

// Meta describes the snapshot a backup holds.
type Meta struct {
	NodeID    string    `json:"node_id"`
	RaftIndex uint64    `json:"raft_index"`
	RaftTerm  uint64    `json:"raft_term"`
	Size      int64     `json:"size"`
	Created   time.Time `json:"created"`
	Version   string    `json:"kvnode_version"`
}

// Writer writes a backup to a temporary file next to path and renames it
// into place on Commit, so an interrupted save never leaves a truncated
// file under the name given.
type Writer struct {
	path string
	f    *os.File
	sum  hash.Hash
	w    io.Writer
}

// Create starts the backup at path: the header and meta, then the snapshot
// stream written to the Writer (meta.Size bytes).
func Create(path string, meta Meta) (*Writer, error) {
	js, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("encode backup metadata: %w", err)
	}
	// A fixed name such as path+".tmp" would follow a symlink planted
	// there and overwrite whatever it points to; CreateTemp makes a new
	// file under a random name (O_EXCL, 0600) in the same directory, so
	// the rename stays within one file system.
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, err //nolint:wrapcheck // names the path
	}
	bw := &Writer{path: path, f: f, sum: sha256.New()}
	bw.w = io.MultiWriter(f, bw.sum)
	head := binary.BigEndian.AppendUint32([]byte(backupMagic), uint32(len(js)))
	if _, err := bw.w.Write(append(head, js...)); err != nil {
		bw.Abort()
		return nil, fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return bw, nil
}

// Write appends stream bytes.
func (bw *Writer) Write(p []byte) (int, error) { return bw.w.Write(p) }

// Commit writes the digest, syncs and renames the file into place.
func (bw *Writer) Commit() error {
	if _, err := bw.f.Write(bw.sum.Sum(nil)); err != nil {
		bw.Abort()
		return fmt.Errorf("write %s: %w", bw.f.Name(), err)
	}
	if err := bw.f.Sync(); err != nil {
		bw.Abort()
		return fmt.Errorf("sync %s: %w", bw.f.Name(), err)
	}
	if err := bw.f.Close(); err != nil {
		_ = os.Remove(bw.f.Name())
		return fmt.Errorf("close %s: %w", bw.f.Name(), err)
	}
	if err := os.Rename(bw.f.Name(), bw.path); err != nil {
		_ = os.Remove(bw.f.Name())
		return err //nolint:wrapcheck // names both paths
	}
	if d, err := os.Open(filepath.Dir(bw.path)); err == nil {
		_ = d.Sync() // make the rename itself durable
		_ = d.Close()
	}
	return nil
}

// Abort removes the partial file.
func (bw *Writer) Abort() {
	_ = bw.f.Close()
	_ = os.Remove(bw.f.Name())
}

// File is an opened, verified backup.
type File struct {
	f *os.File
	// Meta is the header's description of the snapshot.
	Meta Meta
	// off is where the stream starts in the file.
	off int64
	// Info is what the stream holds; StreamSum its SHA-256, which a
	// restore sends so the node can check what it received.
	Info      fsm.SnapshotInfo
	StreamSum []byte
}

// Stream reads the snapshot stream out of the file.
func (b *File) Stream() io.Reader { return io.NewSectionReader(b.f, b.off, b.Meta.Size) }

// Close closes the file.
func (b *File) Close() error { return b.f.Close() }

// Open opens path and verifies it whole before anything is sent: framing,
// the file's SHA-256 and the stream's own checksum. onRead, when set, is
// told how many bytes were read (progress).
func Open(path string, onRead func(int)) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err //nolint:wrapcheck // names the path
	}
	b, err := verifyBackup(f, onRead)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

func verifyBackup(f *os.File, onRead func(int)) (*File, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var head [len(backupMagic) + 4]byte
	if _, err := io.ReadFull(f, head[:]); err != nil || string(head[:len(backupMagic)]) != backupMagic {
		return nil, fmt.Errorf("%w: no backup header", ErrNotIntact)
	}
	n := binary.BigEndian.Uint32(head[len(backupMagic):])
	if n > maxBackupMeta {
		return nil, fmt.Errorf("%w: metadata of %d bytes", ErrNotIntact, n)
	}
	js := make([]byte, n)
	if _, err := io.ReadFull(f, js); err != nil {
		return nil, fmt.Errorf("%w: metadata: %w", ErrNotIntact, err)
	}
	b := &File{f: f, off: int64(len(head)) + int64(n)}
	if err := json.Unmarshal(js, &b.Meta); err != nil {
		return nil, fmt.Errorf("%w: metadata: %w", ErrNotIntact, err)
	}
	if want := b.off + b.Meta.Size + sha256.Size; b.Meta.Size < 0 || st.Size() != want {
		return nil, fmt.Errorf("%w: %d bytes, the metadata implies %d", ErrNotIntact, st.Size(), want)
	}

	fileSum, streamSum := sha256.New(), sha256.New()
	fileSum.Write(head[:])
	fileSum.Write(js)
	stream := io.TeeReader(&countReader{r: io.NewSectionReader(f, b.off, b.Meta.Size), onRead: onRead},
		io.MultiWriter(fileSum, streamSum))
	if b.Info, err = fsm.VerifySnapshot(stream); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotIntact, err)
	}
	trailer := make([]byte, sha256.Size)
	if _, err := f.ReadAt(trailer, b.off+b.Meta.Size); err != nil {
		return nil, fmt.Errorf("%w: digest: %w", ErrNotIntact, err)
	}
	if !bytes.Equal(trailer, fileSum.Sum(nil)) {
		return nil, fmt.Errorf("%w: SHA-256 mismatch", ErrNotIntact)
	}
	b.StreamSum = streamSum.Sum(nil)
	return b, nil
}

// countReader reports the bytes read through it.
type countReader struct {
	r      io.Reader
	onRead func(int)
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.onRead != nil && n > 0 {
		c.onRead(n)
	}
	return n, err //nolint:wrapcheck // io.EOF must stay unwrapped
}
