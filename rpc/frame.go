package rpc

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/roadrunner-server/goridge/v3/pkg/frame"
)

// A goridge v3 RPC frame header (pkg/frame, frame.md):
//
//	byte 0      version << 4 | header length in 32-bit words (5 for RPC)
//	byte 1      flags (codec bits, ERROR)
//	bytes 2-5   payload length, uint32 LE
//	bytes 6-9   CRC32 (IEEE) of bytes 0-5, LE
//	byte 10     stream flags, byte 11 reserved
//	bytes 12-19 options: sequence id, method-name length (uint32 LE)
const (
	baseHeaderLen = 12
	headerLen     = 20
	headerWords   = headerLen / frame.WORD
	flagsCodec    = frame.CodecProto | frame.CodecJSON | frame.CodecRaw | frame.CodecMsgpack | frame.CodecGob
)

// checkBase validates the first 12 bytes of a frame: everything a peer can
// get wrong before the options, so that a bad header is refused before the
// server waits for or allocates anything it declares.
func checkBase(b []byte, maxFrame int) (flags byte, plen uint32, err error) {
	if b[0]>>4 != frame.Version1 {
		return 0, 0, ErrFrameVersion
	}
	if b[0]&0x0F != headerWords {
		return 0, 0, ErrFrameOptions
	}
	if crc32.ChecksumIEEE(b[:6]) != binary.LittleEndian.Uint32(b[6:10]) {
		return 0, 0, ErrFrameCRC
	}
	plen = binary.LittleEndian.Uint32(b[2:6])
	if uint64(plen) > uint64(maxFrame) {
		return 0, 0, fmt.Errorf("%w: %d bytes declared, limit %d", ErrFrameTooLarge, plen, maxFrame)
	}
	return b[1], plen, nil
}

// putHeader writes a reply header into b[:headerLen], byte for byte what
// goridge's codec writes.
func putHeader(b []byte, flags byte, plen, seq, mlen uint32) {
	b[0] = frame.Version1<<4 | headerWords
	b[1] = flags
	binary.LittleEndian.PutUint32(b[2:6], plen)
	binary.LittleEndian.PutUint32(b[6:10], crc32.ChecksumIEEE(b[:6]))
	b[10], b[11] = 0, 0
	binary.LittleEndian.PutUint32(b[12:16], seq)
	binary.LittleEndian.PutUint32(b[16:20], mlen)
}

// pickCodec returns the one codec bit goridge's codec would answer with:
// PROTO > JSON > RAW > MSGPACK > GOB, and GOB when none is set.
func pickCodec(flags byte) byte {
	switch {
	case flags&frame.CodecProto != 0:
		return frame.CodecProto
	case flags&frame.CodecJSON != 0:
		return frame.CodecJSON
	case flags&frame.CodecRaw != 0:
		return frame.CodecRaw
	case flags&frame.CodecMsgpack != 0:
		return frame.CodecMsgpack
	default:
		return frame.CodecGob
	}
}

// serviceName is the net/rpc service RoadRunner registers the kv plugin as.
const serviceName = "kv"

// method identifies a kv RPC method.
type method uint8

const (
	mUnknown method = iota
	mHas
	mSet
	mMGet
	mMExpire
	mTTL
	mDelete
	mClear
	methodCount
)

var methodName = [methodCount]string{
	mHas:     "kv.Has",
	mSet:     "kv.Set",
	mMGet:    "kv.MGet",
	mMExpire: "kv.MExpire",
	mTTL:     "kv.TTL",
	mDelete:  "kv.Delete",
	mClear:   "kv.Clear",
}

// methodSuffix completes driverOp in RoadRunner's driver error texts.
var methodSuffix = [methodCount]string{
	mHas:     "has",
	mSet:     "set",
	mMGet:    "mget",
	mMExpire: "mexpire",
	mTTL:     "ttl",
	mDelete:  "delete",
	mClear:   "clear",
}

// spanName is the span RoadRunner's kv plugin opens per call.
var spanName = [methodCount]string{
	mHas:     "kv:has",
	mSet:     "kv:set",
	mMGet:    "kv:mget",
	mMExpire: "kv:mexpire",
	mTTL:     "kv:ttl",
	mDelete:  "kv:delete",
	mClear:   "kv:clear",
}

// lookupMethod maps a method name to its method, case-sensitively like
// net/rpc. The switch on string(b) does not allocate.
func lookupMethod(b []byte) method {
	switch string(b) {
	case "kv.Has":
		return mHas
	case "kv.Set":
		return mSet
	case "kv.MGet":
		return mMGet
	case "kv.MExpire":
		return mMExpire
	case "kv.TTL":
		return mTTL
	case "kv.Delete":
		return mDelete
	case "kv.Clear":
		return mClear
	default:
		return mUnknown
	}
}
