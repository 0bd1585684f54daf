package rpc

import (
	"unicode/utf8"

	"github.com/goccy/go-json"
	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"
	"github.com/roadrunner-server/goridge/v3/pkg/frame"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/kvnode/kvnode/drivers"
)

// request is one decoded call. Requests are pooled: everything in one is
// owned by it, never by the frame buffer it was decoded from.
type request struct {
	seq   uint32
	codec byte // the codec bit the reply uses
	m     method
	// unknown is the method name as sent, kept only when m is mUnknown.
	unknown string
	// err, when set, is the reply: the request failed before any Store
	// could be called (unknown method, codec, undecodable body).
	err error

	storage string   // as sent
	st      *storage // nil when storage is not configured
	items   []drivers.Item

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
	clear(r.items) // drop references to keys and values for the GC
	*r = request{items: r.items[:0]}
}

// decodeBody decodes body (a kv.v1.Request in the codec of r.codec) into r.
// Only Set keeps item values: the other methods ignore them, so copying them
// out of the frame buffer would be wasted work.
func decodeBody(body []byte, r *request, storages map[string]*storage) error {
	if len(body) == 0 {
		return nil // goridge's codec leaves the request at its zero value
	}
	switch r.codec {
	case frame.CodecProto:
		if decodeProtoFast(body, r, storages) {
			return nil
		}
		r.storage, r.st, r.items = "", nil, r.items[:0]
		var pb kvv1.Request
		if err := proto.Unmarshal(body, &pb); err != nil {
			return errProto(err)
		}
		fromPB(&pb, r, storages)
		return nil
	case frame.CodecJSON:
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
	for _, it := range pb.GetItems() { // a JSON null item decodes as nil: Get* handle it
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

// decodeProtoFast decodes the common shape of a kv.v1.Request without
// allocating messages: storage (1) and items (2) with key (1), value (2) and
// timeout (3), all length-delimited. It gives up (false) on anything else —
// unknown fields, wrong wire types, invalid UTF-8, malformed input — and the
// caller falls back to proto.Unmarshal, which then decides and words the
// error, so the result is always the one the protobuf runtime would give.
func decodeProtoFast(b []byte, r *request, storages map[string]*storage) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return false
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch num {
		case 1:
			if !utf8.Valid(v) {
				return false
			}
			if st, ok := storages[string(v)]; ok {
				r.storage, r.st = st.name, st
			} else {
				r.storage, r.st = string(v), nil
			}
		case 2:
			var it drivers.Item
			if !decodeItemFast(v, &it, r.m == mSet) {
				return false
			}
			r.items = append(r.items, it)
		default:
			return false
		}
	}
	return true
}

func decodeItemFast(b []byte, it *drivers.Item, keepValue bool) bool {
	var key, value, timeout []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return false
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return false
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
			return false
		}
	}
	if !utf8.Valid(key) || !utf8.Valid(timeout) {
		return false
	}
	it.Key = string(key)
	it.Timeout = string(timeout)
	if keepValue {
		// Stores take ownership of values; the frame buffer is reused.
		it.Value = append(make([]byte, 0, len(value)), value...)
	}
	return true
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
		return b, err //nolint:wrapcheck // rendered into the reply like goridge does
	}
	return append(b, data...), nil
}
