package rpc

import (
	"bytes"
	"encoding/base64"
	"slices"
	"unicode/utf8"

	"github.com/goccy/go-json"
	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"
	"github.com/roadrunner-server/goridge/v3/pkg/frame"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/kvnode/kvnode/drivers"
)

// maxPooledItems is the largest item array a pooled request keeps for the
// next one; a request that needed more gives its array back to the GC, so
// one huge request does not pin its memory in the pool.
const maxPooledItems = 1024

// request is one decoded call. Requests are pooled: everything in one is
// owned by it, never by the frame buffer it was decoded from.
type request struct {
	seq   uint32
	codec byte // the codec bit the reply uses
	m     method
	// unknown is the method name as replies repeat it (echoName), kept
	// only when m is mUnknown.
	unknown string
	// err, when set, is the reply: the request failed before any Store
	// could be called (unknown method, codec, undecodable body).
	err error

	storage string   // as sent
	st      *storage // nil when storage is not configured
	// items are the items up to the first one with a blank key; blank
	// records that there was one. Decoding keeps nothing past it (the call
	// fails anyway), so a frame of empty items costs no memory.
	items []drivers.Item
	blank bool

	// admin is set for a kvnode.* call, whose body is kept undecoded
	// until the admin service serves it (admin.go).
	admin adminMethod
	body  []byte
}

// name is the method name the reply repeats.
func (r *request) name() string {
	if r.m == mUnknown {
		return r.unknown
	}
	return methodName[r.m]
}

func (r *request) reset() {
	items := r.items
	if cap(items) > maxPooledItems {
		items = nil
	} else {
		clear(items) // drop references to keys and values for the GC
		items = items[:0]
	}
	*r = request{items: items}
}

// keepsItems reports whether the method uses the items of its request:
// Clear ignores them, as RoadRunner does.
func (r *request) keepsItems() bool { return r.m != mClear }

// decodeBody decodes body (a kv.v1.Request in the codec of r.codec) into r.
// Only Set keeps item values: the other methods ignore them, so copying them
// out of the frame buffer would be wasted work.
//
// Memory stays in proportion to the frame: a request with more than
// maxItems items is refused after counting them, before any is built, and
// items after a blank key are not kept.
func decodeBody(body []byte, r *request, storages map[string]*storage, maxItems int) error {
	if len(body) == 0 {
		return nil // goridge's codec leaves the request at its zero value
	}
	switch r.codec {
	case frame.CodecProto:
		if len(body) > presizeAbove {
			// Growing by append would allocate about five times the final
			// array (large slices grow by 1.25x); count first, allocate once.
			n := protoItemCount(body, maxItems)
			if n > maxItems {
				return errTooManyItems(r.m, maxItems)
			}
			if r.keepsItems() {
				r.items = slices.Grow(r.items, n)
			}
		}
		switch decodeProtoFast(body, r, storages, maxItems) {
		case fastOK:
			return nil
		case fastTooMany:
			return errTooManyItems(r.m, maxItems)
		}
		r.storage, r.st, r.items, r.blank = "", nil, r.items[:0], false
		if protoItemCount(body, maxItems) > maxItems {
			return errTooManyItems(r.m, maxItems)
		}
		var pb kvv1.Request
		if err := proto.Unmarshal(body, &pb); err != nil {
			return errProto(err)
		}
		fromPB(&pb, r, storages)
		return nil
	case frame.CodecJSON:
		if jsonTooManyItems(body, maxItems) {
			return errTooManyItems(r.m, maxItems)
		}
		// goridge's codec decodes JSON with goccy/go-json; so does kvnode,
		// so that the same bodies are accepted and refused with the same
		// texts.
		var pb kvv1.Request
		if err := json.Unmarshal(body, &pb); err != nil {
			return errJSON(err)
		}
		fromPB(&pb, r, storages)
		return nil
	default:
		return errCodec(r.codec)
	}
}

