package cluster

// gossipNotSeen is the gossip state of a raft member this node's gossip
// does not know (yet, or any more).
const gossipNotSeen = "not seen"

// withGossip adds what gossip knows of each member, and lists members that
// gossip knows but the raft configuration does not (suffrage "none").
// Without gossip it returns members unchanged.
func (m *Monitor) withGossip(members []MemberStatus) []MemberStatus {
	gm := m.n.GossipMembers()
	if gm == nil {
		return members
	}
	byID := make(map[string]Member, len(gm))
	for _, g := range gm {
		byID[g.ID] = g
	}
	for i := range members {
		g, ok := byID[members[i].ID]
		if !ok {
			members[i].Gossip = gossipNotSeen
			continue
		}
		members[i].Gossip, members[i].RPCAddress = g.State, g.RPCAddr
		delete(byID, g.ID)
	}
	for _, g := range gm { // sorted by id
		if _, extra := byID[g.ID]; extra {
			addr, inc := splitAddr(g.RaftAddr)
			members = append(members, MemberStatus{ID: g.ID, Address: addr, Incarnation: inc, Suffrage: "none",
				Gossip: g.State, RPCAddress: g.RPCAddr, Self: g.ID == m.n.ID()})
		}
	}
	return members
}
