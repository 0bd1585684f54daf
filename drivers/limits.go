package drivers

import (
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"strconv"
	"strings"
)

// Memory accounting. A bounded storage compares its usage with max_memory
// after every op; usage must be the same on every replica, so it is a
// function of the replicated state alone, never of the allocator:
//
//	usage = Σ over keys (len(key) + len(value) + KeyOverhead
//	                     + ExpiryOverhead if the key has a deadline)
//
// The overheads approximate what the memory engine spends besides the
// bytes themselves (its index slot and record header; an expiry record, a
// heap slot and a parallel-array slot for a key with a TTL), measured with
// BenchmarkFootprint1M: 131 bytes of heap for a 16-byte key with a 100-byte
// value, 209 with a TTL. Expired keys not yet swept count until they are.
const (
	KeyOverhead    = 32
	ExpiryOverhead = 64
)

// EntryUsage is what one key counts towards usage.
func EntryUsage(keyLen, valueLen int, hasDeadline bool) int64 {
	n := int64(keyLen) + int64(valueLen) + KeyOverhead
	if hasDeadline {
		n += ExpiryOverhead
	}
	return n
}

// Policy is what a bounded storage does when a write needs room.
type Policy uint8

// Policies. Values are part of the event log encoding: never renumber.
const (
	// PolicyReject fails a write that would pass the limit (Redis's
	// noeviction). The default when a limit is set.
	PolicyReject Policy = iota
	// PolicyLRU evicts approximately least recently used keys, by reads and
	// writes on any node.
	PolicyLRU
	// PolicyTTL evicts the keys with the nearest deadline; keys without one
	// are never evicted (Redis's volatile-ttl).
	PolicyTTL
	// PolicyRandom evicts keys chosen at random.
	PolicyRandom
)

var policyNames = [...]string{PolicyReject: "reject", PolicyLRU: "lru", PolicyTTL: "ttl", PolicyRandom: "random"}

// String returns the policy's configuration word.
func (p Policy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return "policy(" + strconv.Itoa(int(p)) + ")"
}

// ParsePolicy maps a configuration word to a Policy ("" = reject).
func ParsePolicy(s string) (Policy, error) {
	if s == "" {
		return PolicyReject, nil
	}
	for p, name := range policyNames {
		if s == name {
			return Policy(p), nil
		}
	}
	return PolicyReject, fmt.Errorf("%w: eviction %q (want reject, lru, ttl or random)", ErrBadLimit, s)
}

// Limits bound a storage. Zero fields are unlimited. They are replicated
// state: set through OpLimit, kept in snapshots, identical on every node.
type Limits struct {
	// MaxBytes bounds usage (see EntryUsage).
	MaxBytes int64
	// MaxKeys bounds the number of keys.
	MaxKeys int64
	// Policy says how the leader makes room.
	Policy Policy
}

// Bounded reports whether any limit is set.
func (l Limits) Bounded() bool { return l.MaxBytes > 0 || l.MaxKeys > 0 }

// Over reports whether keys and usage pass the limits.
func (l Limits) Over(keys, usage int64) bool {
	return l.MaxBytes > 0 && usage > l.MaxBytes || l.MaxKeys > 0 && keys > l.MaxKeys
}

// String renders the limits for logs and errors.
func (l Limits) String() string {
	var parts []string
	if l.MaxBytes > 0 {
		parts = append(parts, "max_memory "+FormatBytes(l.MaxBytes))
	}
	if l.MaxKeys > 0 {
		parts = append(parts, "max_keys "+strconv.FormatInt(l.MaxKeys, 10))
	}
	if len(parts) == 0 {
		return "unlimited"
	}
	return strings.Join(parts, ", ") + ", eviction " + l.Policy.String()
}

// Usage is the accounted usage of keys holding bytes of keys and values,
// of which withDeadline have a TTL.
func Usage(keys, bytes, withDeadline int64) int64 {
	return bytes + keys*KeyOverhead + withDeadline*ExpiryOverhead
}

// ValueDigest identifies a value for a Victim: its length and CRC-32C.
func ValueDigest(v []byte) uint64 {
	return uint64(len(v))<<32 | uint64(crc32.Checksum(v, castagnoli))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Reason says why keys left a storage without a client asking.
type Reason uint8

// Reasons. Values are part of the event log encoding: never renumber.
const (
	// ReasonMemory: the storage needed room under max_memory.
	ReasonMemory Reason = iota + 1
	// ReasonKeys: the storage needed room under max_keys.
	ReasonKeys
	// ReasonLimit: the limit was lowered (or a restored state was larger
	// than the configured limit) and the storage is evicted down to it.
	ReasonLimit
)

// String names the reason, as events show it.
func (r Reason) String() string {
	switch r {
	case ReasonMemory:
		return "max_memory"
	case ReasonKeys:
		return "max_keys"
	case ReasonLimit:
		return "limit lowered"
	default:
		return "reason(" + strconv.Itoa(int(r)) + ")"
	}
}

// Victim is a key the leader chose to evict, with what it saw there: the
// eviction applies only if the key still has that deadline and a value
// with that digest, so a key written again since survives.
type Victim struct {
	Key      string
	Deadline int64
	// Digest is ValueDigest of the value seen.
	Digest uint64
}

// FormatBytes renders n bytes with a binary unit ("512MiB").
func FormatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for i < len(units)-1 && n >= 1<<10 && n%(1<<10) == 0 {
		n >>= 10
		i++
	}
	return strconv.FormatInt(n, 10) + units[i]
}

