package registry

import (
	"encoding/hex"
	"net/netip"
)

// parseEndpointAddr parses an Endpoint.Address into the form DNS answers use:
// IPv4-mapped IPv6 addresses become IPv4 and zones are dropped. It reports
// false for anything that is not an IP address.
func parseEndpointAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// hexLabel is Consul's "addr" label for a: IPv4 as 8 hex digits, IPv6 as 32.
func hexLabel(a netip.Addr) string {
	if a.Is4() {
		b := a.As4()
		return hex.EncodeToString(b[:])
	}
	b := a.As16()
	return hex.EncodeToString(b[:])
}

// parseHexLabel is the inverse of hexLabel. Upper- and lowercase digits are
// accepted; any other length or character is rejected.
func parseHexLabel(label string) (netip.Addr, bool) {
	switch len(label) {
	case 2 * 4:
		var b [4]byte
		if _, err := hex.Decode(b[:], []byte(label)); err != nil {
			return netip.Addr{}, false
		}
		return netip.AddrFrom4(b), true
	case 2 * 16:
		var b [16]byte
		if _, err := hex.Decode(b[:], []byte(label)); err != nil {
			return netip.Addr{}, false
		}
		return netip.AddrFrom16(b), true
	default:
		return netip.Addr{}, false
	}
}
