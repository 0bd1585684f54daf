package memcached

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/kvnode/kvnode/drivers"
)

// Has returns the keys that exist, with one GetMulti.
func (s *Store) Has(ctx context.Context, keys []string) ([]string, error) {
	items, err := s.getMulti(ctx, "has", keys)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(items))
	for k := range items {
		out = append(out, k)
	}
	return out, nil
}

// MGet returns the existing keys with their values, with one GetMulti.
func (s *Store) MGet(ctx context.Context, keys []string) ([]drivers.Item, error) {
	items, err := s.getMulti(ctx, "mget", keys)
	if err != nil {
		return nil, err
	}
	out := make([]drivers.Item, 0, len(items))
	for k, it := range items {
		v := it.Value
		if v == nil {
			v = []byte{} // an empty stored value is still a value
		}
		out = append(out, drivers.Item{Key: k, Value: v})
	}
	return out, nil
}

func (s *Store) getMulti(ctx context.Context, method string, keys []string) (map[string]*memcache.Item, error) {
	keys = unique(keys)
	if len(keys) == 0 {
		return nil, nil
	}
	var items map[string]*memcache.Item
	err := s.call(ctx, method, len(keys), func(context.Context) error {
		if err := checkKeys(keys); err != nil {
			return err
		}
		m, err := s.client.GetMulti(keys)
		if err != nil {
			return err
		}
		items = m
		return nil
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}

// TTL always fails with ErrTTLNotSupported: memcached cannot report expiry
// times. The error is returned unwrapped so its text stays RoadRunner's.
func (s *Store) TTL(context.Context, []string) ([]drivers.Item, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("memcached ttl: %w", drivers.ErrClosed)
	}
	return nil, ErrTTLNotSupported
}

// Set writes the items one by one (memcached has no multi-item atomicity),
// after checking every key. An item whose deadline passed is deleted.
func (s *Store) Set(ctx context.Context, items []drivers.Item) error {
	if len(items) == 0 {
		return nil
	}
	return s.call(ctx, "set", len(items), func(ctx context.Context) error {
		if err := checkKeys(itemKeys(items)); err != nil {
			return err
		}
		for _, it := range items {
			if err := ctx.Err(); err != nil {
				return err
			}
			exp, expired := expiration(it.Deadline, time.Now().UnixNano())
			var err error
			if expired {
				err = s.delete(it.Key)
			} else {
				err = s.client.Set(&memcache.Item{Key: it.Key, Value: it.Value, Expiration: exp})
			}
			if err := classify(it.Key, err); err != nil {
				return err
			}
		}
		return nil
	})
}

// MExpire changes the expiry of the existing keys among items with TOUCH;
// missing keys are ignored and a past deadline deletes the key.
func (s *Store) MExpire(ctx context.Context, items []drivers.Item) error {
	if len(items) == 0 {
		return nil
	}
	return s.call(ctx, "mexpire", len(items), func(ctx context.Context) error {
		if err := checkKeys(itemKeys(items)); err != nil {
			return err
		}
		for _, it := range items {
			if err := ctx.Err(); err != nil {
				return err
			}
			exp, expired := expiration(it.Deadline, time.Now().UnixNano())
			var err error
			if expired {
				err = s.delete(it.Key)
			} else if err = s.client.Touch(it.Key, exp); errors.Is(err, memcache.ErrCacheMiss) {
				err = nil
			}
			if err := classify(it.Key, err); err != nil {
				return err
			}
		}
		return nil
	})
}

// Delete removes keys one by one; missing keys are fine.
func (s *Store) Delete(ctx context.Context, keys []string) error {
	keys = unique(keys)
	if len(keys) == 0 {
		return nil
	}
	return s.call(ctx, "delete", len(keys), func(ctx context.Context) error {
		if err := checkKeys(keys); err != nil {
			return err
		}
		for _, k := range keys {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := classify(k, s.delete(k)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) delete(key string) error {
	if err := s.client.Delete(key); err != nil && !errors.Is(err, memcache.ErrCacheMiss) {
		return err
	}
	return nil
}

// Clear sends flush_all to every server.
func (s *Store) Clear(ctx context.Context) error {
	return s.call(ctx, "clear", 0, func(context.Context) error {
		return s.client.FlushAll()
	})
}
