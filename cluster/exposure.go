package cluster

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"
)

// A node refuses to listen where other hosts can reach it without the
// authentication that guards each listener: the cluster port without TLS
// lets anyone write, clear and take over raft; gossip without a key lets
// anyone join and be made a voter. cluster.insecure accepts that on
// purpose. Loopback-only nodes (tests, a cluster on one host) need
// neither.

// resolveTimeout bounds the lookup of a host name in a bind or advertise
// address.
const resolveTimeout = 2 * time.Second

// exposure is a listener reachable beyond loopback without its guard.
type exposure struct {
	field, addr string
	// missing names the guard, stake what anyone can do without it, and
	// fix how to add it.
	missing, stake, fix string
}

// problem is the refusal, naming the fix and the opt-out.
func (e exposure) problem() string {
	return fmt.Sprintf("%q is reachable from other hosts without %s: %s. %s; or set cluster.insecure: true "+
		"(KVNODE_CLUSTER_INSECURE=true) to accept the risk", e.addr, e.missing, e.stake, e.fix)
}

// exposures lists the listeners other hosts can reach unguarded.
func (c *Config) exposures() []exposure {
	var out []exposure
	if !c.TLS.Enabled() {
		if f, a, ok := firstExposed("raft.bind", c.Raft.Bind, "raft.advertise", c.Raft.Advertise); ok {
			out = append(out, exposure{field: f, addr: a, missing: "TLS",
				stake: "anyone who reaches it can write, clear and take over this node's raft log",
				fix:   "Create a cluster CA and a certificate per node (kvnode tls ca; kvnode tls cert NODE --host HOST) and set cluster.tls.ca, cert and key"})
		}
	}
	if c.Gossip.Enabled() && !c.Gossip.Encrypted() {
		if f, a, ok := firstExposed("gossip.bind", c.Gossip.Bind, "gossip.advertise", c.Gossip.Advertise); ok {
			out = append(out, exposure{field: f, addr: a, missing: "a gossip key",
				stake: "anyone who reaches it can join the cluster and be made a voter",
				fix:   "Create a key with kvnode keygen and set cluster.gossip.encrypt_key (or encrypt_key_file)"})
		}
	}
	return out
}

// firstExposed returns the bind address if it is not loopback-only, else
// the advertise address if that is not.
func firstExposed(bindField, bind, advField, adv string) (field, addr string, exposed bool) {
	switch {
	case !loopbackOnly(bind):
		return bindField, bind, true
	case adv != bind && !loopbackOnly(adv):
		return advField, adv, true
	}
	return "", "", false
}

// loopbackOnly reports whether host:port can only be reached from this
// host: a loopback IP, or a name that resolves to loopback IPs only. An
// empty or unspecified host (all interfaces), a name that does not resolve
// and any other address count as reachable. A malformed address counts as
// loopback here: Validate reports it under its own field.
func loopbackOnly(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return true
	}
	if host == "" {
		return false
	}
	if ip := net.ParseIP(strings.SplitN(host, "%", 2)[0]); ip != nil {
		return ip.IsLoopback()
	}
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return false
		}
	}
	return true
}

// validateExposure refuses unguarded listeners unless cluster.insecure.
func (c *Config) validateExposure(bad func(field, format string, args ...any)) {
	if c.Insecure {
		return
	}
	for _, e := range c.exposures() {
		bad(e.field, "%s", e.problem())
	}
}

// warnInsecure logs, at every start, each unguarded listener that
// cluster.insecure lets through.
func (n *Node) warnInsecure() {
	if !n.cfg.Insecure {
		return
	}
	for _, e := range n.cfg.exposures() {
		n.logger.Warn("INSECURE (cluster.insecure is set): cluster."+e.field+" is reachable from other hosts without "+e.missing,
			"address", e.addr, "risk", e.stake, "fix", e.fix)
	}
}
