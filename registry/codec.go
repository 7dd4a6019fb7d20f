package registry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// The byte encoding of snapshots and deltas, for an agent's replica (kept in its
// bbolt file) and the deltas it receives over QUIC. Version 1:
//
//	message  = kind:byte version:byte(1) index:uvarint strings body
//	strings  = n:uvarint { len:uvarint bytes }*n     (ref 0 is "", ref i is the i-th string)
//	instance = id service:ref ntags:uvarint tag:ref* address:ref port:uvarint
//	           node:ref nodeID:ref nodeAddress:ref allocID:ref health:byte   (id, tags: refs;
//	           health's top bit (0x80) marks an unpromoted canary)
//	snapshot = kind 'S'; body = changeIndex:uvarint n:uvarint { instance create:uvarint modify:uvarint }*n
//	           nsvc:uvarint { name:ref index:uvarint }*nsvc  nnode:uvarint { name:ref index:uvarint }*nnode
//	delta    = kind 'D'; body = n:uvarint instance*n ndel:uvarint id:ref*ndel
//
// Repeated strings (service and node names, addresses, tags) are written once.
// Decoders check every count against the bytes left before allocating, every
// reference against the table, and every decoded instance as Apply does: bad
// bytes give an error wrapping ErrBadEncoding, never a panic.
const (
	codecVersion = 1
	kindSnapshot = 'S'
	kindDelta    = 'D'
)

// ErrBadEncoding wraps every decoding error.
var ErrBadEncoding = errors.New("registry: bad encoding")

// AppendBinary appends the encoding of s to b (encoding.BinaryAppender).
func (s *Snapshot) AppendBinary(b []byte) ([]byte, error) {
	ids := slices.Sorted(maps.Keys(s.byID))
	var st stringTable
	for _, id := range ids {
		st.addInstance(&s.byID[id].Instance)
	}
	for _, name := range s.svcNames {
		st.add(name)
	}
	b = append(b, kindSnapshot, codecVersion)
	b = binary.AppendUvarint(b, s.index)
	b = st.append(b)
	b = binary.AppendUvarint(b, s.changed)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		e := s.byID[id]
		b = st.appendInstance(b, &e.Instance)
		b = binary.AppendUvarint(b, e.CreateIndex)
		b = binary.AppendUvarint(b, e.ModifyIndex)
	}
	b = binary.AppendUvarint(b, uint64(len(s.svcNames)))
	for _, name := range s.svcNames {
		b = binary.AppendUvarint(b, st.ref(name))
		b = binary.AppendUvarint(b, s.services[name].index)
	}
	b = binary.AppendUvarint(b, uint64(len(s.nodeList)))
	for _, name := range s.nodeList {
		b = binary.AppendUvarint(b, st.ref(name))
		b = binary.AppendUvarint(b, s.nodes[name].index)
	}
	return b, nil
}

// MarshalBinary returns the encoding of s.
func (s *Snapshot) MarshalBinary() ([]byte, error) { return s.AppendBinary(nil) }

