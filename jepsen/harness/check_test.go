package harness

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/client"
)

func set(worker int, key, value string, invoke, complete int64, st ...Status) Op {
	status := StatusOK
	if len(st) > 0 {
		status = st[0]
	}
	return Op{Worker: worker, Storage: "memory_lin", Workload: "register", F: "set", Keys: []string{key}, Value: value, Invoke: invoke, Complete: complete, Status: status}
}

func get(worker int, key, value string, invoke, complete int64) Op {
	op := Op{Worker: worker, Storage: "memory_lin", Workload: "register", F: "get", Keys: []string{key}, Invoke: invoke, Complete: complete, Status: StatusOK, Read: map[string]string{}}
	if value != "" {
		op.Read[key] = value
	}
	return op
}

func TestCheckLinearizable(t *testing.T) {
	cases := []struct {
		name  string
		ops   []Op
		legal bool
	}{
		{"sequential", []Op{set(0, "k", "a", 0, 10), get(1, "k", "a", 20, 30)}, true},
		{"stale read after acknowledged write", []Op{set(0, "k", "a", 0, 10), set(0, "k", "b", 20, 30), get(1, "k", "a", 40, 50)}, false},
		{"read concurrent with write sees either", []Op{set(0, "k", "a", 0, 10), set(0, "k", "b", 20, 60), get(1, "k", "a", 30, 40), get(2, "k", "b", 45, 50)}, true},
		{"value never written", []Op{set(0, "k", "a", 0, 10), get(1, "k", "zzz", 20, 30)}, false},
		{"unknown write may apply late", []Op{set(0, "k", "a", 0, 10), set(1, "k", "b", 20, 30, StatusInfo), get(2, "k", "a", 40, 50), get(2, "k", "b", 60, 70)}, true},
		{"unknown write may never apply", []Op{set(0, "k", "a", 0, 10), set(1, "k", "b", 20, 30, StatusInfo), get(2, "k", "a", 100, 110)}, true},
		{"failed write is dropped", []Op{set(0, "k", "a", 0, 10), set(1, "k", "b", 20, 30, StatusFail), get(2, "k", "a", 100, 110)}, true},
		{"once seen, an unknown write stays", []Op{set(0, "k", "a", 0, 10), set(1, "k", "b", 20, 30, StatusInfo), get(2, "k", "b", 40, 50), get(2, "k", "a", 60, 70)}, false},
		{"local storages are not checked", []Op{func() Op { o := set(0, "k", "a", 0, 10); o.Storage = "memory_local"; return o }(), func() Op { o := get(1, "k", "zzz", 20, 30); o.Storage = "memory_local"; return o }()}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := CheckLinearizable(tc.ops, nil, 10*time.Second, "")
			if got := len(res.Anomalies) == 0; got != tc.legal {
				t.Fatalf("legal = %t, want %t (%v)", got, tc.legal, res.Anomalies)
			}
		})
	}
}

func TestCheckLinearizableWritesVisualization(t *testing.T) {
	dir := t.TempDir()
	ops := []Op{set(0, "k", "a", 0, 10), set(0, "k", "b", 20, 30), get(1, "k", "a", 40, 50)}
	res := CheckLinearizable(ops, nil, 10*time.Second, dir)
	if len(res.Anomalies) != 1 || !strings.HasPrefix(res.Anomalies[0].Visualization, dir) {
		t.Fatalf("anomalies = %+v, want one with an HTML file in %s", res.Anomalies, dir)
	}
}

func group(f, value string, invoke, complete int64, read map[string]string) Op {
	return Op{Storage: "boltdb_lin", Workload: "group", F: f, Keys: []string{"g/a", "g/b", "g/c"}, Value: value, Invoke: invoke, Complete: complete, Status: StatusOK, Read: read}
}

func TestCheckGroups(t *testing.T) {
	torn := group("get", "", 20, 30, map[string]string{"g/a": "x", "g/b": "x"})
	ops := []Op{group("set", "x", 0, 10, nil), torn}
	if a := CheckTorn(ops); len(a) != 1 {
		t.Fatalf("torn read not reported: %v", a)
	}
	if res := CheckLinearizable(ops, nil, 10*time.Second, ""); len(res.Anomalies) != 1 {
		t.Fatalf("torn read passed porcupine: %v", res.Anomalies)
	}
	whole := group("get", "", 20, 30, map[string]string{"g/a": "x", "g/b": "x", "g/c": "x"})
	ops = []Op{group("set", "x", 0, 10, nil), whole}
	if a := append(CheckTorn(ops), CheckLinearizable(ops, nil, 10*time.Second, "").Anomalies...); len(a) != 0 {
		t.Fatalf("whole group read reported: %v", a)
	}
}

