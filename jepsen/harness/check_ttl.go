package harness

import (
	"fmt"
	"slices"
	"sort"
	"time"
)

// CheckTTL compares the TTL workload's reads, final reads included, with
// the deadlines. Each TTL key is written once and never deleted, so:
//
//   - a read that began more than the bound after the deadline must not see
//     the key (any storage, any node);
//   - once its set was acknowledged, a read that returned more than the
//     bound before the deadline must see it: on linearizable storages on
//     every node, on local storages on the node that acknowledged the set
//     (read-your-writes), unless that node restarted in between;
//   - a linearizable read that began after the set was acknowledged and
//     found the key gone means it expired: no read that begins after that
//     one returned may see the key again (on local storages: on the node
//     that acknowledged it).
//
// The bound is skew, widened by the largest clock offset the nemesis put
// on a node near the read or the deadline (reads hide keys by the serving
// node's clock and the leader expires them by its own). Values that no
// write produced are CheckReads'.
func CheckTTL(ops []Op, skew time.Duration, faults []Fault) (reads int, anomalies []Anomaly) {
	sets := map[string]*Op{}
	for i := range ops {
		if op := &ops[i]; op.Workload == "ttl" && op.F == "set" {
			sets[op.Storage+"|"+op.Keys[0]] = op
		}
	}
	byKey := map[string][]*Op{}
	for i := range ops {
		op := &ops[i]
		if op.Workload != "ttl" || op.F != "get" || op.Status != StatusOK {
			continue
		}
		id := op.Storage + "|" + op.Keys[0]
		s := sets[id]
		if s == nil {
			continue
		}
		reads++
		byKey[id] = append(byKey[id], op)
		_, present := op.Read[op.Keys[0]]
		bound := int64(skew + clockOffsetNear(faults, op, s.Deadline))
		switch {
		case present && op.Invoke > s.Deadline+bound:
			anomalies = append(anomalies, Anomaly{Check: "ttl", Detail: fmt.Sprintf("op %d %s %s on %s: read %s after its deadline",
				op.ID, op.Storage, op.Keys[0], op.Node, time.Duration(op.Invoke-s.Deadline))})
		case !present && mustSee(s, op, faults) && op.Complete < s.Deadline-bound:
			anomalies = append(anomalies, Anomaly{Check: "ttl", Detail: fmt.Sprintf("op %d %s %s on %s: absent %s before its deadline though its set was acknowledged (through %s)",
				op.ID, op.Storage, op.Keys[0], op.Node, time.Duration(s.Deadline-op.Complete), s.Node)})
		}
	}
	ids := make([]string, 0, len(byKey))
	for id := range byKey {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if a, ok := reappeared(sets[id], byKey[id], faults); ok {
			anomalies = append(anomalies, a)
		}
	}
	return reads, anomalies
}

// mustSee reports whether read r has to find the key of set s: s was
// acknowledged before r began, and r is linearizable or served by the node
// that acknowledged s without a restart in between.
func mustSee(s, r *Op, faults []Fault) bool {
	if s.Status != StatusOK || s.Complete >= r.Invoke {
		return false
	}
	return Linearizable(r.Storage) || (r.Node == s.Node && !restarted(faults, r.Node, s.Complete, r.Complete))
}

// reappeared finds a read that saw a key after an earlier read, which had
// to see it (mustSee) had it not expired, found it gone.
func reappeared(s *Op, reads []*Op, faults []Fault) (Anomaly, bool) {
	var gone *Op
	for _, r := range reads {
		if _, present := r.Read[r.Keys[0]]; !present && mustSee(s, r, faults) && (gone == nil || r.Complete < gone.Complete) {
			gone = r
		}
	}
	if gone == nil {
		return Anomaly{}, false
	}
	for _, r := range reads {
		_, present := r.Read[r.Keys[0]]
		if !present || r.Invoke <= gone.Complete {
			continue
		}
		if !Linearizable(r.Storage) && (r.Node != s.Node || restarted(faults, r.Node, s.Complete, r.Complete)) {
			continue
		}
		return Anomaly{Check: "ttl", Detail: fmt.Sprintf("%s %s reappeared: op %d on %s found it expired (%s after its deadline), then op %d on %s, begun %s later, read it",
			r.Storage, r.Keys[0], gone.ID, gone.Node, time.Duration(gone.Invoke-s.Deadline), r.ID, r.Node, time.Duration(r.Invoke-gone.Complete))}, true
	}
	return Anomaly{}, false
}

// restartKinds are the faults that restart a node's process.
var restartKinds = map[string]bool{NemesisKill: true, NemesisReplace: true, NemesisWipe: true}

// restarted reports whether a fault restarted node between from and to.
func restarted(faults []Fault, node string, from, to int64) bool {
	for _, f := range faults {
		if restartKinds[f.Kind] && (f.Node == node || slices.Contains(f.Also, node)) && f.Start < to && f.End > from {
			return true
		}
	}
	return false
}

// clockOffsetNear is the largest clock offset the nemesis set on any node
// during, or within that offset of, the span from the read to the deadline.
func clockOffsetNear(faults []Fault, r *Op, deadline int64) time.Duration {
	var most time.Duration
	for _, f := range faults {
		off := f.Offset
		if off < 0 {
			off = -off
		}
		if off == 0 {
			continue
		}
		from, to := min(r.Invoke, deadline)-int64(off), max(r.Complete, deadline)+int64(off)
		if f.Start < to && f.End > from {
			most = max(most, off)
		}
	}
	return most
}
