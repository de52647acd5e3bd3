// Package freeport finds free loopback ports for servers that a test starts as separate
// processes (etcd, kube-apiserver, the built keyport), which must bind their own ports.
// The in-process harness binds its listeners up front instead and needs none of this.
package freeport

import (
	"net"
	"testing"
)

// Ports returns n distinct free loopback ports. The listeners are held until every port
// is chosen, so the kernel does not hand out one port twice; they are released before
// the caller's process binds them, so another process may take one first, which callers
// handle by retrying on a bind failure.
func Ports(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Addr returns one free loopback address, host:port.
func Addr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