func TestCheckLostWrites(t *testing.T) {
	del := func(invoke, complete int64, st Status) Op {
		return Op{Storage: "memory_lin", Workload: "register", F: "del", Keys: []string{"k"}, Invoke: invoke, Complete: complete, Status: st}
	}
	final := func(v string) map[string]map[string]string {
		if v == "" {
			return map[string]map[string]string{"memory_lin": {}}
		}
		return map[string]map[string]string{"memory_lin": {"k": v}}
	}
	cases := []struct {
		name  string
		ops   []Op
		final string
		lost  bool
	}{
		{"last write survives", []Op{set(0, "k", "a", 0, 10), set(0, "k", "b", 20, 30)}, "b", false},
		{"acknowledged overwrite lost", []Op{set(0, "k", "a", 0, 10), set(0, "k", "b", 20, 30)}, "a", true},
		{"concurrent writes either wins", []Op{set(0, "k", "a", 0, 30), set(1, "k", "b", 10, 20)}, "a", false},
		{"unknown write may win", []Op{set(0, "k", "a", 0, 10), set(1, "k", "b", 5, 6, StatusInfo)}, "b", false},
		{"acknowledged write vanished", []Op{set(0, "k", "a", 0, 10)}, "", true},
		{"delete explains absence", []Op{set(0, "k", "a", 0, 10), del(20, 30, StatusOK)}, "", false},
		{"unknown delete may explain absence", []Op{set(0, "k", "a", 0, 10), del(20, 30, StatusInfo)}, "", false},
		{"set after delete lost", []Op{del(0, 10, StatusOK), set(0, "k", "a", 20, 30)}, "", true},
		{"phantom value", []Op{set(0, "k", "a", 0, 10)}, "zzz", true},
		{"only failed writes", []Op{set(0, "k", "a", 0, 10, StatusFail)}, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := CheckLostWrites(tc.ops, final(tc.final), indexWrites(tc.ops, nil))
			if got := len(a) > 0; got != tc.lost {
				t.Fatalf("lost = %t, want %t (%v)", got, tc.lost, a)
			}
		})
	}
}

func TestCheckTTL(t *testing.T) {
	ms := int64(time.Millisecond)
	w := Op{Storage: "boltdb_lin", Workload: "ttl", F: "set", Keys: []string{"t"}, Value: "v", Deadline: 1000 * ms, Invoke: 0, Complete: 10 * ms, Status: StatusOK}
	read := func(invoke, complete int64, present bool) Op {
		op := Op{Storage: "boltdb_lin", Workload: "ttl", F: "get", Keys: []string{"t"}, Invoke: invoke, Complete: complete, Status: StatusOK, Read: map[string]string{}}
		if present {
			op.Read["t"] = "v"
		}
		return op
	}
	cases := []struct {
		name    string
		read    Op
		anomaly bool
	}{
		{"present before deadline", read(500*ms, 510*ms, true), false},
		{"absent after deadline", read(1100*ms, 1110*ms, false), false},
		{"present just past deadline within skew", read(1020*ms, 1030*ms, true), false},
		{"present after deadline", read(1100*ms, 1110*ms, true), true},
		{"absent well before deadline", read(500*ms, 510*ms, false), true},
		{"absent near deadline within skew", read(960*ms, 970*ms, false), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, a := CheckTTL([]Op{w, tc.read}, 50*time.Millisecond, nil)
			if n != 1 || (len(a) > 0) != tc.anomaly {
				t.Fatalf("reads %d anomalies %v, want anomaly %t", n, a, tc.anomaly)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	se := func(text string) error { return &client.ServerError{Method: "kv.Set", Text: text} }
	cases := []struct {
		err   error
		write bool
		want  Status
	}{
		{nil, true, StatusOK},
		{se("no leader: write not applied, retry"), true, StatusFail},
		{se("outcome unknown: leadership lost"), true, StatusInfo},
		{se("something new"), true, StatusInfo},
		{se("something new"), false, StatusFail},
		{fmt.Errorf("x: %w", client.ErrDial), true, StatusFail},
		{fmt.Errorf("x: %w", client.ErrUnknownOutcome), true, StatusInfo},
		{errors.New("anything else"), true, StatusInfo},
	}
	for _, tc := range cases {
		if got, _ := Classify(tc.err, tc.write); got != tc.want {
			t.Errorf("Classify(%v, %t) = %s, want %s", tc.err, tc.write, got, tc.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	var s []FailoverSample
	for i := 1; i <= 10; i++ {
		s = append(s, FailoverSample{Unavailable: time.Duration(i) * time.Second})
	}
	if p50, p99 := Percentile(s, 50), Percentile(s, 99); p50 != 5*time.Second || p99 != 10*time.Second {
		t.Fatalf("p50 %s p99 %s", p50, p99)
	}
}

// Without an agreed final state (the nodes diverged, reported by the
// convergence check) no key may be called lost for being absent.
func TestCheckHistoryWithoutFinalState(t *testing.T) {
	ops := healthy(set(0, "k", "a", 0, 10))
	for _, a := range CheckHistory(ops, nil, checkOpts()).Anomalies {
		t.Errorf("anomaly without a final state: %v", a)
	}
	if a := CheckHistory(ops, finalOf(), checkOpts()).Anomalies; len(a) != 1 || a[0].Check != "lost-write" {
		t.Fatalf("with a final state missing k: %v, want one lost write", a)
	}
}
