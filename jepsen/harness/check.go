package harness

import (
	"fmt"
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

// regValue is a register's content: a value, or absent. An empty value is
// present: "" never stands for absent.
type regValue struct {
	v  string
	ok bool
}

func (r regValue) String() string {
	if !r.ok {
		return "absent"
	}
	return fmt.Sprintf("%q", r.v)
}

// regInput and regOutput are the register model's operations.
type regInput struct {
	f     string
	value string
}

type regOutput struct{ read regValue }

// registerModel is a register per key that set, del and get act on; values
// are unique, so a read names the write it saw.
var registerModel = porcupine.Model{
	Init: func() any { return regValue{} },
	Step: func(state, input, output any) (bool, any) {
		in := input.(regInput)
		switch in.f {
		case "set":
			return true, regValue{v: in.value, ok: true}
		case "del":
			return true, regValue{}
		default:
			return output.(regOutput).read == state.(regValue), state
		}
	},
	Equal: func(a, b any) bool { return a == b },
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		switch in.f {
		case "get":
			return "get() -> " + output.(regOutput).read.String()
		case "set":
			return fmt.Sprintf("set(%q)", in.value)
		}
		return "del()"
	},
	DescribeState: func(s any) string { return s.(regValue).String() },
}

// groupValue reduces a read of keys to one register value; torn is true
// when the keys disagree (no state explains that).
func groupValue(op Op) (r regValue, torn bool) {
	for i, k := range op.Keys {
		v, ok := op.Read[k]
		got := regValue{v: v, ok: ok}
		if i == 0 {
			r = got
		} else if got != r {
			return regValue{}, true
		}
	}
	return r, false
}

// subject is what one register history is about: a key of a storage, or
// a group (its keys move together).
func subject(op Op) string {
	if op.Workload == "group" {
		return op.Storage + "|" + strings.TrimSuffix(op.Keys[0], "/a")
	}
	return op.Storage + "|" + op.Keys[0]
}

// byRegister splits register and group operations per subject, dropping
// failed ones (a failed read saw nothing; a failed write did nothing).
func byRegister(ops []Op, onlyLinearizable bool) map[string][]Op {
	out := map[string][]Op{}
	for _, op := range ops {
		if op.Status == StatusFail || op.Workload == WorkloadTTL || op.Workload == WorkloadFill || (onlyLinearizable && !Linearizable(op.Storage)) {
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

// setAside drops the writes of unknown outcome whose value no successful
// read returned. That changes no verdict: in a linearization where such a
// write takes effect, no read falls between it and the next write (any
// read there would have returned its value), so removing it leaves a
// linearization of the rest; and a write of unknown outcome may always
// never take effect. It spares porcupine the choice of placing each one,
// which is what made it give up on keys with many of them.
func setAside(hist []Op) (kept []Op, unknown, dropped int) {
	seen := map[string]bool{}
	for _, op := range hist {
		if op.F == "get" && op.Status == StatusOK {
			for _, v := range op.Read {
				seen[v] = true
			}
		}
	}
	for _, op := range hist {
		if op.Status == StatusInfo {
			unknown++
			if op.F == "set" && !seen[op.Value] {
				dropped++
				continue
			}
		}
		kept = append(kept, op)
	}
	return kept, unknown, dropped
}

// LinResult is what CheckLinearizable found.
type LinResult struct {
	// Checked counts the register and group histories checked; TimedOut
	// those porcupine gave up on (each is also an anomaly).
	Checked, TimedOut int
	Anomalies         []Anomaly
}

// CheckLinearizable runs porcupine over each register and group of the
// linearizable storages. Possibly-applied writes never return: they may
// take effect at any point after their invocation, or never. timeout is
// the budget of all subjects together (each gets its share, at least a
// second or the whole budget if smaller); a subject porcupine cannot decide
// within its share is a failing verdict of its own, never a pass. The HTML
// of a failing subject is written to outDir when it is not empty. A subject
// that evictions may have touched is checked with evictModel, those
// evictions among its operations (check_evict.go).
func CheckLinearizable(ops []Op, evictions []Eviction, timeout time.Duration, outDir string) LinResult {
	var res LinResult
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
	per := max(timeout/time.Duration(max(len(names), 1)), min(timeout, time.Second))
	for _, s := range names {
		kept, unknown, dropped := setAside(subjects[s])
		hist := make([]porcupine.Operation, 0, len(kept))
		for _, op := range kept {
			p := porcupine.Operation{ClientId: op.Worker, Call: op.Invoke, Return: op.Complete}
			switch op.F {
			case "get":
				v, torn := groupValue(op)
				if torn {
					v = regValue{v: "<torn read>", ok: true} // matches no state
				}
				p.Input, p.Output = regInput{f: "get"}, regOutput{read: v}
			default:
				p.Input, p.Output = regInput{f: op.F, value: op.Value}, regOutput{}
			}
			if op.Status == StatusInfo {
				p.Return = never
			}
			hist = append(hist, p)
		}
		model := registerModel
		if ev := evictionOps(s, kept, evictions); len(ev) > 0 {
			model, hist = evictModel, append(hist, ev...)
		}
		res.Checked++
		verdict, info := porcupine.CheckOperationsVerbose(model, hist, per)
		switch verdict {
		case porcupine.Ok:
		case porcupine.Unknown:
			res.TimedOut++
			res.Anomalies = append(res.Anomalies, Anomaly{Check: "linearizability-timeout", Detail: fmt.Sprintf(
				"%s: porcupine gave up after %s on %d operations (%d writes of unknown outcome, %d of them never read and set aside): not checked",
				s, per, len(hist), unknown, dropped)})
		default:
			a := Anomaly{Check: "linearizability", Detail: fmt.Sprintf("%s: no linearization of %d operations", s, len(hist))}
			if outDir != "" && len(res.Anomalies) < 20 {
				path := filepath.Join(outDir, "linearizability-"+safeName(s)+".html")
				if err := porcupine.VisualizePath(model, info, path); err == nil {
					a.Visualization = path
				}
			}
			res.Anomalies = append(res.Anomalies, a)
		}
	}
	return res
}

func safeName(s string) string {
	return strings.NewReplacer("|", "_", "/", "_").Replace(s)
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