func fromPB(pb *kvv1.Request, r *request, storages map[string]*storage) {
	r.storage = pb.GetStorage()
	r.st = storages[r.storage]
	if !r.keepsItems() {
		return
	}
	for _, it := range pb.GetItems() { // a JSON null item decodes as nil: Get* handle it
		if drivers.BlankKey(it.GetKey()) {
			r.blank = true
			return
		}
		item := drivers.Item{Key: it.GetKey(), Timeout: it.GetTimeout()}
		if r.m == mSet {
			// Decoders already gave the value its own memory.
			item.Value = it.GetValue()
			if item.Value == nil {
				item.Value = []byte{}
			}
		}
		r.items = append(r.items, item)
	}
}

// presizeAbove is the body size above which decoding counts the items
// before building them.
const presizeAbove = 4 << 10

// protoItemCount counts the items (field 2) of a protobuf request without
// decoding any, up to limit+1. It stops at the first malformed field, which
// decoding then reports.
func protoItemCount(b []byte, limit int) int {
	n := 0
	for len(b) > 0 && n <= limit {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			break
		}
		b = b[l:]
		if l = protowire.ConsumeFieldValue(num, typ, b); l < 0 {
			break
		}
		b = b[l:]
		// A field 2 of another wire type is an unknown field, not an item.
		if num == 2 && typ == protowire.BytesType {
			n++
		}
	}
	return n
}

// jsonTooManyItems reports whether a JSON request may have more than limit
// items, without decoding it: it counts the separators, outside strings, in
// the containers directly inside the top-level object (the items array),
// an upper bound on their elements.
func jsonTooManyItems(b []byte, limit int) bool {
	depth, commas := 0, 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		case c == ',' && depth == 2:
			if commas++; commas >= limit {
				return true
			}
		}
	}
	return false
}

// fastResult is the outcome of decodeProtoFast.
type fastResult uint8

const (
	fastFallback fastResult = iota // not the common shape: use proto.Unmarshal
	fastOK
	fastTooMany // more than maxItems items
)

// decodeProtoFast decodes the common shape of a kv.v1.Request without
// allocating messages: storage (1) and items (2) with key (1), value (2) and
// timeout (3), all length-delimited. It gives up (fastFallback) on anything
// else — unknown fields, wrong wire types, invalid UTF-8, malformed input —
// and the caller falls back to proto.Unmarshal, which then decides and words
// the error, so the result is always the one the protobuf runtime would give.
// Items past a blank key are checked and counted but not kept.
func decodeProtoFast(b []byte, r *request, storages map[string]*storage, maxItems int) fastResult {
	n := 0
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 || typ != protowire.BytesType {
			return fastFallback
		}
		b = b[l:]
		v, l := protowire.ConsumeBytes(b)
		if l < 0 {
			return fastFallback
		}
		b = b[l:]
		switch num {
		case 1:
			if !utf8.Valid(v) {
				return fastFallback
			}
			if st, ok := storages[string(v)]; ok {
				r.storage, r.st = st.name, st
			} else {
				r.storage, r.st = string(v), nil
			}
		case 2:
			key, value, timeout, ok := parseItemFast(v)
			if !ok {
				return fastFallback
			}
			if n++; n > maxItems {
				return fastTooMany
			}
			if r.blank || !r.keepsItems() {
				continue
			}
			if blankKey(key) {
				r.blank = true
				continue
			}
			it := drivers.Item{Key: string(key), Timeout: string(timeout)}
			if r.m == mSet {
				// Stores take ownership of values; the frame buffer is reused.
				it.Value = append(make([]byte, 0, len(value)), value...)
			}
			r.items = append(r.items, it)
		default:
			return fastFallback
		}
	}
	return fastOK
}

// blankKey is drivers.BlankKey on bytes, with a shortcut for the usual key
// that starts with a printable ASCII character.
func blankKey(key []byte) bool {
	if len(key) > 0 && key[0] > ' ' && key[0] < utf8.RuneSelf {
		return false
	}
	return len(bytes.TrimSpace(key)) == 0
}

