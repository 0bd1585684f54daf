package cluster

import (
	"fmt"
	"strings"
	"testing"
)

func cands(ids ...string) []candidate {
	out := make([]candidate, len(ids))
	for i, id := range ids {
		out[i] = candidate{ID: id, Raft: "10.0.0." + fmt.Sprint(i+1) + ":7000", Expect: 3}
	}
	return out
}

func agree(cs []candidate, digest string) []candidate {
	for i := range cs {
		cs[i].Set = digest
	}
	return cs
}

func TestBootstrap_Decision(t *testing.T) {
	// Too few: no proposal.
	if _, d, r := decideBootstrap("a", 3, cands("a", "b")); d != "" || !strings.Contains(r, "waiting for 3 nodes, 2") {
		t.Fatalf("two of three: digest %q reason %q", d, r)
	}
	// Enough, but the others have not proposed the same set yet.
	servers, d, r := decideBootstrap("a", 3, cands("c", "a", "b"))
	if d == "" || !strings.Contains(r, "propose the same set") || len(servers) != 3 || servers[0].ID != "a" || servers[2].ID != "c" {
		t.Fatalf("three without agreement: %v %q %q", servers, d, r)
	}
	// Everyone proposes it: go.
	if _, d2, r := decideBootstrap("a", 3, agree(cands("c", "a", "b"), d)); d2 != d || r != "" {
		t.Fatalf("three in agreement: digest %q (want %q) reason %q", d2, d, r)
	}
	// The same ids at other raft addresses are another set.
	moved := agree(cands("c", "a", "b"), d)
	moved[0].Raft = "10.9.9.9:7000"
	if _, d3, _ := decideBootstrap("a", 3, moved); d3 == d {
		t.Fatal("digest ignores raft addresses")
	}
}

func TestBootstrap_OnlyTheLowestIDsBootstrap(t *testing.T) {
	all := cands("a", "b", "c", "d")
	_, d, _ := decideBootstrap("a", 3, all)
	all = agree(all, d)
	if _, _, r := decideBootstrap("d", 3, all); !strings.Contains(r, "not among the lowest ids") {
		t.Fatalf("d bootstraps: %q", r)
	}
	if _, _, r := decideBootstrap("b", 3, all); r != "" {
		t.Fatalf("b may not bootstrap: %q", r)
	}
	// d does not see a yet (gossip has not spread), so it proposes
	// {b,c,d}; b and c, who see a, propose {a,b,c}: d must wait.
	partial := []candidate{all[1], all[2], all[3]}
	partial[2].Set = ""
	if _, _, r := decideBootstrap("d", 3, partial); !strings.Contains(r, "propose the same set") {
		t.Fatalf("d with a partial view: %q", r)
	}
}

func TestBootstrap_ExistingClusterOrMismatchBlocks(t *testing.T) {
	cs := cands("a", "b", "c", "d")
	cs[3].State = true
	if _, d, r := decideBootstrap("a", 3, cs); d != "" || !strings.Contains(r, "d already belongs to a cluster") {
		t.Fatalf("member with state: %q %q", d, r)
	}
	// State wins over a mismatch: the member's cluster is the answer.
	cs[0].Expect = 5
	if _, _, r := decideBootstrap("b", 3, cs); !strings.Contains(r, "d already belongs") {
		t.Fatalf("state and mismatch: %q", r)
	}
	// A node without bootstrap_expect neither counts nor blocks.
	cs = cands("a", "b", "c", "d")
	cs[0].Expect = 0
	if _, _, r := decideBootstrap("b", 3, cs); strings.Contains(r, "expects") || strings.Contains(r, "waiting for 3") {
		t.Fatalf("joiner without bootstrap_expect: %q", r)
	}
	cs = cands("a", "b", "c")
	cs[1].Expect = 5
	if _, d, r := decideBootstrap("a", 3, cs); d != "" || !strings.Contains(r, "b expects 5") {
		t.Fatalf("expect mismatch: %q %q", d, r)
	}
}