// DecodeSnapshot decodes an encoded snapshot, restoring every index.
func DecodeSnapshot(data []byte) (*Snapshot, error) {
	d := decoder{b: data}
	index, err := d.header(kindSnapshot)
	if err != nil {
		return nil, err
	}
	changed := d.uvarint()
	if d.err == nil && changed > index {
		d.fail("change index %d above index %d", changed, index)
	}
	n := d.count()
	type indexes struct{ create, modify uint64 }
	idx := make(map[string]indexes, n)
	ups := make([]Instance, 0, n)
	for range n {
		in := d.instance()
		c, m := d.uvarint(), d.uvarint()
		if d.err == nil && (c > m || m > index) {
			d.fail("instance %q: indexes %d/%d at snapshot index %d", in.ID, c, m, index)
		}
		if d.err != nil {
			return nil, d.err
		}
		if d.err == nil && m > changed {
			d.fail("instance %q: modified at %d, after the last change %d", in.ID, m, changed)
		}
		if d.err != nil {
			return nil, d.err
		}
		idx[in.ID] = indexes{c, m}
		ups = append(ups, in)
	}
	groupIdx := func(kind string) map[string]uint64 {
		n := d.count()
		out := make(map[string]uint64, n)
		for range n {
			name, i := d.str(), d.uvarint()
			if d.err == nil && i > index {
				d.fail("%s %q: index %d above %d", kind, name, i, index)
			}
			out[name] = i
		}
		return out
	}
	svcIdx := groupIdx("service")
	nodeIdx := groupIdx("node")
	if err := d.end(); err != nil {
		return nil, err
	}
	if len(ups) == 0 && index == 0 && changed == 0 {
		return emptySnapshot, nil
	}
	s, err := emptySnapshot.apply(Delta{Index: index, Upserts: ups}, func(id string) (uint64, uint64) {
		return idx[id].create, idx[id].modify
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadEncoding, err)
	}
	if len(svcIdx) != len(s.services) || len(nodeIdx) != len(s.nodes) {
		return nil, fmt.Errorf("%w: service or node table does not match the instances", ErrBadEncoding)
	}
	// The snapshot and its groups were built by this call: not published yet.
	s.changed = changed
	for name, g := range s.services {
		i, ok := svcIdx[name]
		if !ok {
			return nil, fmt.Errorf("%w: service %q has no index", ErrBadEncoding, name)
		}
		g.index = i
	}
	for name, g := range s.nodes {
		i, ok := nodeIdx[name]
		if !ok {
			return nil, fmt.Errorf("%w: node %q has no index", ErrBadEncoding, name)
		}
		g.index = i
	}
	return s, nil
}

// AppendBinary appends the encoding of d to b.
func (d Delta) AppendBinary(b []byte) ([]byte, error) {
	if err := validateDelta(d); err != nil {
		return b, err
	}
	var st stringTable
	for i := range d.Upserts {
		st.addInstance(&d.Upserts[i])
	}
	for _, id := range d.Deletes {
		st.add(id)
	}
	b = append(b, kindDelta, codecVersion)
	b = binary.AppendUvarint(b, d.Index)
	b = st.append(b)
	b = binary.AppendUvarint(b, uint64(len(d.Upserts)))
	for i := range d.Upserts {
		b = st.appendInstance(b, &d.Upserts[i])
	}
	b = binary.AppendUvarint(b, uint64(len(d.Deletes)))
	for _, id := range d.Deletes {
		b = binary.AppendUvarint(b, st.ref(id))
	}
	return b, nil
}

// MarshalBinary returns the encoding of d; it fails if d is invalid.
func (d Delta) MarshalBinary() ([]byte, error) { return d.AppendBinary(nil) }

// DecodeDelta decodes an encoded delta and validates it as Apply would.
func DecodeDelta(data []byte) (Delta, error) {
	d := decoder{b: data}
	index, err := d.header(kindDelta)
	if err != nil {
		return Delta{}, err
	}
	out := Delta{Index: index}
	if n := d.count(); n > 0 {
		out.Upserts = make([]Instance, 0, n)
		for range n {
			out.Upserts = append(out.Upserts, d.instance())
		}
	}
	if n := d.count(); n > 0 {
		out.Deletes = make([]string, 0, n)
		for range n {
			out.Deletes = append(out.Deletes, d.str())
		}
	}
	if err := d.end(); err != nil {
		return Delta{}, err
	}
	if err := validateDelta(out); err != nil {
		return Delta{}, fmt.Errorf("%w: %w", ErrBadEncoding, err)
	}
	return out, nil
}

// stringTable numbers distinct strings in first-use order (ref 0 is "").
type stringTable struct {
	refs map[string]uint64
	list []string
}

func (t *stringTable) add(s string) {
	if s == "" {
		return
	}
	if t.refs == nil {
		t.refs = map[string]uint64{}
	}
	if _, ok := t.refs[s]; !ok {
		t.list = append(t.list, s)
		t.refs[s] = uint64(len(t.list))
	}
}

func (t *stringTable) ref(s string) uint64 { return t.refs[s] }

