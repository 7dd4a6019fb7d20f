// Package boltcheck inspects a bbolt file's header before bbolt opens it.
//
// bbolt maps the file into memory and trusts its meta page: a file cut
// short (a crash mid-copy, a full disk, a bad restore) makes the process
// die of SIGBUS on first access, which no recover can catch; a damaged
// page makes bbolt panic, sometimes in a goroutine of its own (the
// freelist rebuild of NoFreelistSync), where no recover reaches either.
// Preflight reads the two meta pages itself, then walks every page
// reachable from the root (walk.go: ids, flags, element bounds, inline
// buckets; every read bounds-checked), and refuses such a file with an
// error that names it. It must not write, and must not trust any byte
// it reads.
package boltcheck
