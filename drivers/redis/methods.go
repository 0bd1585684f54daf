package redis

import (
	"context"
	"errors"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvnode/kvnode/drivers"
)

// Has returns the keys that exist, asking for all of them in one pipeline.
func (s *Store) Has(ctx context.Context, keys []string) ([]string, error) {
	keys = unique(keys)
	if len(keys) == 0 {
		return nil, nil
	}
	var found []string
	err := s.call(ctx, "has", len(keys), func(ctx context.Context) error {
		cmds := make([]*goredis.IntCmd, len(keys))
		if _, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.Exists(ctx, k)
			}
			return nil
		}); err != nil {
			return err
		}
		out := make([]string, 0, len(keys))
		for i, c := range cmds {
			if c.Val() == 1 {
				out = append(out, keys[i])
			}
		}
		found = out
		return nil
	})
	if err != nil {
		return nil, err
	}
	return found, nil
}

// MGet returns the existing keys with their values: one MGET on a single
// node, a pipeline of GETs (one round trip per node) on a cluster.
func (s *Store) MGet(ctx context.Context, keys []string) ([]drivers.Item, error) {
	keys = unique(keys)
	if len(keys) == 0 {
		return nil, nil
	}
	var items []drivers.Item
	err := s.call(ctx, "mget", len(keys), func(ctx context.Context) error {
		var (
			out []drivers.Item
			err error
		)
		if s.cluster {
			out, err = s.pipelinedGet(ctx, keys)
		} else {
			out, err = s.mget(ctx, keys)
		}
		items = out
		return err
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}

func (s *Store) mget(ctx context.Context, keys []string) ([]drivers.Item, error) {
	vals, err := s.client.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]drivers.Item, 0, len(keys))
	for i, v := range vals {
		// MGET answers nil for a missing key, and for a key holding a
		// non-string type; both are "no value" for a KV client.
		if str, ok := v.(string); ok {
			out = append(out, drivers.Item{Key: keys[i], Value: []byte(str)})
		}
	}
	return out, nil
}

func (s *Store) pipelinedGet(ctx context.Context, keys []string) ([]drivers.Item, error) {
	cmds := make([]*goredis.StringCmd, len(keys))
	_, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, err
	}
	out := make([]drivers.Item, 0, len(keys))
	for i, c := range cmds {
		v, err := c.Bytes()
		switch {
		case errors.Is(err, goredis.Nil):
			continue
		case err != nil:
			return nil, err
		}
		out = append(out, drivers.Item{Key: keys[i], Value: v})
	}
	return out, nil
}

// TTL returns the existing keys with their expiry as now + PTTL, rounded
// to whole seconds in UTC ("" for keys without expiry): redis does not keep
// the timeout string the client sent.
func (s *Store) TTL(ctx context.Context, keys []string) ([]drivers.Item, error) {
	keys = unique(keys)
	if len(keys) == 0 {
		return nil, nil
	}
	var items []drivers.Item
	err := s.call(ctx, "ttl", len(keys), func(ctx context.Context) error {
		cmds := make([]*goredis.DurationCmd, len(keys))
		if _, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.PTTL(ctx, k)
			}
			return nil
		}); err != nil {
			return err
		}
		now := time.Now()
		out := make([]drivers.Item, 0, len(keys))
		for i, c := range cmds {
			switch d := c.Val(); d {
			case -2: // no such key
			case -1: // no expiry
				out = append(out, drivers.Item{Key: keys[i]})
			default:
				t := now.Add(d).Round(time.Second).UTC()
				out = append(out, drivers.Item{Key: keys[i], Timeout: t.Format(time.RFC3339), Deadline: t.UnixNano()})
			}
		}
		items = out
		return nil
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}

// Set stores all items in one MULTI/EXEC transaction.
func (s *Store) Set(ctx context.Context, items []drivers.Item) error {
	if len(items) == 0 {
		return nil
	}
	return s.call(ctx, "set", len(items), func(ctx context.Context) error {
		now := time.Now().UnixNano()
		_, err := s.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			for _, it := range items {
				switch {
				case it.Deadline == 0:
					p.Set(ctx, it.Key, it.Value, 0)
				case drivers.Expired(it.Deadline, now):
					p.Del(ctx, it.Key)
				default:
					p.SetArgs(ctx, it.Key, it.Value, goredis.SetArgs{ExpireAt: time.Unix(0, it.Deadline)})
				}
			}
			return nil
		})
		return err
	})
}

// MExpire sets the expiry of the existing keys among items in one
// transaction: PEXPIREAT (which deletes a key whose deadline passed), or
// PERSIST for an item without deadline. Redis itself ignores missing keys.
func (s *Store) MExpire(ctx context.Context, items []drivers.Item) error {
	if len(items) == 0 {
		return nil
	}
	return s.call(ctx, "mexpire", len(items), func(ctx context.Context) error {
		_, err := s.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			for _, it := range items {
				if it.Deadline == 0 {
					p.Persist(ctx, it.Key)
				} else {
					p.PExpireAt(ctx, it.Key, time.Unix(0, it.Deadline))
				}
			}
			return nil
		})
		return err
	})
}

// Delete removes keys: one DEL on a single node, a pipeline of per-key
// DELs on a cluster, where the keys may live on different nodes.
func (s *Store) Delete(ctx context.Context, keys []string) error {
	keys = unique(keys)
	if len(keys) == 0 {
		return nil
	}
	return s.call(ctx, "delete", len(keys), func(ctx context.Context) error {
		if !s.cluster {
			return s.client.Del(ctx, keys...).Err()
		}
		_, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, k := range keys {
				p.Del(ctx, k)
			}
			return nil
		})
		return err
	})
}

// Clear removes every key of the database with FLUSHDB, on every master in
// cluster mode.
func (s *Store) Clear(ctx context.Context) error {
	return s.call(ctx, "clear", 0, func(ctx context.Context) error {
		if c, ok := s.client.(*goredis.ClusterClient); ok {
			return c.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error {
				return n.FlushDB(ctx).Err()
			})
		}
		return s.client.FlushDB(ctx).Err()
	})
}
