package memory

import (
	"math"
	"unsafe"
)

// entry is a key's state as a read sees it: its value, aliasing the slab
// it is stored in, and its expiry record (nil for a key without expiry).
type entry struct {
	val string
	// exp is never modified after it is published except for its heap
	// position, so a snapshot may share it.
	exp *expiry
}

// expiry is the TTL of one key and its position in the expiry heap. It is
// laid out to fit the 32-byte allocation class (a plain struct of strings
// would take 48): the key is kept as pointer and length, and the timeout
// as a pointer to a string shared between keys with the same timeout.
type expiry struct {
	keyp *byte
	keyn uint32
	// idx is the record's position in Engine.heap; only the heap code,
	// under the write lock, reads or writes it.
	idx      int32
	timeout  *string
	deadline int64
}

func newExpiry(key string, timeout *string, deadline int64) *expiry {
	return &expiry{keyp: unsafe.StringData(key), keyn: uint32(len(key)), timeout: timeout, deadline: deadline} //nolint:gosec // G103: keyp keeps the immutable key alive; keyn fits, as validate caps keys at maxKeyLen
}

func (x *expiry) key() string { return unsafe.String(x.keyp, x.keyn) } //nolint:gosec // G103: pointer and length of a string, from newExpiry

// maxKeyLen is the longest key an expiry record can describe.
const maxKeyLen = math.MaxUint32

// visible reports whether the entry is served at now.
func (en entry) visible(now int64) bool {
	return en.exp == nil || en.exp.deadline > now
}

// valueBytes returns a stored value for a reader. The slice aliases the
// stored bytes and has no spare capacity, so appending to it copies; the
// reader must not write into it.
func valueBytes(s string) []byte {
	if len(s) == 0 {
		return emptyValue
	}
	return unsafe.Slice(unsafe.StringData(s), len(s)) //nolint:gosec // G103: read-only, as the package doc says; append copies
}

// ttl returns the entry's timeout text and deadline ("", 0 without expiry).
func (en entry) ttl() (string, int64) {
	if en.exp == nil {
		return "", 0
	}
	return *en.exp.timeout, en.exp.deadline
}

// emptyValue is returned for stored empty values so callers always get a
// non-nil slice; it has zero capacity, so nobody can write through it.
var emptyValue = []byte{}

// internCache is a small direct-mapped cache of timeout strings, indexed by
// the deadline's second. Clients setting keys with the same TTL in the same
// second send the same text; sharing one copy saves an allocation per key
// (~32 bytes for a 25-character RFC 3339 string). A miss just replaces the
// slot, so the cost is one string comparison. It never changes what is
// stored, only which copy of equal bytes is kept.
type internCache [64]*string

// noTimeout is shared by every record whose timeout text is empty.
var noTimeout = new(string)

func (c *internCache) slot(deadline int64) **string {
	return &c[uint64(deadline/1e9)%uint64(len(c))] // any bits will do for a cache index
}

func (c *internCache) intern(s string, deadline int64) *string {
	if s == "" {
		return noTimeout
	}
	slot := c.slot(deadline)
	if *slot == nil || **slot != s {
		// A new variable, not &s: taking s's address would move it to the
		// heap on every call, hits included.
		p := new(string)
		*p = s
		*slot = p
	}
	return *slot
}

// internBytes is intern for a scratch buffer: it copies b only on a miss.
func (c *internCache) internBytes(b []byte, deadline int64) *string {
	if len(b) == 0 {
		return noTimeout
	}
	slot := c.slot(deadline)
	if *slot == nil || **slot != string(b) {
		s := string(b)
		*slot = &s
	}
	return *slot
}
