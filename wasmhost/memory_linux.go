package wasmhost

import "syscall"

// reserve maps n bytes of address space, readable and writable, committed
// only as pages are touched (MAP_NORESERVE: no swap is reserved for it).
func reserve(n uint64) ([]byte, bool) {
	if n == 0 || n > maxWasmBytes {
		return nil, false
	}
	b, err := syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return nil, false
	}
	return b, true
}

func unreserve(b []byte) { _ = syscall.Munmap(b) }
