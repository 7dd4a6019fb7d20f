package edge

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/registry"
)

// A replica of 10,000 endpoints (500 services of 20 instances on 100
// nodes, two tags each) costs the agent a few MB: measured on the heap
// after it is applied, and as agent.db's size.
func TestReplicaOf10000EndpointsCostsAFewMB(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 10,000-endpoint catalog")
	}
	var ins []registry.Instance
	for i := range 10000 {
		node := i % 100
		ins = append(ins, registry.Instance{
			ID: fmt.Sprintf("%08x-1c2d-4e5f-8a9b-%012x/svc-%d/0", i, i, i/20), Service: fmt.Sprintf("svc-%d", i/20), Tags: []string{"prod", fmt.Sprintf("v%d", i%3)},
			Address: fmt.Sprintf("10.%d.%d.%d", node, (i/250)%250, i%250+1), Port: 20000 + i%12000,
			Node: fmt.Sprintf("edge-%d", node), NodeID: fmt.Sprintf("node-%d", node), NodeAddress: fmt.Sprintf("10.%d.0.1", node),
			AllocID: fmt.Sprintf("%08x-1c2d-4e5f-8a9b-%012x", i, i), Health: registry.HealthPassing,
		})
	}
	snap, err := registry.NewSnapshot(1000, ins)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := snap.MarshalBinary()
	var frame bytes.Buffer
	wire.Write(&frame, wire.TypeCatalogSnapshot, wire.CatalogSnapshot{Index: 1000, Catalog: b})
	frameLen, encLen := frame.Len(), len(b)
	snap, ins, b = nil, nil, nil

	dir := t.TempDir()
	l := openTestState(t, dir)
	defer l.close()
	before := heapInUse()
	r := newReplica(l, "edge-1", testLoggerDiscard())
	followAll(t, r, &frame)
	frame = bytes.Buffer{}
	heap := heapInUse() - before
	if got := r.holder.Snapshot().Len(); got != 10000 {
		t.Fatalf("replica holds %d instances", got)
	}
	fi, err := os.Stat(filepath.Join(dir, "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("10,000 endpoints: encoding %d KiB (frame %d KiB), replica heap %.1f MiB, agent.db %.1f MiB",
		encLen>>10, frameLen>>10, float64(heap)/(1<<20), float64(fi.Size())/(1<<20))
	runtime.KeepAlive(r)
	if heap > 16<<20 || fi.Size() > 8<<20 {
		t.Fatalf("a 10,000-endpoint replica costs %d bytes of heap and %d of disk: more than a few MB", heap, fi.Size())
	}
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
