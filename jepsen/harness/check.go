package harness

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Anomaly is one violation a check found.
type Anomaly struct {
	Check  string `json:"check"`
	Detail string `json:"detail"`
	// Visualization is porcupine's HTML for a linearizability anomaly.
	Visualization string `json:"visualization,omitempty"`
}

// regInput and regOutput are the register model's operations; "" is absent.
type regInput struct {
	f     string
	value string
}

type regOutput struct{ value string }

// registerModel is a register per key that set, del and get act on; values
// are unique, so a read names the write it saw.
var registerModel = porcupine.Model{
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(regInput)
		switch in.f {
		case "set":
			return true, in.value
		case "del":
			return true, ""
		default:
			return output.(regOutput).value == state.(string), state
		}
	},
	Equal: func(a, b any) bool { return a == b },
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		switch in.f {
		case "get":
			return fmt.Sprintf("get() -> %q", output.(regOutput).value)
		case "set":
			return fmt.Sprintf("set(%q)", in.value)
		}
		return "del()"
	},
	DescribeState: func(s any) string { return fmt.Sprintf("%q", s) },
}

// tornMarker is a group read whose keys disagree: no state explains it.
const tornMarker = "<torn read>"

// groupValue reduces a read of keys to one register value.
func groupValue(op Op) string {
	v, first := "", true
	for _, k := range op.Keys {
		got := op.Read[k]
		if first {
			v, first = got, false
		} else if got != v {
			return tornMarker
		}
	}
	return v
}

// subject is what one register history is about: a key of a storage, or
// a group (its keys move together).
func subject(op Op) string {
	if op.Workload == "group" || op.Workload == "final-group" {
		return op.Storage + "|" + strings.TrimSuffix(op.Keys[0], "/a")
	}
	return op.Storage + "|" + op.Keys[0]
}

// byRegister splits register and group operations per subject, dropping
// failed ones (a failed read saw nothing; a failed write did nothing).
func byRegister(ops []Op, onlyLinearizable bool) map[string][]Op {
	out := map[string][]Op{}
	for _, op := range ops {
		if op.Status == StatusFail || op.Workload == "ttl" || (onlyLinearizable && !Linearizable(op.Storage)) {
			continue
		}
		if op.Workload == "register" && len(op.Keys) != 1 {
			continue
		}
		s := subject(op)
		out[s] = append(out[s], op)
	}
	return out
}

// CheckLinearizable runs porcupine over each register and group of the
// linearizable storages. Possibly-applied writes never return: they may
// take effect at any point after their invocation, or never. The HTML of
// a failing subject is written to outDir when it is not empty.
func CheckLinearizable(ops []Op, timeout time.Duration, outDir string) (checked int, unknown int, anomalies []Anomaly) {
	var end int64
	for _, op := range ops {
		end = max(end, op.Complete)
	}
	never := end + int64(time.Hour)
	subjects := byRegister(ops, true)
	names := make([]string, 0, len(subjects))
	for s := range subjects {
		names = append(names, s)
	}
	sort.Strings(names)
	per := timeout / time.Duration(max(len(names), 1))
	per = max(per, time.Second)
	for _, s := range names {
		var hist []porcupine.Operation
		for _, op := range subjects[s] {
			p := porcupine.Operation{ClientId: op.Worker, Call: op.Invoke, Return: op.Complete}
			switch op.F {
			case "get":
				v := groupValue(op)
				p.Input, p.Output = regInput{f: "get"}, regOutput{value: v}
			default:
				p.Input, p.Output = regInput{f: op.F, value: op.Value}, regOutput{}
			}
			if op.Status == StatusInfo {
				p.Return = never
			}
			hist = append(hist, p)
		}
		checked++
		res, info := porcupine.CheckOperationsVerbose(registerModel, hist, per)
		switch res {
		case porcupine.Ok:
		case porcupine.Unknown:
			unknown++
		default:
			a := Anomaly{Check: "linearizability", Detail: fmt.Sprintf("%s: no linearization of %d operations", s, len(hist))}
			if outDir != "" && len(anomalies) < 20 {
				path := filepath.Join(outDir, "linearizability-"+safeName(s)+".html")
				if err := porcupine.VisualizePath(registerModel, info, path); err == nil {
					a.Visualization = path
				}
			}
			anomalies = append(anomalies, a)
		}
	}
	return checked, unknown, anomalies
}

func safeName(s string) string {
	return strings.NewReplacer("|", "_", "/", "_").Replace(s)
}

// CheckTorn reports group reads whose keys disagree: a multi-key Set or
// Delete was seen half applied.
func CheckTorn(ops []Op) []Anomaly {
	var out []Anomaly
	for _, op := range ops {
		if op.F == "get" && op.Status == StatusOK && op.Workload == "group" && groupValue(op) == tornMarker {
			out = append(out, Anomaly{Check: "atomic-group", Detail: fmt.Sprintf("op %d on %s %s read %v", op.ID, op.Node, op.Storage, op.Read)})
		}
	}
	return out
}

