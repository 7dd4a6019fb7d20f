package wire

// The catalog stream: a stream the agent opens on its connection once it
// has registered, to keep its replica of the service catalog (the one its
// DNS server answers from) current. Its first frame is CatalogWatch with
// the index of the replica the agent holds (0 for none); the server
// answers with one CatalogSnapshot (the whole catalog) when it cannot
// bring that index up to date with a delta (0, or older than the deltas
// it keeps), else with one CatalogDelta (possibly empty, at the index the
// agent holds, when nothing changed), and then with one CatalogDelta per
// change, each taking the replica from the index of the previous frame
// to its own. A server that falls behind (a slow link) does not queue
// every change: its next delta covers all of them at once; one that no
// longer has the changes since the last frame sends a CatalogSnapshot
// again. The stream lasts as long as the connection; either side ends it
// by resetting it (the agent never closes its side: the server takes
// that as the end). A server resets a stream it failed to serve with
// error code 2, which the agent retries.
//
// The catalog travels in the registry's binary encoding
// (registry.Snapshot.MarshalBinary, registry.Delta.MarshalBinary): the
// wire carries the bytes without reading them, so that this package stays
// free of the registry's types, and the agent checks them with the
// registry's decoders (which refuse bad bytes with an error, never a
// panic) before it applies them. Index repeats the index the bytes
// encode, for the logs and for a receiver to check.
//
// These frames came after Version 3 without a new version: only an agent
// opens the stream, and a server built before them resets it (an unknown
// frame type on a module download stream); the agent reports that server
// as too old to replicate the catalog and serves its replica from disk.

// CatalogWatch is the catalog stream's first frame, from the agent.
type CatalogWatch struct {
	Index uint64 `json:"Index"` // the agent's replica index; 0 = it holds none
}

// CatalogSnapshot is the whole catalog, server to agent.
type CatalogSnapshot struct {
	Index   uint64 `json:"Index"`
	Catalog []byte `json:"Catalog"` // registry.Snapshot.MarshalBinary
}

// CatalogDelta takes the agent's replica from the previous frame's index
// to Index, server to agent.
type CatalogDelta struct {
	Index uint64 `json:"Index"`
	Delta []byte `json:"Delta"` // registry.Delta.MarshalBinary
}