func (t *stringTable) addInstance(in *Instance) {
	for _, s := range [...]string{in.ID, in.Service, in.Address, in.Node, in.NodeID, in.NodeAddress, in.AllocID} {
		t.add(s)
	}
	for _, tag := range in.Tags {
		t.add(tag)
	}
}

func (t *stringTable) append(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(t.list)))
	for _, s := range t.list {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func (t *stringTable) appendInstance(b []byte, in *Instance) []byte {
	b = binary.AppendUvarint(b, t.ref(in.ID))
	b = binary.AppendUvarint(b, t.ref(in.Service))
	b = binary.AppendUvarint(b, uint64(len(in.Tags)))
	for _, tag := range in.Tags {
		b = binary.AppendUvarint(b, t.ref(tag))
	}
	b = binary.AppendUvarint(b, t.ref(in.Address))
	b = binary.AppendUvarint(b, uint64(in.Port))
	b = binary.AppendUvarint(b, t.ref(in.Node))
	b = binary.AppendUvarint(b, t.ref(in.NodeID))
	b = binary.AppendUvarint(b, t.ref(in.NodeAddress))
	b = binary.AppendUvarint(b, t.ref(in.AllocID))
	h := byte(in.Health)
	if in.Canary {
		h |= canaryBit
	}
	return append(b, h)
}

// canaryBit is set in an instance's health byte when it is an unpromoted canary.
const canaryBit = 0x80

// decoder reads the encoding; the first error sticks and every later read
// returns zero values, so callers check d.err once per loop.
type decoder struct {
	b       []byte
	strings []string
	err     error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrBadEncoding, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) header(kind byte) (uint64, error) {
	if len(d.b) < 2 {
		return 0, fmt.Errorf("%w: %d bytes", ErrBadEncoding, len(d.b))
	}
	if d.b[0] != kind {
		return 0, fmt.Errorf("%w: kind %q, want %q", ErrBadEncoding, d.b[0], kind)
	}
	if d.b[1] != codecVersion {
		return 0, fmt.Errorf("%w: version %d, this build reads %d", ErrBadEncoding, d.b[1], codecVersion)
	}
	d.b = d.b[2:]
	index := d.uvarint()
	n := d.count()
	d.strings = make([]string, 0, n)
	for range n {
		l := d.count()
		if d.err != nil {
			break
		}
		d.strings = append(d.strings, string(d.b[:l]))
		d.b = d.b[l:]
	}
	return index, d.err
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that must not exceed the bytes left (every element
// takes at least one byte), so no allocation can outgrow the input.
func (d *decoder) count() int {
	v := d.uvarint()
	if d.err == nil && v > uint64(len(d.b)) {
		d.fail("count %d exceeds the %d bytes left", v, len(d.b))
		return 0
	}
	return int(v)
}

func (d *decoder) str() string {
	r := d.uvarint()
	switch {
	case d.err != nil || r == 0:
		return ""
	case r > uint64(len(d.strings)):
		d.fail("string ref %d of %d", r, len(d.strings))
		return ""
	}
	return d.strings[r-1]
}

func (d *decoder) instance() Instance {
	var in Instance
	in.ID = d.str()
	in.Service = d.str()
	if n := d.count(); n > 0 {
		in.Tags = make([]string, 0, n)
		for range n {
			in.Tags = append(in.Tags, d.str())
		}
	}
	in.Address = d.str()
	port := d.uvarint()
	if port > 65535 {
		d.fail("port %d", port)
	}
	in.Port = int(port)
	in.Node = d.str()
	in.NodeID = d.str()
	in.NodeAddress = d.str()
	in.AllocID = d.str()
	if d.err == nil {
		if len(d.b) == 0 {
			d.fail("truncated instance")
		} else {
			in.Health, in.Canary = Health(d.b[0]&^canaryBit), d.b[0]&canaryBit != 0
			d.b = d.b[1:]
		}
	}
	if d.err == nil {
		if err := validateInstance(&in); err != nil {
			d.err = fmt.Errorf("%w: %w", ErrBadEncoding, err)
		}
	}
	return in
}

func (d *decoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}