// Accounting is a consistent view of a bounded engine's counts.
type Accounting struct {
	Keys, Usage int64
	Limits      Limits
	// LastEvict is the Seq of the last OpEvict applied (node-local).
	LastEvict uint64
}

// Candidate is a key a planner may choose to evict.
type Candidate struct {
	Victim
	// Usage is what evicting the key frees (EntryUsage).
	Usage int64
	// Stamp is when the key was last used on this node, in arbitrary
	// units that only compare with each other (lru only; smaller is
	// older; 0 is never).
	Stamp uint32
	// Ref is where the engine found the key, for Resolve; opaque.
	Ref [2]uint64
}

// Evictable is an Engine that can be bounded: it enforces Limits at apply
// (a write that would pass them fails with ErrFull) and names candidates
// for the leader's evictions (see Planner).
type Evictable interface {
	Engine
	// Accounting returns the counts a planner works from, consistently
	// (never halfway through an Apply).
	Accounting() Accounting
	// Growth is how op, applied at op.Now to the current state, would
	// change the number of keys and the usage.
	Growth(op *Op) (keys, usage int64)
	// Candidates appends up to n keys the planner may evict under policy:
	// for PolicyTTL the nearest deadlines first, after the first skip;
	// otherwise n keys sampled at random, of which, for PolicyLRU, only
	// those last used before the stamp before (0: all), with only their
	// Stamp and Ref (Resolve gives the rest): sampling is where eviction
	// spends its time, in cache misses, and most samples never become
	// victims.
	Candidates(policy Policy, n, skip int, before uint32, dst []Candidate) []Candidate
	// Resolve returns the candidate at c.Ref as it is now, whole, or false
	// when that place holds another key or record since it was sampled.
	Resolve(c Candidate) (Candidate, bool)
	// Peek returns one key as a candidate, if it exists, with its stamp
	// (for tests and tools: the planner resolves what it sampled).
	Peek(key string, now int64) (Candidate, bool)
	// Touch records that keys were used at now (lru access hints).
	Touch(now int64, keys []string)
	// Measure reads a stream written by Snapshot.WriteTo and reports what
	// restoring it would hold, without building it.
	Measure(r io.Reader) (Stats, error)
}

// MemorySize is a max_memory setting: a number of bytes, or a percentage
// of the memory the process may use.
type MemorySize struct {
	Bytes   int64
	Percent float64
}

// sizeUnits are the units ParseMemorySize takes, case-insensitively.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
	"ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30, "ti": 1 << 40,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// ParseMemorySize parses "536870912", "512MiB", "512Mi", "1.5GB", "2g" or
// "25%". KB, MB, GB and TB are powers of 1000; K, KiB, Ki and the like
// powers of 1024. A percentage is of the memory the process may use
// (Resolve), between 0 and 100.
func ParseMemorySize(s string) (MemorySize, error) {
	t := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(t, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || !(f > 0 && f <= 100) {
			return MemorySize{}, fmt.Errorf("%w: %q: a percentage must be above 0 and at most 100", ErrBadLimit, s)
		}
		return MemorySize{Percent: f}, nil
	}
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	f, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || f <= 0 {
		return MemorySize{}, fmt.Errorf("%w: %q: want bytes with an optional unit (512MiB, 1GB) or a percentage (25%%)", ErrBadLimit, s)
	}
	if f*float64(mult) >= math.MaxInt64 {
		return MemorySize{}, fmt.Errorf("%w: %q is too large", ErrBadLimit, s)
	}
	return MemorySize{Bytes: int64(f * float64(mult))}, nil
}

// Resolve returns the size in bytes, a percentage taken of total.
func (m MemorySize) Resolve(total int64) int64 {
	if m.Percent > 0 {
		return int64(float64(total) * m.Percent / 100)
	}
	return m.Bytes
}

// String renders the setting as it could be written.
func (m MemorySize) String() string {
	if m.Percent > 0 {
		return strconv.FormatFloat(m.Percent, 'f', -1, 64) + "%"
	}
	return FormatBytes(m.Bytes)
}