// parseItemFast splits an encoded kv.v1.Item into its fields, aliasing b;
// ok is false for anything but the common shape.
func parseItemFast(b []byte) (key, value, timeout []byte, ok bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return nil, nil, nil, false
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, nil, nil, false
		}
		b = b[n:]
		switch num {
		case 1:
			key = v
		case 2:
			value = v
		case 3:
			timeout = v
		default:
			return nil, nil, nil, false
		}
	}
	if !utf8.Valid(key) || !utf8.Valid(timeout) {
		return nil, nil, nil, false
	}
	return key, value, timeout, true
}

// Reply bodies, encoded by hand: the same bytes proto.Marshal produces for a
// kv.v1.Response (fields in number order, empty strings and bytes omitted),
// without building the messages. TestEncode_MatchesProto checks this.

func appendStringField(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func fieldSize(n int) int {
	if n == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(uint64(n)) + n
}

// appendItemProto appends one Response.items entry.
func appendItemProto(b []byte, key string, value []byte, timeout string) []byte {
	size := fieldSize(len(key)) + fieldSize(len(value)) + fieldSize(len(timeout))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = appendStringField(b, 1, key)
	b = appendBytesField(b, 2, value)
	return appendStringField(b, 3, timeout)
}

// resultSizeProto is the length of appendResultProto's output.
func resultSizeProto(m method, res result) int {
	item := func(key, value, timeout int) int {
		size := fieldSize(key) + fieldSize(value) + fieldSize(timeout)
		return 1 + protowire.SizeVarint(uint64(size)) + size
	}
	n := 0
	for _, k := range res.keys {
		n += item(len(k), 0, 0)
	}
	for i := range res.items {
		it := &res.items[i]
		switch m {
		case mMGet:
			n += item(len(it.Key), len(it.Value), 0)
		case mTTL:
			n += item(len(it.Key), 0, len(it.Timeout))
		}
	}
	return n
}

// resultSizeJSON bounds the length of appendResultJSON's output: strings
// at most 6 bytes per byte (\u00XX escapes), values base64, and the field
// names and punctuation of one item well within 64 bytes.
func resultSizeJSON(res result) int {
	n := len(`{"items":[]}`)
	for _, k := range res.keys {
		n += 64 + 6*len(k)
	}
	for i := range res.items {
		it := &res.items[i]
		n += 64 + 6*len(it.Key) + base64.StdEncoding.EncodedLen(len(it.Value)) + 6*len(it.Timeout)
	}
	return n
}

// result is what a call returns: keys for Has, items for MGet and TTL.
type result struct {
	keys  []string
	items []drivers.Item
}

func appendResultProto(b []byte, m method, res result) []byte {
	for _, k := range res.keys {
		b = appendItemProto(b, k, nil, "")
	}
	for i := range res.items {
		it := &res.items[i]
		switch m {
		case mMGet:
			b = appendItemProto(b, it.Key, it.Value, "")
		case mTTL:
			b = appendItemProto(b, it.Key, nil, it.Timeout)
		}
	}
	return b
}

// toPB builds the kv.v1.Response RoadRunner's handlers fill.
func toPB(m method, res result) *kvv1.Response {
	out := &kvv1.Response{}
	for _, k := range res.keys {
		out.Items = append(out.Items, &kvv1.Item{Key: k})
	}
	for i := range res.items {
		it := &res.items[i]
		switch m {
		case mMGet:
			out.Items = append(out.Items, &kvv1.Item{Key: it.Key, Value: it.Value})
		case mTTL:
			out.Items = append(out.Items, &kvv1.Item{Key: it.Key, Timeout: it.Timeout})
		}
	}
	return out
}

// appendResultJSON appends the JSON body goridge's codec writes: goccy's
// encoding of the kv.v1.Response ("{}" when empty).
func appendResultJSON(b []byte, m method, res result) ([]byte, error) {
	data, err := json.Marshal(toPB(m, res))
	if err != nil {
		return b, err // rendered into the reply like goridge does
	}
	return append(b, data...), nil
}
