package fsm

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc64"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kvnode/kvnode/drivers"
)

// snapshot holds every engine's point-in-time view until raft has
// persisted (or dropped) it.
type snapshot struct {
	index uint64
	clock int64
	parts []part
	log   *slog.Logger
	obs   Observer
	once  sync.Once
}

type part struct {
	name string
	snap drivers.Snapshot
}

var _ raft.FSMSnapshot = (*snapshot)(nil)

// Snapshot captures every engine's point-in-time view (cheap: a read
// transaction or a copy-on-write reference) together with the FSM's applied
// index; writing them out happens later in Persist, concurrently with
// Apply.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	s := &snapshot{index: f.applied.Load(), clock: f.clock.Load(), log: f.log, obs: f.observer()}
	for _, name := range f.names {
		es, err := f.engines[name].Snapshot()
		if err != nil {
			s.Release()
			return nil, fmt.Errorf("fsm: snapshot %q: %w", name, err)
		}
		s.parts = append(s.parts, part{name: name, snap: es})
	}
	return s, nil
}

// Persist writes the snapshot stream (see format.go) to sink, closing it,
// or cancelling it on any error.
func (s *snapshot) Persist(sink raft.SnapshotSink) (err error) {
	if s.obs != nil {
		defer func(start time.Time) { s.obs.ObserveSnapshot(time.Since(start), err) }(time.Now())
	}
	if err := s.write(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("fsm: persist snapshot at %d: %w", s.index, err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("fsm: persist snapshot at %d: close: %w", s.index, err)
	}
	return nil
}

func (s *snapshot) write(w io.Writer) error {
	crc := crc64.New(crcTable)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), chunkSize+binary.MaxVarintLen64)
	if _, err := bw.Write(appendHeader(nil, header{index: s.index, clock: s.clock, count: uint64(len(s.parts))})); err != nil {
		return err // wrapped by Persist
	}
	for _, p := range s.parts {
		name := binary.AppendUvarint(nil, uint64(len(p.name)))
		if _, err := bw.Write(append(name, p.name...)); err != nil {
			return err
		}
		cw := newChunkWriter(bw)
		n, err := p.snap.WriteTo(cw)
		if err != nil {
			return fmt.Errorf("storage %q: %w", p.name, err)
		}
		if err := cw.Close(); err != nil {
			return err
		}
		s.log.Debug("snapshot section written", "storage", p.name, "bytes", n, "index", s.index)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(binary.BigEndian.AppendUint64(nil, crc.Sum64()))
	return err
}

// Release releases every engine view, once however often it is called.
func (s *snapshot) Release() {
	s.once.Do(func() {
		for _, p := range s.parts {
			p.snap.Release()
		}
	})
}
