// Package netfault makes network faults for tests: a UDP relay between
// one client and one server that can cut the path (drop everything, both
// ways) and heal it, and rebind its upstream socket so the server sees
// the client move to a new address, as after a NAT rebinding.
//
// It exists so that tests of the agent link (QUIC over UDP) can break
// and move the path without root or network namespaces.
package netfault
