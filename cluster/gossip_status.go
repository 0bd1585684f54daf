package cluster

// withGossip adds what gossip knows of each member. Until gossip
// membership exists in this package it returns members unchanged.
func (m *Monitor) withGossip(members []MemberStatus) []MemberStatus { return members }