// CheckLostWrites compares each register's final value (read after the
// cluster healed and converged, recorded as workload "final") with the
// acknowledged writes: the final value must come from a write that no
// acknowledged write or delete follows in real time. Absent is explained by
// a delete no acknowledged set follows, or by no acknowledged set at all.
func CheckLostWrites(ops []Op, final map[string]map[string]string) []Anomaly {
	var out []Anomaly
	type w struct {
		f                string
		invoke, complete int64
		ok               bool
	}
	writes := map[string]map[string][]w{} // storage -> key -> writes
	byValue := map[string]map[string]w{}  // storage|key -> value -> write
	for _, op := range ops {
		if (op.Workload != "register" && op.Workload != "group") || op.F == "get" || op.Status == StatusFail {
			continue
		}
		c := op.Complete
		if op.Status == StatusInfo {
			c = math.MaxInt64
		}
		for _, k := range op.Keys {
			if writes[op.Storage] == nil {
				writes[op.Storage] = map[string][]w{}
			}
			x := w{f: op.F, invoke: op.Invoke, complete: c, ok: op.Status == StatusOK}
			writes[op.Storage][k] = append(writes[op.Storage][k], x)
			if op.F == "set" {
				id := op.Storage + "|" + k
				if byValue[id] == nil {
					byValue[id] = map[string]w{}
				}
				byValue[id][op.Value] = x
			}
		}
	}
	for storage, keys := range writes {
		for key, ws := range keys {
			got, present := final[storage][key]
			followedByAck := func(x w, f string) bool {
				for _, y := range ws {
					if y.ok && y.invoke > x.complete && (f == "" || y.f == f) {
						return true
					}
				}
				return false
			}
			if present {
				x, ok := byValue[storage+"|"+key][got]
				switch {
				case !ok:
					out = append(out, Anomaly{Check: "lost-write", Detail: fmt.Sprintf("%s %s: final value %q was never written", storage, key, got)})
				case followedByAck(x, ""):
					out = append(out, Anomaly{Check: "lost-write", Detail: fmt.Sprintf("%s %s: final value %q, but an acknowledged write started after it completed", storage, key, got)})
				}
				continue
			}
			explained, anyAckSet := false, false
			for _, y := range ws {
				anyAckSet = anyAckSet || (y.ok && y.f == "set")
				if y.f == "del" && !followedByAck(y, "set") {
					explained = true
				}
			}
			if anyAckSet && !explained {
				out = append(out, Anomaly{Check: "lost-write", Detail: fmt.Sprintf("%s %s: absent at the end, but an acknowledged set follows every delete", storage, key)})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Detail < out[j].Detail })
	return out
}

// CheckTTL compares TTL reads with the deadlines: a value read whose
// invocation came more than skew after its deadline was served expired
// (any storage); on linearizable storages a key whose set was acknowledged
// before the read began must be present when the read returned more than
// skew before the deadline.
func CheckTTL(ops []Op, skew time.Duration) (reads int, anomalies []Anomaly) {
	type set struct {
		value         string
		deadline, ack int64
		ok            bool
	}
	sets := map[string]set{}
	for _, op := range ops {
		if op.Workload == "ttl" && op.F == "set" && op.Status != StatusFail {
			sets[op.Storage+"|"+op.Keys[0]] = set{value: op.Value, deadline: op.Deadline, ack: op.Complete, ok: op.Status == StatusOK}
		}
	}
	sk := int64(skew)
	for _, op := range ops {
		if op.Workload != "ttl" || op.F != "get" || op.Status != StatusOK {
			continue
		}
		s, ok := sets[op.Storage+"|"+op.Keys[0]]
		if !ok {
			continue
		}
		reads++
		got, present := op.Read[op.Keys[0]]
		switch {
		case present && got != s.value:
			anomalies = append(anomalies, Anomaly{Check: "ttl", Detail: fmt.Sprintf("op %d %s %s: read %q, the only write was %q", op.ID, op.Storage, op.Keys[0], got, s.value)})
		case present && op.Invoke > s.deadline+sk:
			anomalies = append(anomalies, Anomaly{Check: "ttl", Detail: fmt.Sprintf("op %d %s %s on %s: read %s after its deadline", op.ID, op.Storage, op.Keys[0], op.Node, time.Duration(op.Invoke-s.deadline))})
		case !present && Linearizable(op.Storage) && s.ok && s.ack < op.Invoke && op.Complete < s.deadline-sk:
			anomalies = append(anomalies, Anomaly{Check: "ttl", Detail: fmt.Sprintf("op %d %s %s on %s: absent %s before its deadline though its set was acknowledged", op.ID, op.Storage, op.Keys[0], op.Node, time.Duration(s.deadline-op.Complete))})
		}
	}
	return reads, anomalies
}

// writeAnomalies writes the anomalies as text for the run directory.
func writeAnomalies(path string, as []Anomaly) {
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, "%s: %s", a.Check, a.Detail)
		if a.Visualization != "" {
			fmt.Fprintf(&b, " (%s)", a.Visualization)
		}
		b.WriteByte('\n')
	}
	_ = os.WriteFile(path, []byte(b.String()), 0o644)
}
