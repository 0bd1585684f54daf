package client

import (
	"context"

	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"
)

// RPC method names of the kv service.
const (
	MethodHas     = "kv.Has"
	MethodSet     = "kv.Set"
	MethodMGet    = "kv.MGet"
	MethodMExpire = "kv.MExpire"
	MethodTTL     = "kv.TTL"
	MethodDelete  = "kv.Delete"
	MethodClear   = "kv.Clear"
)

func keysRequest(storage string, keys []string) *kvv1.Request {
	items := make([]*kvv1.Item, len(keys))
	for i, k := range keys {
		items[i] = &kvv1.Item{Key: k}
	}
	return &kvv1.Request{Storage: storage, Items: items}
}

func itemsRequest(storage string, items []Item) *kvv1.Request {
	pb := make([]*kvv1.Item, len(items))
	for i, it := range items {
		pb[i] = &kvv1.Item{Key: it.Key, Value: it.Value, Timeout: it.Timeout}
	}
	return &kvv1.Request{Storage: storage, Items: pb}
}

// Has returns those of keys that exist in storage (in no particular order).
func (c *Client) Has(ctx context.Context, storage string, keys ...string) ([]string, error) {
	resp := new(kvv1.Response)
	if err := c.Call(ctx, MethodHas, keysRequest(storage, keys), resp); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(resp.GetItems()))
	for _, it := range resp.GetItems() {
		out = append(out, it.GetKey())
	}
	return out, nil
}

// MGet returns the values of those keys that exist. Missing and expired keys
// are absent from the map; a key stored with an empty value is present with
// an empty (non-nil) slice.
func (c *Client) MGet(ctx context.Context, storage string, keys ...string) (map[string][]byte, error) {
	resp := new(kvv1.Response)
	if err := c.Call(ctx, MethodMGet, keysRequest(storage, keys), resp); err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(resp.GetItems()))
	for _, it := range resp.GetItems() {
		v := it.GetValue()
		if v == nil {
			v = []byte{}
		}
		out[it.GetKey()] = v
	}
	return out, nil
}

// Set stores items, all or none (on kvnode; RoadRunner may apply a prefix
// of a batch that fails).
func (c *Client) Set(ctx context.Context, storage string, items ...Item) error {
	return c.Call(ctx, MethodSet, itemsRequest(storage, items), new(kvv1.Response))
}

// MExpire changes the expiry of existing keys to each item's Timeout,
// keeping their values; Value is ignored and missing keys are skipped.
func (c *Client) MExpire(ctx context.Context, storage string, items ...Item) error {
	return c.Call(ctx, MethodMExpire, itemsRequest(storage, items), new(kvv1.Response))
}

// TTL returns the timeout of those keys that exist, as the string they were
// stored with; "" means no expiry. (RoadRunner's boltdb driver omits keys
// without expiry instead.)
func (c *Client) TTL(ctx context.Context, storage string, keys ...string) (map[string]string, error) {
	resp := new(kvv1.Response)
	if err := c.Call(ctx, MethodTTL, keysRequest(storage, keys), resp); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(resp.GetItems()))
	for _, it := range resp.GetItems() {
		out[it.GetKey()] = it.GetTimeout()
	}
	return out, nil
}

// Delete removes keys; missing keys are fine.
func (c *Client) Delete(ctx context.Context, storage string, keys ...string) error {
	return c.Call(ctx, MethodDelete, keysRequest(storage, keys), new(kvv1.Response))
}

// Clear removes every key of storage.
func (c *Client) Clear(ctx context.Context, storage string) error {
	return c.Call(ctx, MethodClear, &kvv1.Request{Storage: storage}, new(kvv1.Response))
}
