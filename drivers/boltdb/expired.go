package boltdb

import (
	"encoding/binary"
	"fmt"

	"github.com/kvnode/kvnode/drivers"
)

// Expired returns up to limit keys whose deadline is not after now, earliest
// first, with Deadline set, ready for an OpExpire. It walks the expiry index
// from its start and stops at the first deadline after now.
func (e *Engine) Expired(now int64, limit int) ([]drivers.Item, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []drivers.Item
	err := e.view(true, func(b buckets) error {
		c := b.exp.Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if len(k) < 8 {
				return fmt.Errorf("%w: expiry index key of %d bytes", ErrCorrupt, len(k))
			}
			deadline := int64(binary.BigEndian.Uint64(k))
			if deadline > now {
				break
			}
			out = append(out, drivers.Item{Key: string(k[8:]), Deadline: deadline})
		}
		return nil
	})
	if err != nil {
		return nil, e.readErr("expired", err)
	}
	return out, nil
}
