package boltdb

import (
	"bytes"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kvnode/kvnode/drivers"
)

// Apply applies ops in order in one read-write transaction (one fsync) and
// stores index with them when it is above 0. errs[i] reports an op refused by
// validation, which changed nothing; err reports a failure of the whole
// batch, of which nothing was committed.
func (e *Engine) Apply(index uint64, ops []drivers.Op) ([]error, error) {
	errs := make([]error, len(ops))
	valid := 0
	for i := range ops {
		if errs[i] = validate(&ops[i]); errs[i] == nil {
			valid++
		}
	}
	if valid == 0 && index == 0 {
		return errs, nil
	}

	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.cur == nil {
		return nil, drivers.ErrClosed
	}

	var d delta
	err := e.cur.db.Update(func(tx *bolt.Tx) error {
		w := writer{buckets: e.buckets(tx), tx: tx, bucket: e.bucket, d: &d}
		if err := w.check(); err != nil {
			return err
		}
		for i := range ops {
			if errs[i] != nil {
				continue
			}
			if err := w.apply(&ops[i]); err != nil {
				return fmt.Errorf("op %d (%s): %w", i, ops[i].Kind, err)
			}
		}
		if index > 0 {
			if err := w.meta.Put(appliedIndexKey, encodeUint64(index)); err != nil {
				return fmt.Errorf("store applied index: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("boltdb: %s: apply: %w", e.cfg.File, err)
	}
	if index > 0 {
		e.applied.Store(index)
	}
	if d.reset {
		e.keys.Store(d.keys)
		e.bytes.Store(d.bytes)
	} else {
		e.keys.Add(d.keys)
		e.bytes.Add(d.bytes)
	}
	return errs, nil
}

// validate refuses an op that could fail half-way for any reason other than
// I/O, before the transaction touches anything.
func validate(op *drivers.Op) error {
	switch op.Kind {
	case drivers.OpSet, drivers.OpMExpire:
		for i := range op.Items {
			it := &op.Items[i]
			if err := validateKey(it.Key, keepsDeadline(it, op.Now)); err != nil {
				return err
			}
			if op.Kind == drivers.OpSet && len(it.Value) > bolt.MaxValueSize-16 {
				return fmt.Errorf("%w: value of key %q is %d bytes, more than bbolt can hold", ErrInvalidItem, it.Key, len(it.Value))
			}
			if it.Deadline < 0 && !drivers.Expired(it.Deadline, op.Now) {
				return fmt.Errorf("%w: key %q: negative deadline %d", ErrInvalidItem, it.Key, it.Deadline)
			}
			if len(it.Timeout) > bolt.MaxValueSize-8 {
				return fmt.Errorf("%w: timeout of key %q too long", ErrInvalidItem, it.Key)
			}
		}
	case drivers.OpExpire:
		for i := range op.Items {
			if drivers.BlankKey(op.Items[i].Key) {
				return drivers.ErrEmptyKey
			}
		}
	case drivers.OpDelete:
		// No length limit: a key bbolt cannot hold is simply not there.
		for _, k := range op.Keys {
			if drivers.BlankKey(k) {
				return drivers.ErrEmptyKey
			}
		}
	case drivers.OpClear:
	default:
		return fmt.Errorf("%w: kind %d", drivers.ErrUnknownOp, op.Kind)
	}
	return nil
}

// Key limits. bbolt holds keys of up to MaxKeySize bytes, and RoadRunner's
// keys may be that long. A key stored with a deadline is also written to the
// expiry index behind 8 bytes of deadline, so it must be 8 bytes shorter.
const (
	maxKeySize    = bolt.MaxKeySize
	maxTTLKeySize = bolt.MaxKeySize - 8
)

// keepsDeadline reports whether a Set or MExpire of it stores a deadline,
// and with it an expiry index entry; a deadline already passed removes the
// key instead.
func keepsDeadline(it *drivers.Item, now int64) bool {
	return it.Deadline != 0 && !drivers.Expired(it.Deadline, now)
}

func validateKey(k string, withDeadline bool) error {
	if drivers.BlankKey(k) {
		return drivers.ErrEmptyKey
	}
	if withDeadline && len(k) > maxTTLKeySize {
		return fmt.Errorf("%w: key of %d bytes with a timeout: at most %d bytes (%d without a timeout)",
			ErrInvalidItem, len(k), maxTTLKeySize, maxKeySize)
	}
	if len(k) > maxKeySize {
		return fmt.Errorf("%w: key of %d bytes, more than bbolt's limit of %d", ErrInvalidItem, len(k), maxKeySize)
	}
	return nil
}

// delta is the change of the counters made by one batch, published after
// commit. reset means the batch cleared everything first.
type delta struct {
	reset       bool
	keys, bytes int64
}

// writer applies validated ops inside one read-write transaction.
type writer struct {
	buckets
	tx     *bolt.Tx
	bucket []byte
	d      *delta
}

func (w *writer) apply(op *drivers.Op) error {
	switch op.Kind {
	case drivers.OpSet:
		for i := range op.Items {
			if err := w.set(&op.Items[i], op.Now); err != nil {
				return err
			}
		}
	case drivers.OpMExpire:
		for i := range op.Items {
			if err := w.mexpire(&op.Items[i], op.Now); err != nil {
				return err
			}
		}
	case drivers.OpDelete:
		for _, k := range op.Keys {
			if err := w.remove([]byte(k)); err != nil {
				return err
			}
		}
	case drivers.OpExpire:
		for i := range op.Items {
			if err := w.expire(&op.Items[i]); err != nil {
				return err
			}
		}
	case drivers.OpClear:
		return w.clear()
	default:
		return drivers.ErrUnknownOp // unreachable: validate refused it
	}
	return nil
}

// set replaces value and expiry; a deadline not after now removes the key.
func (w *writer) set(it *drivers.Item, now int64) error {
	key := []byte(it.Key)
	if drivers.Expired(it.Deadline, now) {
		return w.remove(key)
	}
	if err := w.dropTTL(key); err != nil {
		return err
	}
	if old := w.vals.Get(key); old != nil {
		w.d.keys--
		w.d.bytes -= int64(len(key) + valueLen(old))
	}
	if err := w.vals.Put(key, encodeValue(it.Value)); err != nil {
		return err
	}
	w.d.keys++
	w.d.bytes += int64(len(key) + len(it.Value))
	return w.putTTL(key, it.Deadline, it.Timeout)
}

// mexpire changes the expiry of a live key, keeping its value; missing and
// expired keys are left alone.
func (w *writer) mexpire(it *drivers.Item, now int64) error {
	key := []byte(it.Key)
	if _, _, _, ok, err := w.live(key, now); err != nil || !ok {
		return err
	}
	if drivers.Expired(it.Deadline, now) {
		return w.remove(key)
	}
	if err := w.dropTTL(key); err != nil {
		return err
	}
	return w.putTTL(key, it.Deadline, it.Timeout)
}

// expire removes the key only if its stored deadline is still the one the
// sweeper saw, so a key set again since then survives. A stale index entry
// for that deadline is dropped either way, so the sweeper cannot loop on it.
func (w *writer) expire(it *drivers.Item) error {
	key := []byte(it.Key)
	if it.Deadline == 0 {
		return nil // keys without expiry are never swept
	}
	if t := w.ttl.Get(key); t != nil {
		deadline, _, err := decodeTTL(t)
		if err != nil {
			return fmt.Errorf("key %q: %w", key, err)
		}
		if deadline == it.Deadline {
			return w.remove(key)
		}
	}
	return w.exp.Delete(expiryKey(it.Deadline, key))
}

// remove deletes the key's value and expiry; a missing key is fine.
func (w *writer) remove(key []byte) error {
	if err := w.dropTTL(key); err != nil {
		return err
	}
	old := w.vals.Get(key)
	if old == nil {
		return nil
	}
	w.d.keys--
	w.d.bytes -= int64(len(key) + valueLen(old))
	return w.vals.Delete(key)
}

func (w *writer) dropTTL(key []byte) error {
	t := w.ttl.Get(key)
	if t == nil {
		return nil
	}
	deadline, _, err := decodeTTL(t)
	if err != nil {
		// A damaged record is replaced rather than trusted; its index entry,
		// if any, is unreachable by key and is dropped by OpExpire.
		return w.ttl.Delete(key)
	}
	if err := w.exp.Delete(expiryKey(deadline, key)); err != nil {
		return err
	}
	return w.ttl.Delete(key)
}

func (w *writer) putTTL(key []byte, deadline int64, timeout string) error {
	if deadline == 0 {
		return nil
	}
	if err := w.ttl.Put(key, encodeTTL(deadline, timeout)); err != nil {
		return err
	}
	return w.exp.Put(expiryKey(deadline, key), []byte{})
}

// clear empties the values and kvnode's expiry buckets; the meta bucket (and
// with it the applied index) is kept.
func (w *writer) clear() error {
	for _, name := range [][]byte{w.bucket, []byte(ttlBucket), []byte(expiryBucket)} {
		if err := w.tx.DeleteBucket(name); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return fmt.Errorf("clear bucket %q: %w", name, err)
		}
		if _, err := w.tx.CreateBucket(name); err != nil {
			return fmt.Errorf("clear bucket %q: %w", name, err)
		}
	}
	w.vals = w.tx.Bucket(w.bucket)
	w.ttl = w.tx.Bucket([]byte(ttlBucket))
	w.exp = w.tx.Bucket([]byte(expiryBucket))
	*w.d = delta{reset: true}
	return nil
}

// dropOrphans removes expiry records that cannot belong to a live value: a
// ttl record whose key has no value (RoadRunner deleted the key while it had
// the file; the record would otherwise be inherited by a later Set of the
// same key made by RoadRunner), and index entries that do not
// match their key's ttl record. kvnode itself never leaves either behind, so
// on a file only kvnode wrote this finds nothing.
func (b buckets) dropOrphans() (int, error) {
	var ttls, idx [][]byte
	err := b.ttl.ForEach(func(k, _ []byte) error {
		if b.vals.Get(k) == nil {
			ttls = append(ttls, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	err = b.exp.ForEach(func(k, _ []byte) error {
		if len(k) < 8 {
			idx = append(idx, bytes.Clone(k))
			return nil
		}
		t := b.ttl.Get(k[8:])
		if len(t) < 8 || !bytes.Equal(t[:8], k[:8]) || b.vals.Get(k[8:]) == nil {
			idx = append(idx, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range ttls {
		if err := b.ttl.Delete(k); err != nil {
			return 0, err
		}
	}
	for _, k := range idx {
		if err := b.exp.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(ttls) + len(idx), nil
}
