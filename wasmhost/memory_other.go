//go:build !linux

package wasmhost

// reserve is not available here: linear memories are Go slices.
func reserve(uint64) ([]byte, bool) { return nil, false }

func unreserve([]byte) {}
