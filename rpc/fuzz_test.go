package rpc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	kvv1 "github.com/roadrunner-server/api/v4/build/kv/v1"
	"github.com/roadrunner-server/goridge/v3/pkg/frame"
	"google.golang.org/protobuf/proto"

	"github.com/kvnode/kvnode/drivers"
	"github.com/kvnode/kvnode/drivers/boltdb"
	"github.com/kvnode/kvnode/drivers/memory"
)

// seedFrames are valid and broken frames the fuzzers start from (also
// committed under testdata/fuzz).
func seedFrames(t testing.TB) [][]byte {
	set := marshal(t, &kvv1.Request{Storage: "default", Items: []*kvv1.Item{item("k", "v", "2030-01-01T00:00:00Z")}})
	good := rawFrame(0xA0, 1, "kv.Set", set)
	badCRC := bytes.Clone(good)
	badCRC[7] ^= 0xFF
	huge := bytes.Clone(good[:20])
	binary.LittleEndian.PutUint32(huge[2:6], 0xFFFFFFF0)
	huge = reframe(huge)
	return [][]byte{
		good,
		append(bytes.Clone(good), rawFrame(0x80, 2, "kv.MGet", marshal(t, req("default", "k")))...),
		rawFrame(0x08, 3, "kv.TTL", []byte(`{"storage":"default","items":[{"key":"k"}]}`)),
		badCRC,
		huge,
		rawFrame(0x80, 4, "kv.Has", []byte("\x12\x05garbage\xff")),
		rawFrame(0x80, 5, "kv.Nope", nil),
		good[:27],
	}
}

// checkReplies parses a reply stream: whatever the input, the server only
// ever writes well-formed frames.
func checkReplies(t *testing.T, b []byte) {
	for len(b) > 0 {
		if len(b) < headerLen {
			t.Fatalf("reply stream ends in a partial header: % x", b)
		}
		if b[0] != 0x15 || crc32.ChecksumIEEE(b[:6]) != binary.LittleEndian.Uint32(b[6:10]) {
			t.Fatalf("malformed reply header % x", b[:headerLen])
		}
		plen := int(binary.LittleEndian.Uint32(b[2:6]))
		mlen := int(binary.LittleEndian.Uint32(b[16:20]))
		if len(b) < headerLen+plen || mlen > plen {
			t.Fatalf("reply payload %d/%d bytes, method %d", len(b)-headerLen, plen, mlen)
		}
		if codec := b[1] &^ frame.ERROR; codec == 0 || codec&(codec-1) != 0 {
			t.Fatalf("reply flags %#x: want exactly one codec bit", b[1])
		}
		b = b[headerLen+plen:]
	}
}

// FuzzServeFrame feeds arbitrary bytes to a real connection: the server must
// not panic, must close the connection once the input ends, must only write
// well-formed frames, and must keep serving fresh connections.
func FuzzServeFrame(f *testing.F) {
	for _, s := range seedFrames(f) {
		f.Add(s)
	}
	// Logs are discarded: a fuzzing run opens millions of connections.
	srv := startServerLogger(f, Config{MaxFrameSize: 64 << 10, FrameTimeout: 2 * time.Second}, nil,
		slog.New(slog.DiscardHandler),
		Storage{Name: "default", Driver: memory.Driver(), Store: newMemory(f), Inline: true},
		Storage{Name: "async", Driver: boltdb.Driver(), Store: newMemory(f)})
	probe := rawFrame(0x80, 9, "kv.Has", marshal(f, req("default", "k")))

	f.Fuzz(func(t *testing.T, in []byte) {
		nc, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = nc.Close() }()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			_, _ = nc.Write(in)
			_ = nc.(*net.TCPConn).CloseWrite()
		}()
		out, err := io.ReadAll(nc)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server did not close the connection after the input ended")
		}
		checkReplies(t, out)

		fresh, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatalf("server stopped accepting: %v", err)
		}
		defer func() { _ = fresh.Close() }()
		_ = fresh.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := fresh.Write(probe); err != nil {
			t.Fatal(err)
		}
		if r := readReply(t, fresh); r.seq != 9 || r.flags != 0x80 {
			t.Fatalf("fresh connection: seq %d flags %#x %q", r.seq, r.flags, r.body)
		}
	})
}

// FuzzDecodeRequest checks the hand-written proto decoder and encoder
// against the protobuf runtime: the same requests accepted with the same
// content, the same errors, byte-identical replies. JSON bodies must not
// panic the decoder.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range seedFrames(f) {
		if len(s) > headerLen {
			mlen := binary.LittleEndian.Uint32(s[16:20])
			if int(headerLen+mlen) <= len(s) {
				f.Add(false, true, s[headerLen+mlen:])
			}
		}
	}
	f.Add(false, false, marshal(f, req("default", "a", "b", "a")))
	f.Add(true, false, []byte(`{"items":[null,{"key":"x","value":"AA=="}]}`))
	storages := map[string]*storage{"default": {name: "default", driver: memory.Driver()}}

	f.Fuzz(func(t *testing.T, jsonCodec, isSet bool, body []byte) {
		r := &request{m: mMGet, codec: frame.CodecProto}
		if isSet {
			r.m = mSet
		}
		if jsonCodec {
			r.codec = frame.CodecJSON
			_ = decodeBody(body, r, storages, DefaultMaxItems)
			return
		}
		in := bytes.Clone(body)
		err := decodeBody(in, r, storages, DefaultMaxItems)
		var pb kvv1.Request
		pbErr := proto.Unmarshal(body, &pb)
		if (err == nil) != (pbErr == nil) {
			t.Fatalf("decodeBody error %v, proto.Unmarshal error %v", err, pbErr)
		}
		if err != nil {
			if want := errProto(pbErr).Error(); err.Error() != want {
				t.Fatalf("error %q, want %q", err, want)
			}
			return
		}
		// Nothing decoded may alias the input buffer.
		for i := range in {
			in[i] ^= 0xFF
		}
		if r.storage != pb.GetStorage() || (r.st != nil) != (pb.GetStorage() == "default") {
			t.Fatalf("storage %q (%v), want %q", r.storage, r.st, pb.GetStorage())
		}
		// Items are kept up to the first blank key, which sets blank.
		want := pb.GetItems()
		for i, it := range want {
			if drivers.BlankKey(it.GetKey()) {
				want = want[:i]
				break
			}
		}
		if blank := len(want) < len(pb.GetItems()); r.blank != blank {
			t.Fatalf("blank = %v, want %v", r.blank, blank)
		}
		if len(r.items) != len(want) {
			t.Fatalf("%d items, want %d", len(r.items), len(want))
		}
		res := result{items: make([]drivers.Item, len(r.items))}
		for i, it := range want {
			got := r.items[i]
			if got.Key != it.GetKey() || got.Timeout != it.GetTimeout() ||
				(isSet && !bytes.Equal(got.Value, it.GetValue())) || (!isSet && got.Value != nil) {
				t.Fatalf("item %d = %+v, want %v", i, got, it)
			}
			res.items[i] = drivers.Item{Key: it.GetKey(), Value: it.GetValue(), Timeout: it.GetTimeout()}
		}
		for _, m := range []method{mMGet, mTTL} {
			want, err := proto.Marshal(toPB(m, res))
			if err != nil {
				t.Fatal(err)
			}
			if got := appendResultProto(nil, m, res); !bytes.Equal(got, want) {
				t.Fatalf("%s reply\n got % x\nwant % x", methodName[m], got, want)
			}
		}
	})
}
