package wasmhost

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
)

// ErrMemoryLimit matches (errors.Is) every error about the memory limit: a
// module whose initial memory is over it, and an instance stopped because it
// tried to grow past it.
var ErrMemoryLimit = errors.New("wasmhost: memory limit exceeded")

const (
	pageSize     = 64 << 10
	maxWasmBytes = 1 << 32 // 65536 pages: the most a wasm32 memory can have
)

// smallMemory is the size up to which a linear memory lives in a pooled
// buffer; see linearMemory.
const smallMemory = 1 << 20

// smallMemories are zeroed buffers of capacity smallMemory.
var smallMemories = sync.Pool{New: func() any {
	b := make([]byte, 0, smallMemory)
	return &b
}}

// memoryLimitError is a module whose declared initial memory does not fit the
// limit. It is both ErrInvalidModule (for this job, the module cannot run)
// and ErrMemoryLimit.
type memoryLimitError struct{ need, limit int64 }

func (e *memoryLimitError) Error() string {
	return fmt.Sprintf("wasmhost: invalid module: it needs %s of linear memory at start, over the task's memory limit of %s",
		formatBytes(e.need), formatBytes(e.limit))
}

func (e *memoryLimitError) Is(target error) bool {
	return target == ErrInvalidModule || target == ErrMemoryLimit
}

// CheckMemory reports whether instances of m can start under a memory limit
// of limit bytes (0 = no limit): it fails when the module's declared initial
// memory is larger, with an error matching ErrInvalidModule and
// ErrMemoryLimit. Every mode checks this before instantiating; callers may
// check up front to refuse a task at once.
func (m *Module) CheckMemory(limit int64) error {
	if limit > 0 && m.minMemory > limit {
		return &memoryLimitError{need: m.minMemory, limit: limit}
	}
	return nil
}

// MinMemory returns the module's declared initial linear memory in bytes.
func (m *Module) MinMemory() int64 { return m.minMemory }

// linearMemory is one instance's linear memory, the experimental.LinearMemory
// wazero grows through Reallocate. It enforces the task's memory limit: a grow
// past it fails (memory.grow returns -1, and a Go module dies with "out of
// memory") and is remembered, so the instance's end is reported as a memory
// limit rather than as whatever the module did about it.
//
// A small memory (up to smallMemory, like the tiny module's one page) lives
// in a pooled 1 MiB buffer, cleared and put back when the instance ends: a
// fresh 64 KiB slice per request made the garbage collector a fifth of a tiny
// request's cost, and mapping and unmapping cost more than the rest of it.
// Past smallMemory, where the platform allows (memory_linux.go), the whole
// limit is reserved as address space at once with mmap (MAP_NORESERVE: no
// memory is committed until a page is touched), the contents so far copied in
// once; from then on growing never copies, and the pages go back to the kernel
// the moment the instance ends instead of lingering in Go's heap until a GC
// (a Go module's instance is megabytes). Where mmap is not available, it is a
// Go slice grown like wazero's own.
//
// Free is a no-op: wazero may call it from another goroutine (Runtime.Close)
// while the instance still runs, and unmapping then would crash the agent. The
// runner calls release after the instance has returned.
type linearMemory struct {
	limit uint64 // bytes; at most maxWasmBytes

	mu      sync.Mutex // Reallocate (instance goroutine) vs release
	buf     []byte
	pooled  *[]byte // buf is this smallMemories buffer
	mapped  bool    // buf is an mmap reservation of cap(buf) bytes
	refused atomic.Uint64
	peak    atomic.Uint64
	onFirst func() // called on the first allocation, see instState.onMemory
}

func newLinearMemory(limit int64) *linearMemory {
	l := uint64(maxWasmBytes)
	if limit > 0 && uint64(limit) < l {
		l = uint64(limit)
	}
	return &linearMemory{limit: l}
}

// allocator returns the experimental.MemoryAllocator handing out m. wazero
// allocates at most one memory per instance (WebAssembly 1.0 has one).
func (m *linearMemory) allocator() experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(func(_, max uint64) experimental.LinearMemory {
		if max > 0 && max < m.limit {
			m.limit = max // the module's own declared maximum is smaller
		}
		if m.onFirst != nil {
			m.onFirst()
			m.onFirst = nil
		}
		return m
	})
}

// Reallocate implements experimental.LinearMemory.
func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		m.refused.CompareAndSwap(0, size)
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.buf == nil && size <= smallMemory {
		m.pooled = smallMemories.Get().(*[]byte)
		m.buf = (*m.pooled)[:0]
	}
	if !m.mapped && size > uint64(cap(m.buf)) {
		if b, ok := reserve(m.limit); ok {
			n := copy(b, m.buf)
			m.putPooled()
			m.buf, m.mapped = b[:n], true
		}
	}
	if size > uint64(cap(m.buf)) {
		// Not mapped: grow a Go slice, doubling like append.
		n := make([]byte, size, max(size, 2*uint64(cap(m.buf))))
		copy(n, m.buf)
		m.putPooled()
		m.buf = n
	}
	m.buf = m.buf[:size]
	if size > m.peak.Load() {
		m.peak.Store(size)
	}
	return m.buf
}

// Free implements experimental.LinearMemory; see release.
func (m *linearMemory) Free() {}

// release returns the memory to the system. Only once the instance is done.
func (m *linearMemory) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mapped {
		unreserve(m.buf[:cap(m.buf)])
	}
	m.putPooled()
	m.buf, m.mapped = nil, false
}

// putPooled clears the pooled buffer (as far as it was used: memory never
// shrinks) and returns it to the pool.
func (m *linearMemory) putPooled() {
	if m.pooled == nil {
		return
	}
	b := (*m.pooled)[:cap(*m.pooled)]
	if !m.mapped && len(m.buf) > 0 && &m.buf[:1][0] == &b[0] {
		clear(b[:len(m.buf)])
	} else {
		clear(b[:m.peak.Load()])
	}
	smallMemories.Put(m.pooled)
	m.pooled = nil
}

// formatBytes renders n as "64 MiB", "1.5 MiB" or "512 KiB".
func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d KiB", n>>10)
	}
}
