// Package boltcheck inspects a bbolt file's header before bbolt opens it.
//
// bbolt maps the file into memory and trusts its meta page: a file cut
// short (a crash mid-copy, a full disk, a bad restore) makes the process
// die of SIGBUS on first access, which no recover can catch. Preflight
// reads the two meta pages itself and refuses such a file with an error
// that names it.
package boltcheck
