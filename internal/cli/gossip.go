package cli

import (
	"net"
	"strings"
)

// DialableRPC is a node's RPC address as gossip advertises it, made
// dialable: a wildcard listen host (0.0.0.0) is replaced by the host of the
// node's raft address. "" when it cannot be dialled (port 0, garbage).
func DialableRPC(rpcAddr, raftAddr string) string {
	scheme, hostPort, ok := strings.Cut(rpcAddr, "://")
	if !ok || scheme != "tcp" {
		return rpcAddr // unix sockets are only useful on the same host anyway
	}
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil || port == "0" {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		rh, _, err := net.SplitHostPort(raftAddr)
		if err != nil {
			return ""
		}
		host = rh
	}
	return "tcp://" + net.JoinHostPort(host, port)
}
