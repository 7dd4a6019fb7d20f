package sched

import (
	"slices"

	"github.com/strata-run/strata/spec"
)

// volumeAsk is one host volume a group needs on its node: by the name the
// agent declares (a volume's Source), read-write if any of the group's
// volumes of that source is, with the interned reasons of a node that
// lacks it or offers it read-only.
type volumeAsk struct {
	source    string
	readWrite bool
	missing   reasonID
	readOnly  reasonID
}

// volumeAsks lists the host volumes of g, each source once, in
// declaration order, and interns their reasons ("missing host volume
// NAME", "host volume NAME is read-only").
func (p *placer) volumeAsks(g *spec.Group) []volumeAsk {
	var out []volumeAsk
	for _, v := range g.Volumes {
		if v == nil || v.Type != spec.VolumeTypeHost {
			continue
		}
		k := slices.IndexFunc(out, func(a volumeAsk) bool { return a.source == v.Source })
		if k < 0 {
			out = append(out, volumeAsk{source: v.Source,
				missing:  p.reasons.intern("missing host volume " + v.Source),
				readOnly: p.reasons.intern("host volume " + v.Source + " is read-only")})
			k = len(out) - 1
		}
		out[k].readWrite = out[k].readWrite || !v.ReadOnly
	}
	return out
}

// volumeReason checks that n offers every host volume of asks, and
// offers it writable where the group asks to write.
func volumeReason(n *Node, asks []volumeAsk) reasonID {
	for _, a := range asks {
		hv, ok := n.HostVolumes[a.source]
		switch {
		case !ok:
			return a.missing
		case a.readWrite && hv.ReadOnly:
			return a.readOnly
		}
	}
	return feasible
}
